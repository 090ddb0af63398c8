"""The WSGI middleware on real Flask and Django apps (and a bare WSGI app), with events read back from a
real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import django
import httpx
import pytest
from django.conf import settings
from flask import Flask, abort, g, make_response
from werkzeug.serving import make_server

from trailseal.sdk import set_actor
from trailseal.sdk.context import session_hash
from trailseal.sdk.wsgi import TrailsealMiddleware, django_user, instrument_flask

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ENV = {"REMOTE_ADDR": "10.0.0.5"}


# -- Flask -------------------------------------------------------------------------------------------------
def flask_app(client, testing: bool) -> Flask:
    app = Flask(__name__)
    app.testing = testing

    @app.get("/items/<int:item_id>")
    def item(item_id):
        g.user = "carol"
        return f"item {item_id}"

    @app.get("/status/<int:code>")
    def status(code):
        abort(code)

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    @app.post("/signin")
    def signin():
        set_actor("alice")
        return "welcome"

    @app.get("/healthz")
    def health():
        return "ok"

    instrument_flask(app, client, trusted_proxies=["10.0.0.0/8"])
    return app


def call(web, method: str, path: str, **kwargs) -> int:
    """One request, its response closed as a WSGI server would (that is when the event is logged)."""
    with web.open(path, method=method, environ_base=ENV, **kwargs) as response:
        return response.status_code


def test_flask_success_failures_and_errors(client, events):
    web = flask_app(client, testing=False).test_client()
    assert call(web, "GET", "/items/42", headers={"traceparent": TRACE}) == 200
    codes = [call(web, "GET", p) for p in ("/status/401", "/status/403", "/nope", "/status/500", "/boom")]
    assert codes == [401, 403, 404, 500, 500]
    call(web, "GET", "/healthz")
    assert call(web, "POST", "/signin") == 200
    item, unauthorized, forbidden, missing, failed, boom, signin = events(7)
    assert item["request"]["path"] == "/items/{item_id}" and item["outcome"] == "success"
    assert item["actor"]["id"] == "carol" and item["actor"]["ip"] == "10.0.0.5"
    assert item["request"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and item["request"]["bytes"] == 7
    assert [e["outcome"] for e in (unauthorized, forbidden, missing)] == ["failure"] * 3
    assert forbidden["request"]["path"] == "/status/{code}" and missing["request"]["path"] == "/nope"
    assert (failed["outcome"], failed["reason"], failed["severity"]) == ("error", "HTTP 500", "medium")
    assert boom["outcome"] == "error" and boom["reason"] == "RuntimeError: kaboom"
    assert boom["request"]["status"] == 500
    assert (signin["action"], signin["outcome"], signin["actor"]["id"]) == ("user.login", "success", "alice")


@contextmanager
def threaded_server(app: Flask) -> Iterator[httpx.Client]:
    """The app under werkzeug's threaded server (what `flask run` uses), and an HTTP client of it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}") as web:
            yield web
    finally:
        server.shutdown()
        thread.join(5)


def test_flask_events_keep_the_order_of_answers_when_the_server_closes_late(client, events):
    """A threaded server closes a response (PEP 3333 close()) after the client already has it; the event
    must not wait for that close, or the next request's event is sealed before this one's."""
    app = Flask(__name__)

    @app.get("/sized/<int:n>")
    def sized(n):  # Content-Length known: the event is queued before the last byte goes out
        response = make_response(f"answer {n}")
        response.call_on_close(lambda: time.sleep(0.3))
        return response

    @app.get("/streamed/<int:n>")
    def streamed(n):  # no Content-Length (chunked): queued before the server writes the final chunk
        response = make_response(part for part in ("ans", f"wer {n}"))
        response.call_on_close(lambda: time.sleep(0.3))
        return response

    @app.get("/quick/<int:n>")
    def quick(n):
        return f"answer {n}"

    instrument_flask(app, client)
    with threaded_server(app) as web:
        answers = [web.get(path) for path in ("/sized/1", "/quick/2", "/streamed/3", "/quick/4")]
        time.sleep(0.4)  # the late closes are done: nothing else is on its way
    assert [a.text for a in answers] == [f"answer {n}" for n in range(1, 5)]
    assert answers[0].headers["content-length"] == "8" and answers[2].headers["transfer-encoding"] == "chunked"
    sealed = events(4)
    assert [e["request"]["path"] for e in sealed] == ["/sized/{n}", "/quick/{n}", "/streamed/{n}", "/quick/{n}"]
    assert [e["request"]["bytes"] for e in sealed] == [8] * 4
def test_flask_events_logged_in_a_view_name_the_user_the_app_has_loaded(client, events):
    app = Flask(__name__)
    instrument_flask(app, client)  # first thing, as the examples do: before the app's own hooks

    @app.before_request
    def load_user():  # the app's loader: the user is known only from here on
        g.user = "erin"

    @app.get("/reports/<int:n>")
    def report(n):
        client.log(category="data_access", action="report.export", target=f"report-{n}")
        return "ok"

    with app.test_client() as web, web.get("/reports/7", environ_base=ENV) as response:
        assert response.status_code == 200
    inner, request = events(2)
    assert inner["action"] == "report.export" and (inner["actor"]["id"], inner["actor"]["ip"]) == ("erin", "10.0.0.5")
    assert request["actor"] == inner["actor"] and request["request"]["path"] == "/reports/{n}"


def test_flask_exception_that_propagates_is_logged_then_re_raised(client, events):
    web = flask_app(client, testing=True).test_client()
    with pytest.raises(RuntimeError, match="kaboom"):
        web.get("/boom")
    (event,) = events(1)
    assert event["outcome"] == "error" and event["request"]["status"] == 500
    assert event["request"]["path"] == "/boom" and event["reason"] == "RuntimeError: kaboom"


def test_bare_wsgi_app_gets_raw_paths_and_a_resolver_sees_the_environ(client, events):
    def app(environ, start_response):
        start_response("201 Created", [("Content-Type", "text/plain")])
        yield b"made "
        yield b"it"

    wrapped = TrailsealMiddleware(app, client, actor_resolver=lambda environ: environ.get("REMOTE_USER"))
    statuses = []
    body = wrapped({"REQUEST_METHOD": "PUT", "PATH_INFO": "/things/9", "REMOTE_ADDR": "192.0.2.1",
                    "REMOTE_USER": "dave"}, lambda status, headers, exc=None: statuses.append(status))
    assert b"".join(body) == b"made it" and statuses == ["201 Created"]
    (event,) = events(1)
    assert event["category"] == "data_change" and event["request"]["path"] == "/things/9"
    assert event["request"]["bytes"] == 7 and event["actor"]["id"] == "dave"


# -- Django ------------------------------------------------------------------------------------------------
def django_setup() -> None:
    if not settings.configured:
        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF="tests.sdk.django_urls", SECRET_KEY="x" * 50,
            MIDDLEWARE=["tests.sdk.django_urls.FakeAuthMiddleware", "trailseal.sdk.wsgi.DjangoMiddleware"],
            DATABASES={}, INSTALLED_APPS=[], LOGGING_CONFIG=None, TRAILSEAL_CLIENT=None,
            TRAILSEAL_MIDDLEWARE={"trusted_proxies": ["10.0.0.0/8"]},
        )
        django.setup()


@pytest.fixture
def django_client(client):
    django_setup()
    from django.test import Client as DjangoClient

    settings.TRAILSEAL_CLIENT = client
    return DjangoClient(REMOTE_ADDR="10.0.0.5")


def test_django_success_failures_and_errors(django_client, events):
    web = django_client
    assert web.get("/items/42/", HTTP_TRACEPARENT=TRACE, HTTP_X_USER="erin").status_code == 200
    assert [web.get(p).status_code for p in ("/status/401/", "/status/403/", "/nope/", "/status/500/")] == [
        401, 403, 404, 500]
    with pytest.raises(RuntimeError, match="kaboom"):  # Django's test client re-raises; the event is sent first
        web.get("/boom/")
    assert web.post("/accounts/login/", {"user": "frank"}).status_code == 302
    item, unauthorized, forbidden, missing, failed, boom, login = events(7)
    assert item["request"]["path"] == "/items/{item_id}/" and item["actor"]["id"] == "erin"
    assert "key-erin" not in str(item) and item["actor"]["session"] and item["request"]["span_id"] == "00f067aa0ba902b7"
    assert [e["outcome"] for e in (unauthorized, forbidden, missing)] == ["failure"] * 3
    assert unauthorized["request"]["path"] == "/status/{code}/" and missing["request"]["path"] == "/nope/"
    assert failed["outcome"] == "error" and failed["reason"] == "HTTP 500"
    assert boom["outcome"] == "error" and boom["reason"] == "RuntimeError: kaboom"
    assert boom["request"]["status"] == 500
    assert (login["action"], login["outcome"], login["actor"]["id"]) == ("user.login", "success", "frank")


def test_django_session_keys_are_hashed_before_they_leave_the_app():
    from tests.sdk.django_urls import FakeUser

    request = type("R", (), {"user": FakeUser(pk=7, username="erin"),
                             "session": type("S", (), {"session_key": "key-erin"})()})()
    assert django_user(request) == {"id": "7", "name": "erin", "session": session_hash("key-erin")}
    assert len(session_hash("key-erin")) == 16 and session_hash("key-erin") != session_hash("key-eric")

"""The ASGI middleware on real Starlette and FastAPI apps, with events read back from a real server."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi import HTTPException as FastAPIHTTPException
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from tests.api.server import free_port
from trailseal.sdk import current_actor, set_actor
from trailseal.sdk.asgi import TrailsealMiddleware

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def login(request: Request):
    if request.method == "GET":
        return PlainTextResponse("the login form")
    form = await request.json()
    set_actor(form["user"])  # the attempted user, also when the password is wrong
    return PlainTextResponse("ok" if form["password"] == "pw" else "no", 200 if form["password"] == "pw" else 401)


def starlette_app() -> Starlette:
    async def item(request):
        return PlainTextResponse("item")

    async def status(request):
        return PlainTextResponse("x", int(request.path_params["code"]))

    async def forbidden(request):
        raise HTTPException(403)

    async def boom(request):
        raise RuntimeError("kaboom")

    async def ok(request):
        return PlainTextResponse("ok")

    return Starlette(routes=[
        Route("/items/{item_id:int}", item), Route("/status/{code}", status), Route("/admin", forbidden),
        Route("/boom", boom), Route("/login", login, methods=["GET", "POST"]), Route("/healthz", ok),
        Mount("/api/v1", routes=[Route("/users/{user_id}", ok)]),
    ])


def fastapi_app() -> FastAPI:
    app = FastAPI()
    app.get("/items/{item_id}")(lambda item_id: int(item_id))
    app.get("/status/{code}")(lambda code: PlainTextResponse("x", int(code)))
    app.get("/healthz")(lambda: "ok")
    app.api_route("/login", methods=["GET", "POST"])(login)
    app.get("/api/v1/users/{user_id}")(lambda user_id: "ok")

    @app.get("/admin")
    def forbidden():
        raise FastAPIHTTPException(403)

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    return app


@pytest.fixture(params=["starlette", "fastapi"])
def web(request, client):
    """A TestClient of the app under the middleware, seen as coming from 10.0.0.5."""
    app = starlette_app() if request.param == "starlette" else fastapi_app()
    app.add_middleware(TrailsealMiddleware, client=client, trusted_proxies=["10.0.0.0/8"],
                       actor_resolver=lambda r: r.headers.get("x-user"))
    with TestClient(app, client=("10.0.0.5", 4711)) as test_client:
        yield test_client


def test_success_names_the_route_template_trace_and_client(web, events):
    assert web.get("/items/42", headers={"traceparent": TRACE, "user-agent": "pytest/1"}).status_code == 200
    web.get("/api/v1/users/7", headers={"x-user": "carol"})
    item, user = events(2)
    assert item["action"] == "http.request" and item["category"] == "data_access" and item["outcome"] == "success"
    assert item["request"]["path"] == "/items/{item_id}" and item["request"]["method"] == "GET"
    assert item["request"]["status"] == 200 and item["request"]["bytes"] > 0
    assert item["request"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert item["request"]["span_id"] == "00f067aa0ba902b7"
    assert item["actor"] == {"id": "anonymous", "type": "anonymous", "ip": "10.0.0.5", "user_agent": "pytest/1"}
    assert item["attributes"]["latency_ms"] >= 0 and item["target"]["id"] == "GET /items/{item_id}"
    assert user["request"]["path"] == "/api/v1/users/{user_id}" and user["actor"]["id"] == "carol"


def test_401_403_404_are_failures_and_500_an_error(web, events):
    assert [web.get(p).status_code for p in ("/status/401", "/admin", "/nope/3", "/status/500")] == [
        401, 403, 404, 500]
    unauthorized, forbidden, missing, failed = events(4)
    assert [e["outcome"] for e in (unauthorized, forbidden, missing, failed)] == [
        "failure", "failure", "failure", "error"]
    assert unauthorized["reason"] == "HTTP 401" and unauthorized["severity"] == "low"
    assert forbidden["request"]["status"] == 403 and forbidden["request"]["path"] == "/admin"
    assert missing["request"]["path"] == "/nope/3"  # no route matched: the raw path is all there is
    assert failed["severity"] == "medium"


def test_an_exception_is_logged_as_an_error_and_re_raised(web, events):
    with pytest.raises(RuntimeError, match="kaboom"):
        web.get("/boom")
    (event,) = events(1)
    assert event["outcome"] == "error" and event["request"]["status"] == 500
    assert event["reason"] == "RuntimeError: kaboom" and event["request"]["path"] == "/boom"


def test_login_posts_become_user_login_events(web, events):
    assert web.post("/login", json={"user": "alice", "password": "pw"}).status_code == 200
    assert web.post("/login", json={"user": "mallory", "password": "guess"}).status_code == 401
    web.get("/login")  # showing the form is not a login
    ok, bad, form = events(3)
    assert (ok["action"], ok["category"], ok["outcome"], ok["actor"]["id"]) == (
        "user.login", "authentication", "success", "alice")
    assert (bad["action"], bad["outcome"], bad["actor"]["id"], bad["severity"]) == (
        "user.login", "failure", "mallory", "low")
    assert bad["actor"]["ip"] == "10.0.0.5" and form["action"] == "http.request"


def test_health_checks_are_excluded(web, events, client):
    web.get("/healthz")
    web.get("/items/1")
    assert [e["request"]["path"] for e in events(1)] == ["/items/{item_id}"]


def test_forwarded_for_is_trusted_only_from_configured_proxies(client, events):
    app = starlette_app()
    app.add_middleware(TrailsealMiddleware, client=client, trusted_proxies=["10.0.0.0/8"])
    spoof = {"x-forwarded-for": "203.0.113.9, 10.1.2.3"}
    with TestClient(app, client=("10.0.0.5", 1)) as via_proxy, TestClient(app, client=("198.51.100.4", 1)) as direct:
        via_proxy.get("/items/1", headers=spoof)
        direct.get("/items/1", headers=spoof)
        via_proxy.get("/items/1", headers={"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"})
    proxied, spoofed, bad_trace = events(3)
    assert proxied["actor"]["ip"] == "203.0.113.9" and spoofed["actor"]["ip"] == "198.51.100.4"
    assert "trace_id" not in bad_trace["request"]


def test_oversized_paths_and_user_agents_cannot_hide_a_request(client, events):
    app = starlette_app()
    app.add_middleware(TrailsealMiddleware, client=client)
    with TestClient(app) as web:
        assert web.get("/x" * 6000, headers={"user-agent": "u" * 20000}).status_code == 404
    (event,) = events(1)
    assert event["outcome"] == "failure" and event["request"]["path"].startswith("/x/x")
    assert len(event["request"]["path"]) <= 1024 and len(event["actor"]["user_agent"]) <= 1024


def test_a_malformed_actor_from_the_resolver_keeps_the_event_with_its_id(client, events):
    app = starlette_app()
    app.add_middleware(TrailsealMiddleware, client=client, actor_resolver=lambda r: {"id": 5, "roles": "admin"})
    with TestClient(app, client=("192.0.2.7", 1)) as web:
        assert web.get("/items/1").status_code == 200
    (event,) = events(1)
    assert event["actor"]["id"] == "5" and event["actor"]["ip"] == "192.0.2.7" and "roles" not in event["actor"]


def test_a_client_with_only_log_gets_the_events_fields():
    class Recorder:  # any object with log(**fields): an adapter to another sink
        def __init__(self):
            self.calls = []

        def log(self, **fields):
            self.calls.append(fields)

    recorder = Recorder()
    app = starlette_app()
    app.add_middleware(TrailsealMiddleware, client=recorder)
    with TestClient(app) as web:
        web.get("/items/3", headers={"user-agent": "ua/1", "traceparent": TRACE})
    (fields,) = recorder.calls
    assert (fields["action"], fields["outcome"], fields["request"]["path"]) == (
        "http.request", "success", "/items/{item_id}")
    assert fields["actor"]["user_agent"] == "ua/1" and fields["request"]["trace_id"] == TRACE[3:35]
    assert "time" not in fields and "source" not in fields


def test_events_keep_the_order_of_answers_when_the_app_works_on_after_answering(client, events):
    """A background task runs after the answer is sent, and the server takes the client's next request
    meanwhile: the first request's event must be queued with its answer, not after its background work."""
    async def slow_afterwards(request):
        return PlainTextResponse("first", background=BackgroundTask(asyncio.sleep, 0.3))

    async def quick(request):
        return PlainTextResponse("second")

    app = Starlette(routes=[Route("/slow-afterwards", slow_afterwards), Route("/quick", quick)])
    app.add_middleware(TrailsealMiddleware, client=client)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.config.port}") as web:
            assert [web.get(p).text for p in ("/slow-afterwards", "/quick")] == ["first", "second"]
        time.sleep(0.4)  # the background task is over: nothing else is on its way
    finally:
        server.should_exit = True
        thread.join(5)
    assert [e["request"]["path"] for e in events(2)] == ["/slow-afterwards", "/quick"]


def test_events_logged_inside_a_request_carry_its_actor_origin_and_trace(client, events):
    async def export(request):
        set_actor("dana")
        client.log(category="data_access", action="report.export", target="report-7")
        return JSONResponse(current_actor())

    app = Starlette(routes=[Route("/export", export)])
    app.add_middleware(TrailsealMiddleware, client=client)
    with TestClient(app, client=("198.51.100.8", 1)) as web:
        seen = web.get("/export", headers={"user-agent": "ua/2", "traceparent": TRACE}).json()
    assert seen == {"id": "dana", "ip": "198.51.100.8", "user_agent": "ua/2"}
    inner, request = events(2)
    assert inner["action"] == "report.export" and inner["actor"] == {**seen, "type": "user"}
    assert inner["request"]["trace_id"] == request["request"]["trace_id"] == TRACE[3:35]
    assert request["actor"] == inner["actor"] and request["request"]["path"] == "/export"


def test_events_logged_inside_a_request_ask_the_resolver_for_its_actor(client, events):
    async def export(request):
        client.log(category="data_access", action="report.export", target="report-8")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/export", export)])
    app.add_middleware(TrailsealMiddleware, client=client, actor_resolver=lambda r: r.headers.get("x-user"))
    with TestClient(app, client=("198.51.100.9", 1)) as web:
        assert web.get("/export", headers={"x-user": "frank", "user-agent": "ua/3"}).status_code == 200
    inner, request = events(2)
    assert inner["actor"] == request["actor"] == {"id": "frank", "type": "user", "ip": "198.51.100.9",
                                                  "user_agent": "ua/3"}

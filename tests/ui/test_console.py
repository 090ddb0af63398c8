"""The console in-process: sessions, roles, CSRF, bad input answered with reasons, reads recorded."""

from __future__ import annotations

import re
import warnings
from html import unescape

import pytest

import trailseal
from tests.conftest import make_event
from trailseal.api import create_app

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient  # noqa: E402

PAGES = ["/ui/stream", "/ui/search?q=outcome:failure", "/ui/events/default/1", "/ui/timeline?key=actor&value=u",
         "/ui/sources", "/ui/alerts", "/ui/integrity", "/ui/charts", "/ui/validate",
         "/ui/stream/rows?after=default:0"]
AUDIT_PAGES = ["/ui/report", "/ui/report?framework=soc2&period=2026-01-01..2026-12-31&verify=0",
               "/ui/report.json?framework=gdpr&period=2026-11-01..2026-11-30&verify=0",
               "/ui/report.html?framework=iso27001&period=2026-11-01..2026-11-30&verify=0"]


@pytest.fixture
def console(data_dir):
    trail = trailseal.open(data_dir)
    app = create_app(trail, detect=False, scheduled=False)
    store = app.state.service.tokens
    tokens = {role: store.create(role, f"{role}-user")[0] for role in ("ingest", "reader", "auditor", "admin")}
    trail.append([make_event(i) for i in range(5)])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens, trail


def log_in(client, token: str) -> str:
    response = client.post("/ui/login", data={"token": token, "next": "/ui/stream"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/stream").text).group(1)


def meta_actions(trail) -> list[str]:
    rows = list(trail.store.read_entries("trailseal", 0, trail.store.tree_size("trailseal")))
    return [e["event"]["action"] for e in trail.read_events([("trailseal", i, d) for i, d in rows])]


def test_every_page_needs_a_session_and_the_right_role(console):
    client, tokens, _ = console
    for path in PAGES + AUDIT_PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next="), path
        fragment = client.get(path, headers={"X-Requested-With": "trailseal-ui"})
        assert fragment.status_code == 401 and "log in again" in fragment.text
        bearer = client.get(path, headers={"Authorization": f"Bearer {tokens['admin']}"}, follow_redirects=False)
        assert bearer.status_code == 303, "the console takes sessions, not bearer tokens"
    log_in(client, tokens["reader"])
    for path in PAGES:
        assert client.get(path).status_code == 200, path
    for path in AUDIT_PAGES:
        response = client.get(path)
        assert response.status_code == 403 and "needs auditor or admin" in response.text, path
    client.cookies.clear()
    log_in(client, tokens["auditor"])
    for path in AUDIT_PAGES:
        assert client.get(path).status_code == 200, path


def test_login_cookie_flags_and_refusals(console):
    client, tokens, trail = console
    response = client.post("/ui/login", data={"token": tokens["reader"]}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS the cookie is Secure (next test)
    refused = client.post("/ui/login", data={"token": tokens["ingest"]})
    assert refused.status_code == 401 and "cannot use the console" in unescape(refused.text)
    assert client.post("/ui/login", data={"token": "tsk_nope"}).status_code == 401
    assert meta_actions(trail).count("trailseal.ui.login") == 3
    redirect = client.post("/ui/login", data={"token": tokens["reader"], "next": "//evil.example/x"},
                           follow_redirects=False)
    assert redirect.headers["location"] == "/ui/stream"


def test_secure_cookie_over_tls(data_dir):
    trail = trailseal.open(data_dir)
    app = create_app(trail, detect=False, scheduled=False)
    token = app.state.service.tokens.create("reader")[0]
    with TestClient(app, base_url="https://console.test") as client:
        response = client.post("/ui/login", data={"token": token}, follow_redirects=False)
        assert "Secure" in response.headers["set-cookie"]


def test_failed_logins_are_throttled(console):
    client, tokens, _ = console
    for _ in range(10):
        assert client.post("/ui/login", data={"token": "tsk_guess"}).status_code == 401
    throttled = client.post("/ui/login", data={"token": tokens["reader"]})
    assert throttled.status_code == 429 and "wait 5 minutes" in throttled.text


def test_forms_need_the_session_csrf_token(console):
    client, tokens, _ = console
    csrf = log_in(client, tokens["reader"])
    forged = client.post("/ui/searches", data={"name": "x", "q": "outcome:failure"})
    assert forged.status_code == 403 and "reload the page" in forged.text
    assert client.post("/ui/searches", data={"csrf": "wrong", "name": "x", "q": "a"}).status_code == 403
    json_body = client.post("/ui/searches", json={"csrf": csrf})
    assert json_body.status_code == 415 and "x-www-form-urlencoded" in json_body.text
    saved = client.post("/ui/searches", data={"csrf": csrf, "name": "fails", "q": "outcome:failure"})
    assert saved.status_code == 200 and "fails" in saved.text
    empty = client.post("/ui/searches", data={"csrf": csrf, "name": "", "q": "outcome:failure"})
    assert empty.status_code == 400 and "give the search a name" in empty.text


def test_bad_input_gets_a_reason_never_a_500(console):
    client, tokens, _ = console
    log_in(client, tokens["auditor"])
    cases = [("/ui/events/default/99", 404, "has no entry 99"), ("/ui/events/default/x1", 400, "non-negative"),
             ("/ui/stream?log=nope", 404, "no log 'nope'"), ("/ui/stream/rows?after=%3Cscript%3E", 400, "log:size"),
             ("/ui/timeline?key=ssn&value=1", 400, "actor, session or trace"),
             ("/ui/search?q=actor%3A(", 400, "query:"),
             ("/ui/report?framework=sox&period=2026-01-01..2026-12-31", 400, "unknown framework"),
             ("/ui/report?framework=gdpr&period=last+year", 400, "YYYY-MM-DD..YYYY-MM-DD")]
    for path, status, reason in cases:
        response = client.get(path)
        assert response.status_code == status and reason in unescape(response.text), (path, response.status_code)
        assert "text/html" in response.headers["content-type"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/alerts").text).group(1)
    assert client.post("/ui/alerts/0/ack", data={"csrf": csrf}).status_code == 404


def test_reads_are_recorded_in_the_meta_log(console):
    client, tokens, trail = console
    log_in(client, tokens["reader"])
    client.get("/ui/search?q=outcome:failure")
    client.get("/ui/events/default/2")
    poll = {"X-Requested-With": "trailseal-ui"}
    client.get("/ui/sources", headers=poll)
    assert client.app.state.service.extras["ui_live"].ready.wait(10)
    client.get("/ui/sources", headers=poll)
    before = meta_actions(trail).count("trailseal.ui.sources")
    for _ in range(3):  # a live fragment is recorded when what it shows changes, not on every poll
        client.get("/ui/sources", headers=poll)
    actions = meta_actions(trail)
    assert {"trailseal.ui.stream", "trailseal.ui.search", "trailseal.ui.event"} <= set(actions)
    assert before >= 1 and actions.count("trailseal.ui.sources") == before


def test_revoking_the_token_ends_the_session(console):
    client, tokens, _ = console
    log_in(client, tokens["reader"])
    store = client.app.state.service.tokens
    token_id = next(t.id for t in store.list() if t.role == "reader")
    store.revoke(token_id)
    assert client.get("/ui/stream", follow_redirects=False).status_code == 303


def test_pages_send_strict_security_headers(console):
    client, tokens, _ = console
    log_in(client, tokens["reader"])
    headers = client.get("/ui/stream").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"


def test_report_downloads(console):
    client, tokens, _ = console
    query = "framework=pci-dss&period=2026-11-01..2026-11-30&verify=0"
    log_in(client, tokens["reader"])
    assert client.get(f"/ui/report.pdf?{query}").status_code == 403
    client.cookies.clear()
    log_in(client, tokens["auditor"])
    body = client.get(f"/ui/report.json?{query}").json()
    assert body["framework"] == "pci-dss" and len(body["controls"]) == 20
    html = client.get(f"/ui/report.html?{query}")
    assert "attachment" in html.headers["content-disposition"] and "<style>" in html.text
    pdf = client.get(f"/ui/report.pdf?{query}")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")


def test_run_validation_now_needs_audit_and_shows_the_result(console):
    client, tokens, trail = console
    csrf = log_in(client, tokens["reader"])
    refused = client.post("/ui/validate", data={"csrf": csrf})
    assert refused.status_code == 403 and "auditor or admin" in refused.text
    client.cookies.clear()
    csrf = log_in(client, tokens["auditor"])
    page = client.post("/ui/validate", data={"csrf": csrf})
    assert page.status_code == 200 and '<strong>integrity</strong>' in page.text
    assert "trailseal.validate" in meta_actions(trail)

"""Every route x every role (and no token, a wrong token, a token for another log), generated from
the route table: a new route without an entry here fails the suite."""

from __future__ import annotations

import pytest

from tests.api.conftest import bearer
from tests.conftest import make_event

# one request that is valid apart from authorization, per (path, method)
SAMPLES = {
    ("/v1/events", "POST"): {"json": [make_event(1)]},
    ("/v1/events", "GET"): {"params": {"limit": 5}},
    ("/v1/events/{log}/{index}", "GET"): {"url": "/v1/events/default/0"},
    ("/v1/logs", "GET"): {},
    ("/tlog/{log}/checkpoint", "GET"): {"url": "/tlog/default/checkpoint"},
    ("/tlog/{log}/vkey", "GET"): {"url": "/tlog/default/vkey"},
    ("/tlog/{log}/minimum-index", "GET"): {"url": "/tlog/default/minimum-index"},
    ("/tlog/{log}/tile/{rest:path}", "GET"): {"url": "/tlog/default/tile/0/000.p/1"},
    ("/healthz", "GET"): {},
    ("/readyz", "GET"): {},
    ("/metrics", "GET"): {},
    ("/openapi.json", "GET"): {},
    ("/v1/admin/erase", "POST"): {"json": {"subject": "nobody"}},
    ("/v1/admin/holds", "GET"): {},
    ("/v1/admin/holds", "POST"): {"json": {"reason": "case 1", "query": "actor:nobody"}, "ok": {201}},
    ("/v1/admin/holds/{hold}/release", "POST"): {"url": "/v1/admin/holds/1/release", "ok": {404}},
    ("/v1/alerts", "GET"): {},
    ("/v1/export", "GET"): {"params": {"q": "", "format": "jsonl"}},
    ("/v1/export/bundle", "GET"): {"params": {"q": ""}},
    ("/v1/logs", "POST"): {"json": {"resourceLogs": []}},
    ("/v1/k8s/audit", "POST"): {"json": {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []}},
}
HEC_EVENT = {"content": b'{"event": "hello", "sourcetype": "manual"}'}
BULK = {"content": b'{"index": {}}\n{"message": "hello"}\n', "headers": {"Content-Type": "application/x-ndjson"}}


def receiver_sample(path: str, method: str) -> dict | None:
    """Samples for the shipper-compatible receivers (Splunk HEC, Elasticsearch), by path shape."""
    bare = path.removeprefix("/es")
    if bare.startswith("/services/collector/health") or bare in ("", "/", "/_license", "/_xpack",
                                                                   "/_cluster/health"):
        return {}
    if bare.startswith("/services/collector/raw"):
        return {"content": b"hello\n"}
    if bare.startswith("/services/collector"):
        return HEC_EVENT
    if bare.endswith("/_bulk"):
        return {**BULK, "url": path.replace("{index}", "logs-app")}
    if "{name}" in bare:  # index templates and ILM: reads answer 404 (none kept), writes acknowledge
        return {"url": path.replace("{name}", "t1"), "json": {} if method in ("POST", "PUT") else None,
                "ok": {200, 404}}
    return None
ALLOWED = {"public": {"ingest", "reader", "auditor", "admin", "other", "other_reader", None, "wrong"},
           "tlog": {"ingest", "reader", "auditor", "admin", "other", "other_reader", None, "wrong"},
           "ingest": {"ingest", "admin"}, "read": {"reader", "auditor", "admin"},
           "audit": {"auditor", "admin"}, "admin": {"admin"}}
TOUCH_DEFAULT = {("/v1/events", "POST"), ("/v1/events/{log}/{index}", "GET")}  # name log 'default'
CALLERS = ["ingest", "reader", "auditor", "admin", "other", "other_reader", None, "wrong"]


def route_table(app):
    for route in app.routes:
        if not hasattr(route, "methods"):
            continue  # the /ui console Mount: sessions, not bearer tokens (tests/ui/test_console_authz.py)
        for method in sorted(route.methods - {"HEAD"}):
            yield route.path, method, route.endpoint.permission


def expected(permission: str, caller: str | None) -> int:
    role = {"other": "ingest", "other_reader": "reader"}.get(caller, caller)
    if caller in ALLOWED[permission] or role in ALLOWED[permission]:
        return 200
    if caller in (None, "wrong"):
        return 401
    return 403


def call(client, path, method, sample, headers):
    return client.request(method, sample.get("url", path), params=sample.get("params"), json=sample.get("json"),
                          content=sample.get("content"), headers={**sample.get("headers", {}), **headers})


def reason_of(response) -> str:
    """The reason in an error body: ours ({"error"}), Splunk HEC ({"text"}) or Elasticsearch's."""
    body = response.json()
    error = body.get("error") or body.get("text") or body.get("message")
    return error if isinstance(error, str) else str(error or "")


def test_every_route_and_role(api):
    client, tokens, app = api
    client.post("/v1/events", json=[make_event(0)], headers=bearer(tokens["admin"]))
    seen = 0
    for path, method, permission in route_table(app):
        sample = SAMPLES[(path, method)] if (path, method) in SAMPLES else receiver_sample(path, method)
        assert sample is not None, f"new route {method} {path}: add a sample request to the authz matrix"
        for caller in CALLERS:
            headers = {} if caller is None else bearer("tsk_wrong" if caller == "wrong" else tokens[caller])
            response = call(client, path, method, sample, headers)
            want = expected(permission, caller)
            got = 200 if response.status_code in sample.get("ok", set()) | {200, 207} else response.status_code
            if caller == "wrong" and want == 401 and path.startswith("/services/collector"):
                want = 403  # Splunk HEC answers an invalid token with 403 (code 4), as Splunk does
            if caller in ("other", "other_reader") and want == 200 and (path, method) in TOUCH_DEFAULT:
                want = 403  # scoped to log 'other', asking for 'default'
            assert got == want, f"{method} {path} as {caller}: {response.status_code} {response.text[:200]}"
            if got >= 400 and method != "HEAD":
                assert reason_of(response), f"{method} {path}: an error without a reason"
            seen += 1
    assert seen >= len(CALLERS) * len(SAMPLES)


@pytest.mark.parametrize("caller", ["other"])
def test_log_scoped_ingest_token_cannot_write_elsewhere(api, caller):
    client, tokens, _ = api
    response = client.post("/v1/events", json=[make_event(1)], headers=bearer(tokens[caller]))
    assert response.status_code == 403
    assert "may not write to log 'default'" in response.json()["errors"][0]["reason"]
    ok = client.post("/v1/events", json=[make_event(2, log="other")], headers=bearer(tokens[caller]))
    assert ok.status_code == 200 and ok.json()["receipts"][0]["log"] == "other"


def test_an_event_refused_for_its_log_leaves_no_value_taken_for_stored(api):
    """The refused event's actor values never reach the vault: the next event that carries them (sent with a
    token that may write there) must get their vault rows, or its actor could never be read back."""
    client, tokens, app = api
    event = make_event(1, actor={"id": "carol", "type": "user", "ip": "203.0.113.5"})
    scoped = client.post("/v1/events", json=[event], headers=bearer(tokens["other"]))
    assert scoped.status_code == 403 and "may not write to log 'default'" in scoped.text
    sealed = client.post("/v1/events", json=[{**event, "id": "evt-carol-2"}],
                         headers=bearer(tokens["ingest"]))
    assert sealed.status_code == 200
    receipt = sealed.json()["receipts"][0]
    trail = app.state.service.trail
    shown = trail.read_events([("default", receipt["index"], trail.entry(receipt["index"]))])[0]["event"]
    assert (shown["actor"]["id"], shown["actor"]["ip"]) == ("carol", "203.0.113.5")


def test_private_tlog_needs_a_reader(api):
    client, tokens, app = api
    client.post("/v1/events", json=[make_event(0)], headers=bearer(tokens["admin"]))
    app.state.service.public_tlog = False
    assert client.get("/tlog/default/checkpoint").status_code == 401
    assert client.get("/tlog/default/checkpoint", headers=bearer(tokens["ingest"])).status_code == 403
    assert client.get("/tlog/default/checkpoint", headers=bearer(tokens["reader"])).status_code == 200


def test_revoked_token_is_refused(api):
    client, tokens, app = api
    store = app.state.service.tokens
    secret, token = store.create("reader")
    assert client.get("/v1/logs", headers=bearer(secret)).status_code == 200
    store.revoke(token.id)
    assert client.get("/v1/logs", headers=bearer(secret)).status_code == 401

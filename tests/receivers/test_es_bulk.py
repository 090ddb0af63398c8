"""Elasticsearch-compatible intake: the official Python client's helpers.bulk against a real server,
the handshake shippers probe, ES-shaped item errors, hostile bodies."""

from __future__ import annotations

import base64
import json

import pytest
from elasticsearch import Elasticsearch, helpers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.receivers.conftest import bearer, notes, sealed, sealed_in

NDJSON = {"content-type": "application/x-ndjson"}


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"elastic:{token}".encode()).decode()}


def test_official_client_bulk_to_a_real_server(live):
    token = live.token("es-client")
    es = Elasticsearch(live.url, basic_auth=("filebeat", token), request_timeout=10)
    assert es.info()["version"]["number"] == "8.17.0"
    actions = [
        {
            "_index": "logs-web",
            "_id": "req-1",
            "_source": {
                "@timestamp": "2026-03-01T10:00:00.123Z",
                "message": "GET /admin 403",
                "event": {"action": "http.request", "category": ["web"], "outcome": "failure"},
                "user": {"name": "eve"},
                "source": {"ip": "198.51.100.7"},
                "host": {"name": "edge-1"},
                "http": {"request": {"method": "GET"}, "response": {"status_code": 403}},
                "url": {"path": "/admin"},
            },
        },
        {
            "_index": "logs-web",
            "_source": {"@timestamp": 1772359200, "message": "plain line", "log.level": "warn"},
        },
        {
            "_index": "audit",
            "_id": "evt-9",
            "_source": {
                "time": "2026-03-01T10:00:02Z",
                "category": "admin",
                "action": "user.role.grant",
                "outcome": "success",
                "actor": {"id": "root", "type": "user"},
                "source": {"component": "iam", "kind": "app"},
                "target": {"type": "user", "id": "bob"},
            },
        },
    ]
    ok, errors = helpers.bulk(es, actions, stats_only=False)
    assert ok == 3 and errors == []
    again, _ = helpers.bulk(es, actions[:1])  # a retried batch: the _id dedupes
    assert again == 1
    events = sealed_in(live.data_dir, "es-client")
    assert len(events) == 3
    web, plain, native = events
    assert web["id"] == "es:logs-web:req-1" and web["time"] == "2026-03-01T10:00:00.123000Z"
    assert (web["category"], web["action"], web["outcome"]) == ("data_access", "http.request", "failure")
    assert web["actor"] == {"id": "eve", "ip": "198.51.100.7", "type": "user"}
    assert web["request"] == {"method": "GET", "path": "/admin", "status": 403}
    assert web["source"] == {
        "component": "logs-web",
        "kind": "app",
        "format": "elasticsearch",
        "host": "edge-1",
    }
    assert web["attributes"]["es.index"] == "logs-web" and web["attributes"]["message"] == "GET /admin 403"
    assert plain["time"] == "2026-03-01T10:00:00.000000Z" and plain["severity"] == "low"
    assert (plain["category"], plain["action"], plain["outcome"]) == ("system", "log.message", "unknown")
    assert plain["actor"] == {"id": "logs-web", "type": "system"}
    assert native["id"] == "es:audit:evt-9" and native["target"] == {"type": "user", "id": "bob"}
    assert native["source"]["format"] == "elasticsearch" and "attributes" not in native


def test_handshake_that_shippers_probe(rapi):
    client, tokens, _ = rapi
    for prefix in ("", "/es"):
        root = client.get(prefix + "/")
        assert root.status_code == 200 and root.headers["x-elastic-product"] == "Elasticsearch"
        assert root.json()["version"]["number"] and root.json()["tagline"] == "You Know, for Search"
        assert client.head(prefix + "/").status_code == 200
        assert client.get(prefix + "/_license").json()["license"]["status"] == "active"
        assert client.get(prefix + "/_xpack").json()["license"]["mode"] == "basic"
        assert client.get(prefix + "/_cluster/health").json()["status"] == "green"
    missing = client.get("/_index_template/logstash", headers=basic(tokens["ingest"]))
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "resource_not_found_exception"
    put = client.put("/_ilm/policy/filebeat", json={"policy": {}}, headers=basic(tokens["ingest"]))
    assert put.json() == {"acknowledged": True}
    assert client.put("/_index_template/x", json={}).status_code == 401


def test_item_errors_keep_the_good_documents(rapi):
    client, tokens, app = rapi
    body = (
        b"\n".join(
            [
                b'{"index":{"_index":"app","_id":"1"}}',
                b'{"message":"first","@timestamp":"2026-01-01T00:00:00Z"}',
                b'{"create":{"_index":"app"}}',
                b'{"message": broken',
                b'{"index":{}}',
                b'["not", "an", "object"]',
                b'{"index":{"_index":"app"}}',
                b'{"message":"bad utf8 \xff\xfe"}',
                b'{"delete":{"_index":"app","_id":"1"}}',
                b'{"update":{"_index":"app","_id":"1"}}',
                b'{"doc":{"x":1}}',
                b'{"index":{"_index":"app"}}',
                b'{"@timestamp":"yesterday","message":"bad time"}',
                b'{"index":{"_index":"app"}}',
                b'{"time":"2026-01-01T00:00:00Z","category":"nope","action":"a",'
                b'"actor":{"id":"x"},"source":{"component":"c","kind":"app"},"outcome":"success"}',
                b'{"create":{"_index":"app","_id":"2"}}',
                b'{"message":"last"}',
            ]
        )
        + b"\n"
    )
    response = client.post("/_bulk", content=body, headers={**basic(tokens["ingest"]), **NDJSON})
    assert response.status_code == 200 and response.headers["x-elastic-product"] == "Elasticsearch"
    answer = response.json()
    statuses = [next(iter(item.values()))["status"] for item in answer["items"]]
    assert answer["errors"] is True and statuses == [201, 400, 400, 400, 400, 400, 400, 400, 201]
    kinds = [next(iter(item.values())).get("error", {}).get("type") for item in answer["items"]]
    assert kinds[1] == "document_parsing_exception" and kinds[4] == "illegal_argument_exception"
    assert "append-only" in answer["items"][5]["update"]["error"]["reason"]
    assert "category" in answer["items"][7]["index"]["error"]["reason"]
    events = sealed(app.state.service.trail)
    assert [e["attributes"]["message"] for e in events] == ["first", "last"]
    assert answer["items"][8]["create"]["_seq_no"] == 1
    assert notes(app.state.service.trail)[-1]["attributes"]["rejected"] == 7


def test_malformed_action_lines_fail_the_request_as_elasticsearch_does(rapi):
    client, tokens, app = rapi
    auth = {**basic(tokens["ingest"]), **NDJSON}
    for body in (
        b'{"index":{}}\n{"a":1}\nnot json\n{"b":2}\n',
        b'{"index":{},"create":{}}\n{"a":1}\n',
        b'{"upsert":{}}\n{"a":1}\n',
        b'{"index":{}}\n',
        b'{"index":{"_id":{"x":1}}}\n{"a":1}\n',
    ):
        response = client.post("/_bulk", content=body, headers=auth)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] in (
            "x_content_parse_exception",
            "illegal_argument_exception",
            "action_request_validation_exception",
        )
    assert sealed(app.state.service.trail) == []


def test_auth_schemes_and_errors(rapi):
    client, tokens, app = rapi
    doc = b'{"index":{}}\n{"message":"m"}\n'
    api_key = base64.b64encode(b"key-id:" + tokens["ingest"].encode()).decode()
    for headers in (
        basic(tokens["ingest"]),
        bearer(tokens["ingest"]),
        {"Authorization": f"ApiKey {api_key}"},
    ):
        assert (
            client.post("/logs/_bulk", content=doc, headers={**headers, **NDJSON}).json()["errors"] is False
        )
    denied = client.post("/_bulk", content=doc, headers={**basic("wrong"), **NDJSON})
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "security_exception"
    assert (
        client.post("/_bulk", content=doc, headers={**basic(tokens["reader"]), **NDJSON}).status_code == 403
    )
    app.state.service.trail.sealer.max_queue_events = 0
    busy = client.post("/_bulk", content=doc, headers={**basic(tokens["ingest"]), **NDJSON})
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["type"] == "es_rejected_execution_exception"
    assert len(sealed(app.state.service.trail)) == 3


def test_configured_format_parses_the_message(rapi):
    client, tokens, app = rapi
    line = '203.0.113.5 - alice [10/Oct/2026:13:55:36 +0000] "POST /login HTTP/1.1" 401 12'
    body = json.dumps({"index": {}}) + "\n" + json.dumps({"message": line, "host": {"name": "lb"}}) + "\n"
    answer = client.post(
        "/_bulk?format=access_log&component=nginx",
        content=body,
        headers={**basic(tokens["ingest"]), **NDJSON},
    ).json()
    assert answer["errors"] is False
    event = sealed(app.state.service.trail)[-1]
    assert (event["action"], event["outcome"], event["actor"]["id"]) == ("http.request", "failure", "alice")
    assert event["source"]["component"] == "nginx" and event["attributes"]["es.index"] == "_bulk"
    unknown = client.post("/_bulk?format=nope", content=body, headers={**basic(tokens["ingest"]), **NDJSON})
    assert unknown.status_code == 400 and "unknown format" in unknown.json()["error"]["reason"]


lines = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b'{"index":{}}', b'{"create":{"_id":"x"}}', b'{"delete":{}}', b'{"message":"m"}', b"{}", b""]
    ),
)


@pytest.mark.parametrize("path", ["/_bulk"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(lines, max_size=8))
def test_random_bulk_bodies_never_5xx(rapi, path, parts):
    client, tokens, _ = rapi
    response = client.post(path, content=b"\n".join(parts), headers={**basic(tokens["ingest"]), **NDJSON})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert all(next(iter(i.values()))["status"] in (201, 400) for i in response.json()["items"])

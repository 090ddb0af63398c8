"""POST /v1/events: formats, receipts, idempotency, limits, hostile bodies — 4xx with reasons, never 5xx."""

from __future__ import annotations

import gzip
import json
import zlib

from tests.api.conftest import bearer
from tests.conftest import make_event
from trailseal.ledger import leaf_hash


def post(client, token, **kwargs):
    return client.post("/v1/events", headers={**bearer(token), **kwargs.pop("headers", {})}, **kwargs)


def ndjson(events) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def test_json_array_ndjson_and_single_object(api):
    client, tokens, _ = api
    a = post(client, tokens["ingest"], json=[make_event(i) for i in range(3)])
    b = post(client, tokens["ingest"], content=ndjson([make_event(i) for i in range(3, 6)]),
             headers={"Content-Type": "application/x-ndjson"})
    c = post(client, tokens["ingest"], json=make_event(6))
    assert (a.status_code, b.status_code, c.status_code) == (200, 200, 200)
    receipts = a.json()["receipts"] + b.json()["receipts"] + c.json()["receipts"]
    assert [r["index"] for r in receipts] == list(range(7))
    assert [r["id"] for r in receipts] == [f"evt-{i:08d}" for i in range(7)]
    assert c.json()["checkpoints"]["default"].startswith("test.trailseal/default\n7\n")


def test_receipt_leaf_hash_matches_the_stored_entry(api):
    client, tokens, app = api
    receipt = post(client, tokens["ingest"], json=[make_event(1)]).json()["receipts"][0]
    assert receipt["leaf_hash"] == leaf_hash(app.state.service.trail.entry(0)).hex()


def test_resent_ids_return_original_receipts(api):
    client, tokens, app = api
    first = post(client, tokens["ingest"], json=[make_event(i) for i in range(5)]).json()["receipts"]
    again = post(client, tokens["ingest"], json=[make_event(i) for i in range(5)]).json()["receipts"]
    assert first == again
    assert app.state.service.trail.store.tree_size("default") == 5


def looked_up(store, monkeypatch) -> list[str]:
    """The ids of log 'default' the sealer asks the store about from now on (to find re-sent ones)."""
    asked: list[str] = []
    find_ids = store.find_ids
    monkeypatch.setattr(store, "find_ids", lambda log, ids: (log == "default" and asked.extend(ids))
                        or find_ids(log, ids))
    return asked


def test_ids_made_on_receipt_are_not_looked_up_and_sent_ones_are(api, monkeypatch):
    client, tokens, app = api
    asked = looked_up(app.state.service.trail.store, monkeypatch)
    events = [make_event(i) for i in range(4)]
    for event in events[:3]:
        del event["id"]
    answer = post(client, tokens["ingest"], content=ndjson(events),
                  headers={"Content-Type": "application/x-ndjson"}).json()
    made = [r["id"] for r in answer["receipts"][:3]]
    assert answer["accepted"] == 4 and len(set(made)) == 3 and events[3]["id"] not in made
    assert asked == [events[3]["id"]], "an id trailseal made was looked up, or a sent one was not"
    again = post(client, tokens["ingest"], json=[events[3]]).json()["receipts"]
    assert again[0]["index"] == answer["receipts"][3]["index"]


def test_partial_rejection_names_position_field_and_reason(api):
    client, tokens, app = api
    body = [make_event(1), make_event(2, outcome="maybe"), {"nope": True}, make_event(3)]
    response = post(client, tokens["ingest"], json=body)
    assert response.status_code == 207
    answer = response.json()
    assert [r["position"] for r in answer["receipts"]] == [0, 3]
    assert [(e["position"], e["field"]) for e in answer["errors"]] == [(1, "outcome"), (2, None)]
    assert "Invalid enum value 'maybe'" in answer["errors"][0]["reason"]
    metrics = client.get("/metrics").text
    assert 'trailseal_events_rejected_total{reason="invalid"} 2.0' in metrics


def test_all_invalid_is_422_and_recorded_in_the_meta_log(api):
    client, tokens, app = api
    response = post(client, tokens["ingest"], json=[{"x": 1}, make_event(1, category="bogus")])
    assert response.status_code == 422 and response.json()["error"].startswith("all 2 records were rejected")
    trail = app.state.service.trail
    import time

    for _ in range(50):
        if trail.store.tree_size("trailseal"):
            break
        time.sleep(0.02)
    meta = [json.loads(d) for _, d in trail.store.read_entries("trailseal", 0, 100)]
    rejected = [m for m in meta if m["action"] == "trailseal.ingest.rejected"]
    assert rejected and rejected[0]["attributes"]["rejected"] == 2


def test_bad_bodies_get_reasons(api):
    client, tokens, _ = api
    token = tokens["ingest"]
    cases = [
        (dict(content=b"[{\"time\": ", headers={"Content-Type": "application/json"}), 400, "not a JSON array"),
        (dict(content=b"\xff\xfe[]", headers={"Content-Type": "application/json"}), 400, "not a JSON array"),
        (dict(content=b"<xml/>", headers={"Content-Type": "application/xml"}), 415, "not supported"),
        (dict(content=b"[]", headers={"Content-Type": "application/json", "Content-Encoding": "br"}), 415, "br"),
        (dict(content=b"not gzip", headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}),
         400, "not valid gzip"),
        (dict(content=gzip.compress(b"[]")[:-6], headers={"Content-Type": "application/json",
                                                           "Content-Encoding": "gzip"}), 400, "gzip"),
        (dict(content=b"[1, 2]", headers={"Content-Type": "application/json"}), 422, "Expected `object`"),
        (dict(content=b"[{\"time\": 1e999999}]", headers={"Content-Type": "application/json"}), 422, ""),
        (dict(content=b"[" + b"9" * 5000 + b"]", headers={"Content-Type": "application/json"}), 422, ""),
    ]
    for kwargs, status, words in cases:
        response = post(client, token, **kwargs)
        assert response.status_code == status, (kwargs, response.text[:300])
        assert words in (response.json().get("error", "") + json.dumps(response.json().get("errors", [])))


def test_invalid_utf8_inside_a_record(api):
    client, tokens, _ = api
    line = json.dumps(make_event(1)).encode().replace(b'"ok"', b'"o\xffk"')
    response = post(client, tokens["ingest"], content=line + b"\n" + ndjson([make_event(2)]),
                    headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 207
    assert "UTF-8" in response.json()["errors"][0]["reason"]


def test_size_limits(api):
    client, tokens, app = api
    server = app.state.service.config.server
    server.max_body_bytes = 100_000
    server.max_events_per_request = 10
    too_big = post(client, tokens["ingest"], content=b"x" * 100_001, headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413 and "limit" in too_big.json()["error"]
    too_many = post(client, tokens["ingest"], json=[make_event(i) for i in range(11)])
    assert too_many.status_code == 413 and "10" in too_many.json()["error"]
    bomb = gzip.compress(b" " * 50_000_000)
    response = post(client, tokens["ingest"], content=bomb,
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 413 and "decompressed" in response.json()["error"]
    fits = post(client, tokens["ingest"], content=zlib.compress(json.dumps([make_event(1)]).encode()),
                headers={"Content-Type": "application/json", "Content-Encoding": "deflate"})
    assert fits.status_code == 200


def test_rate_limit_answers_429_with_retry_after(api):
    client, tokens, app = api
    app.state.service.limiter.rate = 2.0
    statuses = [client.get("/v1/logs", headers=bearer(tokens["reader"])).status_code for _ in range(10)]
    assert 429 in statuses
    limited = client.get("/v1/logs", headers=bearer(tokens["reader"]))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_overload_answers_503_with_retry_after_and_drops_nothing(api):
    client, tokens, app = api
    sealer = app.state.service.trail.sealer
    sealer.max_queue_events = 0
    response = post(client, tokens["ingest"], json=[make_event(1)])
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "overloaded" in response.json()["error"]
    sealer.max_queue_events = 1000
    assert post(client, tokens["ingest"], json=[make_event(1)]).status_code == 200
    # the refused batch's values were not left as held: the retry wrote vault rows, so reads reveal them
    one = client.get("/v1/events/default/0", headers=bearer(tokens["reader"])).json()
    assert one["event"]["actor"]["id"] == make_event(1)["actor"]["id"] and '"id":"pd:' in one["sealed"]


def test_reads_are_recorded_in_the_meta_log(api):
    client, tokens, app = api
    post(client, tokens["ingest"], json=[make_event(1)])
    client.get("/v1/events", params={"actor": "nobody"}, headers=bearer(tokens["auditor"]))
    client.get("/v1/events/default/0?proof=1", headers=bearer(tokens["reader"]))
    trail = app.state.service.trail
    meta = [json.loads(data) for _, data in trail.store.read_entries("trailseal", 0, 100)]
    meta = [m for m in meta if m["action"].startswith("trailseal.")]  # detection's alerts live there too
    actions = [m["action"] for m in meta]
    assert actions == ["trailseal.search", "trailseal.event.read"]
    assert meta[0]["attributes"]["query"] == {"actor": "nobody"} and meta[0]["actor"]["roles"] == ["auditor"]
    assert meta[1]["attributes"] == {"log": "default", "index": 0, "proof": True}


def test_metrics_show_how_far_the_search_index_is_behind(data_dir):
    """The backlog gauge counts sealed events not yet indexed, and falls to 0 once they are."""
    import re

    from starlette.testclient import TestClient

    import trailseal
    from trailseal.api import create_app
    from trailseal.query import index
    from trailseal.store import sqlite_vault

    trail = trailseal.open(data_dir)
    app = create_app(trail, scheduled=False, detect=False)  # no indexer child: the backlog stays
    token = app.state.service.tokens.create("ingest")[0]

    def behind(client) -> float:
        text = client.get("/metrics").text
        return float(re.search(r"^trailseal_search_index_behind_events (\S+)$", text, re.M).group(1))

    def unkeyed(client) -> float:
        text = client.get("/metrics").text
        return float(re.search(r"^trailseal_vault_unkeyed_rows (\S+)$", text, re.M).group(1))

    with TestClient(app, raise_server_exceptions=False) as client:
        assert post(client, token, json=[make_event(i) for i in range(7)]).status_code == 200
        waiting = behind(client)
        assert waiting >= 7 and waiting == index.pending(index.connection(trail.store))
        assert unkeyed(client) >= 7  # each event's actor id is a vault row (privacy on by default)
        assert unkeyed(client) == sqlite_vault.tail(index.connection(trail.store))
        index.refresh(index.connection(trail.store))  # indexes the entries and settles the vault keys
        assert behind(client) == 0
        assert unkeyed(client) == 0
    trail.close()

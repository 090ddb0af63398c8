"""Through the API: actor search by search token, values joined back on read, erasure by an admin."""

from __future__ import annotations

from tests.api.conftest import bearer
from tests.conftest import make_event


def test_search_read_and_erase(api):
    client, tokens, _ = api
    events = [make_event(i) for i in range(6)]
    for i, event in enumerate(events):
        event["actor"]["id"] = "alice" if i < 3 else "bob"
    assert client.post("/v1/events", json=events, headers=bearer(tokens["ingest"])).status_code == 200
    found = client.get("/v1/events", params={"actor": "alice"}, headers=bearer(tokens["reader"])).json()
    assert sorted(e["index"] for e in found["events"]) == [0, 1, 2]
    assert {e["event"]["actor"]["id"] for e in found["events"]} == {"alice"}
    one = client.get("/v1/events/default/0", headers=bearer(tokens["reader"])).json()
    assert one["event"]["actor"]["id"] == "alice" and '"id":"pd:' in one["sealed"]

    assert client.post("/v1/admin/erase", json={"subject": "alice"}, headers=bearer(tokens["reader"])).status_code \
        == 403
    erased = client.post("/v1/admin/erase", json={"subject": "alice"}, headers=bearer(tokens["admin"]))
    assert erased.status_code == 200 and erased.json()["erased"] >= 3
    after = client.get("/v1/events", params={"actor": "alice"}, headers=bearer(tokens["reader"])).json()
    assert after["events"] == []
    one = client.get("/v1/events/default/0", headers=bearer(tokens["reader"])).json()
    assert one["event"]["actor"]["id"].startswith("pd:")
    bob = client.get("/v1/events", params={"actor": "bob"}, headers=bearer(tokens["reader"])).json()
    assert len(bob["events"]) == 3
    bad = client.post("/v1/admin/erase", json={"who": "x"}, headers=bearer(tokens["admin"]))
    assert bad.status_code == 400 and bad.json()["error"]

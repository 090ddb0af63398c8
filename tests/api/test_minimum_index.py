"""C2SP tlog-tiles pruning: the log publishes its minimum index; entry bundles from it on are served whole,
one holding an expired entry (below it) answers 404 with the reason, and hash tiles stay served so every
proof still verifies."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import trailseal
from tests.api.conftest import bearer
from tests.archive.helpers import T0, FakeClock
from tests.conftest import make_event
from trailseal.api import create_app
from trailseal.ledger.tiles import decode_entry_bundle
from trailseal.retention import Policies, Retention


def test_minimum_index_and_the_entry_bundles_around_it(data_dir):
    from starlette.testclient import TestClient  # after tests.api.conftest, which quiets its warning

    clock = FakeClock(T0)
    with trailseal.open(data_dir, clock=clock) as trail:
        trail.append([make_event(i, category="data_access", action="db.query") for i in range(300)])
        clock.now = T0 + timedelta(days=100)
        trail.append([make_event(i) for i in range(300, 1100)])  # later: not yet expired
        policies = Policies.from_config({"policies": {"data_access": {"keep": "180d"}}})
        applied = Retention(trail.store, policies, clock=clock.moment).apply(T0 + timedelta(days=181))
        expired = [i for s in applied.steps if s.action == "expire" for i in range(s.first, s.last + 1)]
        assert expired == list(range(300))  # bundles 0 and 1 lose entries; 2 and 3 keep every one
    trail = trailseal.open(data_dir)
    app = create_app(trail)
    reader = app.state.service.tokens.create("reader")[0]
    with TestClient(app, raise_server_exceptions=False) as client:
        floor = client.get("/tlog/default/minimum-index", headers=bearer(reader))
        assert floor.status_code == 200 and floor.text == f"{(max(expired) // 256 + 1) * 256}\n"
        logs = client.get("/v1/logs", headers=bearer(reader)).json()["logs"]
        assert {log["name"]: log["minimum_index"] for log in logs}["default"] == int(floor.text)
        gone = client.get("/tlog/default/tile/entries/000", headers=bearer(reader))
        assert gone.status_code == 404 and f"below the log's minimum index {int(floor.text)}" in gone.json()["error"]
        assert floor.text == "512\n"
        for n in (2, 3):  # from the minimum index on: whole bundles
            bundle = client.get(f"/tlog/default/tile/entries/{n:03d}", headers=bearer(reader))
            hashes = client.get(f"/tlog/default/tile/0/{n:03d}", headers=bearer(reader))
            assert bundle.status_code == hashes.status_code == 200
            leaves = [hashlib.sha256(b"\0" + entry).digest() for entry in decode_entry_bundle(bundle.content)]
            assert b"".join(leaves) == hashes.content
        assert client.get("/tlog/default/tile/0/000", headers=bearer(reader)).status_code == 200  # hashes stay
        fresh = client.get("/tlog/trailseal/minimum-index", headers=bearer(reader))
        assert fresh.status_code == 200 and fresh.text == "0\n"

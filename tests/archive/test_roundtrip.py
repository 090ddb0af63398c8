"""Archive round trip at scale: 50k events archived, local payloads dropped, restored byte for byte."""

from __future__ import annotations

from datetime import timedelta

import trailseal
from tests.archive.helpers import T0, FakeClock, entries, seal, without_privacy
from trailseal.archive import Archive
from trailseal.archive.dir import DirTarget
from trailseal.retention import Policies, Retention, verify_log_pruned

EVENTS = 50_000


def test_50k_events_archive_drop_restore_read_verify(data_dir, tmp_path, keys):
    clock = FakeClock(T0)
    seal(without_privacy(data_dir), clock, range(EVENTS), batch=25_000)  # sealing is setup here; keep it quick
    with trailseal.open(data_dir, clock=clock) as trail:
        original = entries(trail.store)
        retention = Retention(trail.store, Policies.from_config({"policies": {"all": {"logs": ["default"], "hot": "1d", "keep": "1y"}}}),
                              Archive(DirTarget(tmp_path / "archive"), keys), verifier=trail.verifier,
                              clock=clock.moment, segment_entries=20_000)
        applied = retention.apply(T0 + timedelta(days=1))
        assert applied.count("archive") == EVENTS and len(retention.archive.target.keys()) == 3
        assert entries(trail.store) == {}
        assert verify_log_pruned(trail.store, "default", [trail.verifier()]).ok
        assert dict(retention.read_entries("default", 0, EVENTS)) == original
        assert retention.restore("default") == EVENTS
        assert entries(trail.store) == original
        assert trail.verify("default")[0].ok and retention.verify("default", deep=True).ok

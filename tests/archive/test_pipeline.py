"""The pipelined archive and restore (segment k+1 written or verified while the store records k) stop
cleanly on a failure: earlier segments stay recorded, nothing is written behind a failed segment, and a
second run finishes the job with every entry byte-identical."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timedelta

import pytest

import trailseal
from tests.archive.helpers import T0, FakeClock, entries, seal, without_privacy
from trailseal.archive import Archive
from trailseal.archive.dir import DirTarget
from trailseal.ledger import leaf_hash
from trailseal.retention import Policies, Retention, RetentionError

EVENTS = 2_000
SEGMENT = 300
POLICY = {"policies": {"all": {"logs": ["default"], "hot": "1d", "keep": "1y"}}}


class FlakyTarget(DirTarget):
    """A directory target whose put fails on the n-th call and whose get corrupts one chosen key."""

    def __init__(self, root, fail_put: int | None = None):
        super().__init__(root)
        self.fail_put = fail_put
        self.puts = 0
        self.corrupt: str | None = None

    def put(self, key: str, blob: bytes, retain_until: datetime) -> None:
        self.puts += 1
        if self.puts == self.fail_put:
            raise OSError("disk full")
        super().put(key, blob, retain_until)

    def get(self, key: str) -> bytes:
        blob = super().get(key)
        return blob[:-1] + bytes([blob[-1] ^ 1]) if key == self.corrupt else blob


@pytest.fixture
def trail(data_dir):
    clock = FakeClock(T0)
    seal(without_privacy(data_dir), clock, range(EVENTS), batch=1_000)
    with trailseal.open(data_dir, clock=clock) as opened:
        yield opened


def retention(trail, target, keys) -> Retention:
    return Retention(trail.store, Policies.from_config(POLICY), Archive(target, keys), verifier=trail.verifier,
                     segment_entries=SEGMENT)


def recorded(trail) -> list[tuple[int, int]]:
    """(start, end) of every segment the store recorded, in order."""
    return trail.store._conn().execute("SELECT start_idx, end_idx FROM archive_segments ORDER BY start_idx").fetchall()


def test_a_failed_segment_write_keeps_earlier_segments_and_writes_none_after_it(trail, tmp_path, keys):
    original = entries(trail.store)
    flaky = FlakyTarget(tmp_path / "archive", fail_put=3)
    with pytest.raises(OSError, match="disk full"):
        retention(trail, flaky, keys).apply(T0 + timedelta(days=1))
    assert recorded(trail) == [(0, SEGMENT), (SEGMENT, 2 * SEGMENT)]
    assert len(flaky.keys()) == 2 and flaky.puts == 3  # nothing was written behind the failed segment
    assert sorted(entries(trail.store)) == list(range(2 * SEGMENT, EVENTS))
    assert trail.verify("default")[0].ok

    again = retention(trail, FlakyTarget(tmp_path / "archive"), keys)
    assert again.apply(T0 + timedelta(days=1)).count("archive") == EVENTS - 2 * SEGMENT
    assert entries(trail.store) == {}
    assert again.restore("default") == EVENTS
    assert entries(trail.store) == original


def test_restore_stops_at_a_segment_that_does_not_verify(trail, tmp_path, keys):
    original = entries(trail.store)
    target = FlakyTarget(tmp_path / "archive")
    ours = retention(trail, target, keys)
    assert ours.apply(T0 + timedelta(days=1)).count("archive") == EVENTS
    third = next(key for key in target.keys() if f"/{2 * SEGMENT:012d}-" in key)
    target.corrupt = third
    with pytest.raises(RetentionError, match="does not"):
        ours.restore("default")
    assert sorted(entries(trail.store)) == list(range(2 * SEGMENT))  # the two before it, nothing of it
    assert ours.status("default", 2 * SEGMENT) == "archived"

    target.corrupt = None
    assert ours.restore("default") == EVENTS - 2 * SEGMENT
    assert entries(trail.store) == original
    assert ours.restore("default") == 0  # nothing left to fetch


def test_rearchiving_restored_entries_drops_them_again_in_one_go(trail, tmp_path, keys):
    original = entries(trail.store)
    ours = retention(trail, FlakyTarget(tmp_path / "archive"), keys)
    ours.apply(T0 + timedelta(days=1))
    segments = len(ours.archive.target.keys())
    assert ours.restore("default", 100, 1_100) == 1_000
    applied = ours.apply(T0 + timedelta(days=1))
    assert applied.count("archive") == 0 and len(ours.archive.target.keys()) == segments
    assert entries(trail.store) == {}
    assert {ours.status("default", i) for i in range(EVENTS)} == {"archived"}
    assert dict(ours.read_entries("default", 0, EVENTS)) == original
    assert all(leaf_hash(original[i]) == leaf for i, leaf in trail.store.read_pruned("default", 0, EVENTS))


class MeddlingTarget(DirTarget):
    """A directory target that runs meddle(key) once, on its first get: another process changing the store
    while a segment is in flight."""

    def __init__(self, root, meddle):
        super().__init__(root)
        self.meddle = meddle

    def get(self, key: str) -> bytes:
        meddle, self.meddle = self.meddle, None
        if meddle is not None:
            meddle(key)
        return super().get(key)


def other_process(trail, sql: str) -> None:
    """Run one statement on a connection of its own, as another process would."""
    with closing(sqlite3.connect(trail.store.path, isolation_level=None)) as conn:
        conn.execute(sql)


def test_an_entry_that_leaves_the_store_while_its_segment_is_written_records_nothing_of_it(trail, tmp_path, keys):
    original = entries(trail.store)
    target = MeddlingTarget(tmp_path / "archive", lambda key: other_process(trail, "DELETE FROM entries WHERE idx=5"))
    with pytest.raises(RetentionError, match="1 of its entries left the store"):
        retention(trail, target, keys).apply(T0 + timedelta(days=1))
    assert recorded(trail) == []
    assert trail.store._conn().execute("SELECT count(*) FROM pruned").fetchone()[0] == 0
    assert entries(trail.store) == {i: data for i, data in original.items() if i != 5}


def test_an_entry_no_longer_archived_when_its_segment_comes_back_restores_nothing_of_it(trail, tmp_path, keys):
    ours = retention(trail, FlakyTarget(tmp_path / "archive"), keys)
    ours.apply(T0 + timedelta(days=1))
    ours.archive = Archive(MeddlingTarget(tmp_path / "archive", lambda key: other_process(
        trail, "UPDATE pruned SET state='expired' WHERE idx=5")), keys)
    with pytest.raises(RetentionError, match="1 of the entries to restore are no longer archived"):
        ours.restore("default")
    assert entries(trail.store) == {}
    assert ours.status("default", 6) == "archived" and ours.status("default", 5) == "expired"


def test_the_bulk_settings_of_the_connection_are_put_back(trail, tmp_path, keys):
    conn = trail.store._conn()
    before = [conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "wal_autocheckpoint")]
    ours = retention(trail, FlakyTarget(tmp_path / "archive"), keys)
    ours.apply(T0 + timedelta(days=1))
    ours.restore("default")
    assert [conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "wal_autocheckpoint")] == before

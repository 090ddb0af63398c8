"""verify on a live store: a writer committing while verify (or serve's integrity watch) reads must never
look like tampering, and the checks that tolerate a growing log must still catch the edits they guard
against when nothing grew: an entry past the head, a lengthened edge tile, a missing newest checkpoint."""

from __future__ import annotations

import sqlite3
import threading

import pytest

import trailseal
from tests.conftest import make_event
from trailseal.ledger.verify import verify_log

SIZE = 1000


def append_until(data_dir, stop: threading.Event, errors: list[BaseException]) -> None:
    """Commit small batches (each its own checkpoint) until stopped."""
    try:
        with trailseal.open(data_dir) as log:
            start = 10_000
            while not stop.is_set():
                log.append([make_event(i) for i in range(start, start + 7)])
                start += 7
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


@pytest.mark.parametrize("workers", [1, 2])
def test_verify_while_a_writer_commits_never_reports_tampering(data_dir, workers):
    with trailseal.open(data_dir) as log:
        for start in range(0, 2 * SIZE, 500):  # > 4 full tiles, so workers take part
            log.append([make_event(i) for i in range(start, start + 500)])
    stop, errors = threading.Event(), []
    writer = threading.Thread(target=append_until, args=(data_dir, stop, errors), daemon=True)
    writer.start()
    reports = []
    try:
        with trailseal.open(data_dir) as reader:
            for _ in range(25):
                reports.append(verify_log(reader.store, "default", [reader.verifier("default")], workers=workers))
    finally:
        stop.set()
        writer.join(30)
    assert not errors, errors
    assert [r.problem for r in reports if not r.ok] == []
    assert len({r.size for r in reports}) > 1, "the log never grew while verify ran: the test proved nothing"


@pytest.fixture
def sealed(data_dir):
    """1000 entries in 10 commits; the last tile is partial (1000 = 3 * 256 + 232)."""
    with trailseal.open(data_dir) as log:
        for start in range(0, SIZE, 100):
            log.append([make_event(i) for i in range(start, start + 100)])
    return data_dir


def db(data_dir) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "trailseal.db", isolation_level=None)


def report_of(data_dir):
    with trailseal.open(data_dir) as log:
        (report,) = log.verify("default")
    return report


def test_an_entry_past_the_head_is_still_caught(sealed):
    with db(sealed) as conn:
        conn.execute("INSERT INTO entries (log, idx, id, time, received, category, action, outcome, actor_id,"
                     " data) SELECT log, ?, 'appended', time, received, category, action, outcome,"
                     " actor_id, data FROM entries WHERE idx=0", (SIZE,))
    report = report_of(sealed)
    assert not report.ok and report.first_bad_index == SIZE
    assert "not covered by any signed checkpoint" in report.problem


def test_a_lengthened_edge_tile_is_still_caught(sealed):
    with db(sealed) as conn:
        conn.execute("UPDATE tiles SET data = CAST(data || zeroblob(32) AS BLOB) WHERE log='default' AND level=0 AND idx=3")
    report = report_of(sealed)
    assert not report.ok and "tile 0/3 does not match" in report.problem


def test_a_missing_newest_checkpoint_is_still_caught(sealed):
    with db(sealed) as conn:
        conn.execute("DELETE FROM checkpoints WHERE log='default' AND size=?", (SIZE,))
    report = report_of(sealed)
    assert not report.ok and "is not its newest stored checkpoint" in report.problem

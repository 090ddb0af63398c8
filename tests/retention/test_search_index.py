"""Payloads that leave the store leave the SQLite search indexes too (FTS words, IPs); restored ones
are searchable again."""

from __future__ import annotations

from datetime import timedelta

from tests.archive.helpers import T0
from tests.conftest import make_event
from trailseal.query.sealed import search_trail

TRACE_6 = f"{6:032x}"  # request.trace_id of make_event(6), a data_access event: one FTS token of its own


def fts_hits(trail, word: str) -> int:
    conn = trail.store._conn()  # noqa: SLF001 - looking inside the index itself
    return conn.execute("SELECT count(*) FROM entries_fts WHERE entries_fts MATCH ?", (f'"{word}"',)).fetchone()[0]


def test_archived_and_expired_payloads_leave_the_search_index(trail, retention, clock):
    trail.append([make_event(i) for i in range(20)])
    assert [e["index"] for e in search_trail(trail, TRACE_6).events] == [6]  # builds the index
    assert fts_hits(trail, TRACE_6) == 1

    retention.apply(T0 + timedelta(days=30))  # data_access: archived
    assert fts_hits(trail, TRACE_6) == 0 and search_trail(trail, TRACE_6).events == []

    assert retention.restore("default") == 8
    assert [e["index"] for e in search_trail(trail, TRACE_6).events] == [6]  # restored: indexed again
    retention.apply(T0 + timedelta(days=180))  # data_access: expired
    assert fts_hits(trail, TRACE_6) == 0 and search_trail(trail, TRACE_6).events == []
    assert all(report.ok for report in trail.verify())

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


def index_rows(trail) -> dict[str, int]:
    """Rows in each search index: FTS documents holding a word of every event, IP keys, actor keys."""
    conn = trail.store._conn()  # noqa: SLF001 - looking inside the index itself
    return {"fts": fts_hits(trail, "orders"),
            "ip": conn.execute("SELECT count(*) FROM entries_ip").fetchone()[0],
            "actor": conn.execute("SELECT count(*) FROM entries_actor WHERE log = 'default'").fetchone()[0]}


def hot_count(trail) -> int:
    return trail.store._conn().execute("SELECT count(*) FROM entries WHERE log = 'default'").fetchone()[0]  # noqa: SLF001


def test_every_index_row_of_a_moved_payload_goes_and_comes_back(trail, retention):
    trail.append([make_event(i) for i in range(60)])
    search_trail(trail, TRACE_6)  # builds the index
    assert index_rows(trail) == {"fts": 60, "ip": 60, "actor": 60}

    archived = retention.apply(T0 + timedelta(days=30)).count("archive")  # words worked out ahead, in the background
    assert archived > 0 and hot_count(trail) == 60 - archived
    assert index_rows(trail) == dict.fromkeys(("fts", "ip", "actor"), 60 - archived)

    assert retention.restore("default") == archived
    search_trail(trail, TRACE_6)  # indexes the restored entries again
    assert index_rows(trail) == {"fts": 60, "ip": 60, "actor": 60}

    assert retention.apply(T0 + timedelta(days=31)).count("archive") == 0  # restored: dropped locally again
    assert index_rows(trail) == dict.fromkeys(("fts", "ip", "actor"), 60 - archived)
    assert retention.apply(T0 + timedelta(days=400)).count("expire") > 0  # hot authentication payloads dropped
    assert 0 < hot_count(trail) < 60 - archived
    assert index_rows(trail) == dict.fromkeys(("fts", "ip", "actor"), hot_count(trail))

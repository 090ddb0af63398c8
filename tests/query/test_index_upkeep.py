"""The search indexes off the write path: actors in `entries_actor`, kept current by `serve`'s job,
caught up on demand by the CLI, and old data dirs (with the `entries_by_actor` index) migrated."""

from __future__ import annotations

import os
import sqlite3

from typer.testing import CliRunner

import trailseal
from tests.conftest import make_event, wait_for
from tests.query.test_search import without_privacy
from trailseal.cli import app as cli
from trailseal.jobs import SEARCH_INDEX_BATCH, Scheduler, default_jobs
from trailseal.query import index as query_index
from trailseal.query.indexer import NICENESS
from trailseal.query.search import count, search, timeline
from trailseal.store.base import Filters


def _events(start: int, n: int, actor: str = "alice") -> list[dict]:
    return [make_event(i, actor={"id": actor if i % 2 else f"other-{i % 5}", "type": "user"}) for i in
            range(start, start + n)]


def _index_names(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}


def test_ingest_writes_no_actor_index_and_search_still_finds_the_actor(data_dir):
    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append(_events(0, 40))
        assert "entries_by_actor" not in _index_names(trail.store.path)
        conn = query_index.connection(trail.store)
        stored = conn.execute("SELECT count(*) FROM entries").fetchone()[0]  # ours and the meta log's
        assert stored >= 40 and query_index.pending(conn) == stored  # nothing indexed at commit time
        assert count(trail.store, "actor:alice") == 20
        assert query_index.pending(conn) == 0
        assert conn.execute("SELECT count(*) FROM entries_actor WHERE actor='alice'").fetchone()[0] == 20
        newest = search(trail.store, "actor:alice", limit=3).events
        assert [e["index"] for e in newest] == sorted((e["index"] for e in newest), reverse=True)
        assert [e["actor"]["id"] for e in timeline(trail.store, "actor", "alice")] == ["alice"] * 20


def test_store_select_by_actor_uses_the_query_index(data_dir):
    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append(_events(0, 10))
        found = trail.store.select(None, Filters(actor_id="alice"), None, 100)
        assert sorted(index for _, index, _, _ in found) == [1, 3, 5, 7, 9]
        trail.append(_events(10, 4))  # committed after the last catch-up: select catches up first
        assert len(trail.store.select(["default"], Filters(actor_in=["alice", "other-0"]), None, 100)) == 9
        assert trail.store.select(None, Filters(actor_in=[]), None, 100) == []


def test_forget_takes_entries_out_of_the_actor_table(data_dir):
    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append(_events(0, 4))
        assert count(trail.store, "actor:alice") == 2
        conn = query_index.connection(trail.store)
        conn.execute("BEGIN IMMEDIATE")
        query_index.forget(conn, "default", [1])
        conn.execute("COMMIT")
        assert conn.execute("SELECT count(*) FROM entries_actor WHERE actor='alice'").fetchone()[0] == 1


def test_refresh_indexes_a_backlog_in_bounded_batches(data_dir):
    with trailseal.open(without_privacy(data_dir)) as trail:
        conn = query_index.connection(trail.store)
        query_index.refresh(conn)
        trail.append(_events(0, SEARCH_INDEX_BATCH + 7))
        behind = query_index.pending(conn)
        assert behind >= SEARCH_INDEX_BATCH + 7
        batches: list[int] = []
        query_index.refresh(conn, SEARCH_INDEX_BATCH, batches.append)
        assert batches == [SEARCH_INDEX_BATCH, behind - SEARCH_INDEX_BATCH]
        assert query_index.pending(conn) == 0


def test_serve_job_runs_a_child_indexer_that_keeps_up_restarts_and_stops(data_dir):
    with trailseal.open(without_privacy(data_dir)) as trail:
        conn = query_index.connection(trail.store)
        trail.append(_events(0, 2_500))
        jobs = [job for job in default_jobs(trail) if job.name == "search-index"]
        assert len(jobs) == 1 and jobs[0].interval_seconds <= 1.0
        scheduler = Scheduler(jobs)
        assert scheduler.run_due(now=1e9) == ["search-index"] and jobs[0].last_error is None
        child = jobs[0].run.__self__.proc
        assert child.pid != os.getpid() and child.poll() is None
        assert wait_for(lambda: query_index.pending(conn) == 0, 30)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
        indexed = conn.execute("SELECT count(*) FROM entries_actor").fetchone()[0]  # the child's work
        assert indexed == conn.execute("SELECT count(*) FROM entries").fetchone()[0] >= 2_500
        trail.append(_events(2_500, 40))  # later commits reach the index without a search asking
        assert wait_for(lambda: query_index.pending(conn) == 0, 30)
        child.kill()
        child.wait()
        scheduler.run_due(now=2e9)  # the next run finds it dead and starts another
        again = jobs[0].run.__self__.proc
        assert again.pid != child.pid and again.poll() is None
        scheduler.stop()
        assert again.poll() is not None


def test_an_old_data_dir_is_migrated_on_open(data_dir):
    """A data dir from before: `entries_by_actor` on entries, FTS indexed, `entries_actor` missing or short."""
    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append(_events(0, 30))
        count(trail.store, "alice")  # index everything, as the old code did
        path = trail.store.path
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM entries_actor WHERE seq % 2 = 0")  # as left by a downgrade and upgrade
        conn.execute("CREATE INDEX entries_by_actor ON entries (log, actor_id, time)")
    query_index._ready.discard(path)  # a new process  # noqa: SLF001
    with trailseal.open(data_dir) as trail:
        assert "entries_by_actor" not in _index_names(path)  # dropped when the store opens
        assert count(trail.store, "actor:alice") == 15  # the backfill covers what was indexed before
        trail.append(_events(30, 2))
        assert count(trail.store, "actor:alice") == 16


def test_cli_index_and_query_catch_up_on_a_data_dir_without_server(data_dir):
    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append(_events(0, 12))
    result = CliRunner().invoke(cli, ["query", "actor:alice", "--data", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count('"index"') == 6
    with trailseal.open(data_dir) as trail:
        trail.append(_events(12, 5))
    result = CliRunner().invoke(cli, ["index", "--data", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "indexed 5 new entries" in result.output
    helped = CliRunner().invoke(cli, ["index", "--help"])
    assert helped.exit_code == 0 and "search indexes" in helped.output


def test_index_rebuild_derives_every_row_again(data_dir):
    with trailseal.open(without_privacy(data_dir)) as trail:
        events = _events(0, 40)
        for i, event in enumerate(events):
            event["actor"]["ip"] = f"10.0.{i % 3}.{i}"
        trail.append(events)
        found = count(trail.store, "actor:alice")
        conn = query_index.connection(trail.store)
        tables = ("entries_ip", "entries_actor")
        full = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
        assert min(full) >= 40
        conn.execute("DELETE FROM entries_actor WHERE seq % 2 = 0")  # as a build with a gap would leave it
        conn.execute("DELETE FROM entries_ip")
        assert count(trail.store, "actor:alice") < found
    result = CliRunner().invoke(cli, ["index", "--rebuild", "--data", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "indexed 41 new entries" in result.output  # the 40 and the privacy-policy record
    with trailseal.open(data_dir) as trail:
        conn = query_index.connection(trail.store)
        assert [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables] == full
        assert count(trail.store, "actor:alice") == found
        assert count(trail.store, "alice") >= found  # the full-text table was refilled, not doubled
        conn.execute("INSERT INTO entries_fts (entries_fts) VALUES ('integrity-check')")


def test_session_and_trace_move_from_expression_indexes_to_entries_keys(data_dir):
    """Commits keep no JSON expression index; a data dir that had them gets `entries_keys` filled instead."""
    def with_keys(start: int, n: int) -> list[dict]:
        events = _events(start, n)
        for i, event in enumerate(events, start):
            event["actor"]["session"] = f"s-{i % 4}"
            event["request"] = {"trace_id": f"{i % 3:032x}"}
        return events

    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append(with_keys(0, 40))
        assert count(trail.store, "session:s-1") == 10 and count(trail.store, "trace:" + f"{2:032x}") == 13
        path = trail.store.path
        assert not {"entries_by_session", "entries_by_trace"} & _index_names(path)
    with sqlite3.connect(path) as conn:  # as a build from before left it
        conn.execute("DROP TABLE entries_keys")
        conn.execute("CREATE INDEX entries_by_session ON entries (log, json_extract(data, '$.actor.session'), time)")
        conn.execute("CREATE INDEX entries_by_trace ON entries (log, json_extract(data, '$.request.trace_id'), time)")
    query_index._ready.discard(path)  # a new process  # noqa: SLF001
    with trailseal.open(data_dir) as trail:
        assert count(trail.store, "session:s-1") == 10  # the moved rows of what was indexed before
        assert not {"entries_by_session", "entries_by_trace"} & _index_names(path)
        trail.append(with_keys(40, 4))
        assert count(trail.store, "session:s-1") == 11
        assert [e["index"] for e in timeline(trail.store, "trace", f"{1:032x}")] == list(range(1, 44, 3))


def test_the_child_indexer_stops_between_batches_when_told(data_dir):
    """SIGTERM in the middle of a backlog: the child ends its batch and exits at once (it used to index the
    whole backlog first, so `serve` waited out the grace period and killed it)."""
    from trailseal.query.indexer import IndexerProcess

    with trailseal.open(without_privacy(data_dir)) as trail:
        conn = query_index.connection(trail.store)
        trail.append(_events(0, 6_000))
        child = IndexerProcess(trail.store.path, interval=0.05, batch=20)
        child.ensure_running()
        assert wait_for(lambda: query_index.pending(conn) < 5_900, 30)  # it is in the middle of the backlog
        child.proc.terminate()
        child.proc.wait(5)
        assert child.proc.returncode == 0  # exited on its own, not killed
        left = query_index.pending(conn)
        assert 0 < left < 6_000  # stopped part-way, between batches
        assert query_index.refresh(conn) == left and query_index.pending(conn) == 0  # the rest is still there


def test_search_connections_read_pages_without_a_memory_map(data_dir):
    """A fault on a mapped file reads around the page, up to the device's read-ahead (8 MB here): a cold
    search read tens of MB for a few rows. pread reads the page alone."""
    with trailseal.open(data_dir) as trail:
        assert query_index.connection(trail.store).execute("PRAGMA mmap_size").fetchone()[0] == 0

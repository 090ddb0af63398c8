"""The store's checkpointer thread copies the WAL back between commits, so the writer's own automatic
checkpoint (still the one that rewinds the WAL) finds almost nothing left to copy."""

from __future__ import annotations

import os
import time

import trailseal
from tests.conftest import make_event


def test_a_background_thread_copies_committed_frames_into_the_database_file(data_dir):
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(0)])
        store = trail.store
        assert store._checkpointer is None  # a library writer has none unless asked (serve asks)
        store.start_checkpointer()
        database = store.path
        checkpointer = store._checkpointer
        size_before = os.path.getsize(database)
        for start in range(1, 3001, 300):  # a few MB of WAL: far below the writer's 40 MB autocheckpoint
            trail.append([make_event(i) for i in range(start, start + 300)])
        assert store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000  # the writer keeps it
        deadline = time.monotonic() + 20
        while (checkpointer.runs == 0 or os.path.getsize(database) <= size_before + 500_000) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.runs >= 1 and os.path.getsize(database) > size_before + 500_000
        assert all(r.ok for r in trail.verify())
    assert not checkpointer._thread.is_alive()  # closing the store stops it


def test_writer_checkpointer_child_indexer_and_searches_together_leave_an_intact_database(data_dir):
    from trailseal.query import index
    from trailseal.query.indexer import IndexerProcess

    with trailseal.open(data_dir) as trail:
        trail.append([make_event(0)])
        trail.store.start_checkpointer()
        indexer = IndexerProcess(trail.store.path, interval=0.02, batch=100)
        indexer.ensure_running()
        try:
            conn = index.connection(trail.store)
            for start in range(1, 6001, 200):
                trail.append([make_event(i) for i in range(start, start + 200)])
                index.refresh(conn, 150)  # a second indexer racing the child, as searches do
        finally:
            indexer.stop()
        index.refresh(conn)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO entries_fts (entries_fts) VALUES ('integrity-check')")  # raises if corrupt
        indexed = conn.execute("SELECT count(*) FROM entries_actor").fetchone()[0]
        assert indexed == conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        assert all(r.ok for r in trail.verify())


def test_the_server_app_starts_the_checkpointer(data_dir):
    from trailseal.api import create_app

    trail = trailseal.open(data_dir)
    try:
        create_app(trail, detect=False, scheduled=False, receivers_on=False)
        assert trail.store._checkpointer is not None and trail.store._checkpointer._thread.is_alive()
    finally:
        trail.close()


def test_erase_tries_the_wal_truncation_again_while_another_checkpoint_holds_it():
    """serve's checkpointer or the indexer child can make a TRUNCATE checkpoint answer busy for a moment."""
    from trailseal.store.sqlite import truncate_wal

    class Answers:
        def __init__(self, busy: int) -> None:
            self.busy, self.calls = busy, 0

        def execute(self, sql: str):
            assert sql == "PRAGMA wal_checkpoint(TRUNCATE)"
            self.calls += 1
            return self

        def fetchone(self):
            return (1 if self.calls <= self.busy else 0, 10, 10)

    twice = Answers(busy=2)
    assert truncate_wal(twice, attempts=5, pause=0) and twice.calls == 3
    always = Answers(busy=99)
    assert not truncate_wal(always, attempts=5, pause=0) and always.calls == 5

"""The writer never checkpoints the WAL inside a commit; the store's checkpointer thread does."""

from __future__ import annotations

import time

import trailseal
from tests.conftest import make_event
from trailseal.store import sqlite as sqlite_store


def test_a_background_thread_copies_the_wal_back_and_commits_do_not(data_dir, monkeypatch):
    monkeypatch.setattr(sqlite_store, "WAL_CHECKPOINT_PAGES", 40)
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(0)])
        store = trail.store
        writer_setting = []
        trail.sealer.on_commit.append(
            lambda _: writer_setting.append(store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0]))
        shm = store.path + "-shm"
        for start in range(1, 3001, 300):
            trail.append([make_event(i) for i in range(start, start + 300)])
        assert writer_setting and set(writer_setting) == {0}  # the sealer's connection leaves it to the thread
        checkpointer = store._checkpointer
        deadline = time.monotonic() + 20
        while (checkpointer.runs == 0 or sqlite_store.wal_backlog(shm) >= 40) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.runs >= 1 and sqlite_store.wal_backlog(shm) < 40
        assert all(r.ok for r in trail.verify())
    assert not checkpointer._thread.is_alive()  # closing the store stops it

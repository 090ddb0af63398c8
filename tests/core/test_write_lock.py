"""Writers queued behind another connection's write transaction (serve's search indexer, another process)
poll for the lock themselves instead of SQLite's busy handler, whose sleeps grow to 25-100 ms."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from trailseal.store.sqlite import LOCK_TIMEOUT_SECONDS, begin_immediate, write_transaction


def connect(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "lock.db"
    with connect(path) as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
    return path


def busy_timeout(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA busy_timeout").fetchone()[0]


def test_a_writer_waits_for_the_lock_and_then_writes(db):
    holder, waiter = connect(db), connect(db)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    started, done = threading.Event(), threading.Event()

    def write() -> None:
        started.set()
        with write_transaction(waiter):
            waiter.execute("INSERT INTO t VALUES (2)")
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    started.wait()
    assert not done.wait(0.2), "the writer took a lock another connection holds"
    holder.execute("COMMIT")
    thread.join(10)
    assert done.is_set()
    assert sorted(v for (v,) in holder.execute("SELECT v FROM t")) == [1, 2]
    assert busy_timeout(waiter) == int(LOCK_TIMEOUT_SECONDS * 1000), "the busy timeout was not put back"


def test_a_lock_held_past_the_timeout_is_reported_and_nothing_is_left_open(db):
    holder, waiter = connect(db), connect(db)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(waiter, timeout=0.05)
    assert not waiter.in_transaction
    assert busy_timeout(waiter) == int(LOCK_TIMEOUT_SECONDS * 1000)
    holder.execute("COMMIT")
    with write_transaction(waiter):
        waiter.execute("INSERT INTO t VALUES (3)")
    assert [v for (v,) in holder.execute("SELECT v FROM t")] == [3]


def test_other_errors_are_not_waited_on(db):
    conn = connect(db)
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        begin_immediate(conn)
    conn.execute("ROLLBACK")


def test_the_connections_own_busy_timeout_is_put_back(db):
    conn = sqlite3.connect(db, timeout=5, isolation_level=None)
    with write_transaction(conn):
        conn.execute("INSERT INTO t VALUES (4)")
    assert busy_timeout(conn) == 5000

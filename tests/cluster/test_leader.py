"""Leadership by PostgreSQL advisory lock: one holder, the next takes over when its session dies."""

from __future__ import annotations

import threading

import psycopg

from trailseal.cluster.leader import LeaderLock, lock_key


def test_one_holder_at_a_time_and_takeover_when_the_session_dies(pg_url):
    key = lock_key("TS_LEADER_TEST", "*")
    first, second = LeaderLock(pg_url, key, "trailseal-sequencer a"), LeaderLock(pg_url, key, "trailseal-sequencer b")
    try:
        assert first.try_acquire() and first.held()
        assert not second.try_acquire() and not second.held()
        with psycopg.connect(pg_url, autocommit=True) as admin:  # the leader's session dies
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE application_name = 'trailseal-sequencer a'")
        assert not first.held()
        assert second.wait(0.05, threading.Event()) and second.held()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def test_shards_and_streams_have_their_own_locks(pg_url):
    assert lock_key("A", "*") != lock_key("A", "default") != lock_key("B", "default")
    one, other = LeaderLock(pg_url, lock_key("A", "x"), "t1"), LeaderLock(pg_url, lock_key("A", "y"), "t2")
    try:
        assert one.try_acquire() and other.try_acquire()
    finally:
        one.release()
        other.release()


def test_wait_gives_up_when_stopped(pg_url):
    key = lock_key("TS_LEADER_STOP", "*")
    holder, waiter = LeaderLock(pg_url, key, "h"), LeaderLock(pg_url, key, "w")
    stop = threading.Event()
    try:
        assert holder.try_acquire()
        threading.Timer(0.2, stop.set).start()
        assert waiter.wait(0.05, stop) is False
    finally:
        holder.release()
        waiter.release()


def test_an_unreachable_database_means_not_leader():
    lock = LeaderLock("postgresql://postgres@127.0.0.1:1/none?connect_timeout=1", 1, "x")
    assert lock.try_acquire() is False and lock.held() is False

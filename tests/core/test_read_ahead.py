"""read_ahead: an iterator made and run in a thread of its own, a few items ahead, in order; its errors
come out to the consumer; a consumer that stops early stops it."""

from __future__ import annotations

import threading

import pytest

from trailseal.read_ahead import read_ahead


def test_items_come_in_order_made_in_another_thread():
    threads = set()

    def make():
        threads.add(threading.get_ident())
        for n in range(100):
            threads.add(threading.get_ident())
            yield n

    assert list(read_ahead(make, depth=3)) == list(range(100))
    assert threads and threading.get_ident() not in threads


def test_an_error_there_is_raised_here_after_the_items_before_it():
    def make():
        yield 1
        yield 2
        raise ValueError("page 3 unreadable")

    seen = []
    with pytest.raises(ValueError, match="page 3 unreadable"):
        for item in read_ahead(make):
            seen.append(item)
    assert seen == [1, 2]


def test_an_error_making_the_iterator_is_raised_here():
    def make():
        raise LookupError("no such log")

    with pytest.raises(LookupError, match="no such log"):
        next(read_ahead(make))


def test_a_consumer_that_stops_early_stops_the_thread_and_closes_the_iterator():
    made, closed = [], threading.Event()

    def make():
        try:
            for n in range(1_000_000):
                made.append(n)
                yield n
        finally:
            closed.set()

    before = set(threading.enumerate())
    items = read_ahead(make, depth=2)
    assert [next(items), next(items)] == [0, 1]
    (thread,) = set(threading.enumerate()) - before
    items.close()
    assert closed.is_set()  # close() returned only after the thread ended and closed its iterator
    assert len(made) <= 2 + 2 + 1  # taken, queued, and the one it was putting
    assert thread.name == "trailseal-read-ahead" and not thread.is_alive()

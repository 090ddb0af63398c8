"""A few reader threads on one SQLite file, so that a page's cold random reads overlap.

A search page reads about a hundred entry rows and two hundred vault rows at random places in a file far
bigger than memory. One connection reads them one after another, each a disk read when cold. Split over
``READERS`` threads (each with its own read-only connection; sqlite3 releases the GIL while it reads),
the reads are in flight together: on this project's VM, 200 vault lookups of a cold 10M-event store took
35-41 ms on one connection and 14-16 ms on four (BENCHMARKS, session 21). Warm, a split costs the thread
hand-offs (tens of microseconds), so callers split only above ``SPLIT_ABOVE`` items.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

READERS = 4
SPLIT_ABOVE = 32  # items a caller looks up on its own connection rather than split over the readers

T = TypeVar("T")
R = TypeVar("R")


def read_only(path: str) -> sqlite3.Connection:
    """A read-only connection to a SQLite database file, usable from any thread."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


class Readers:
    """Reader threads with read-only connections to one database file, started on first use."""

    def __init__(self, path: str, threads: int = READERS):
        self.path, self.threads = path, threads
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def map(self, read: Callable[[sqlite3.Connection, Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """read(connection, part) for ``items`` split into one part per reader, run together; results in order."""
        if not items:
            return []
        size = -(-len(items) // self.threads)
        parts = [items[start:start + size] for start in range(0, len(items), size)]
        return list(self._executor().map(lambda part: read(self._connection(), part), parts))

    def _executor(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="trailseal-reader")
            return self._pool

    def _connection(self) -> sqlite3.Connection:
        """This reader thread's connection (opened on its first read)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = read_only(self.path)
            with self._guard:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

"""Leadership: one active sequencer per log, by a PostgreSQL session advisory lock.

The lock lives on a dedicated connection: when the leader dies, PostgreSQL ends its session and
frees the lock, and a standby polling `pg_try_advisory_lock` takes over. TCP keepalives bound how
long a leader that vanished from the network (rather than died) can keep it. The database also
fences a stale leader: `entry_ids` is unique on (log, id) and (log, idx), so two writers can never
seal the same index or the same id twice.
"""

from __future__ import annotations

import hashlib
import threading

import psycopg

from trailseal.store.base import StoreError

KEEPALIVES = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 3,
              "tcp_user_timeout": 5000}


def lock_key(stream: str, shard: str) -> int:
    """A stable signed 64-bit advisory lock key for one (stream, shard)."""
    digest = hashlib.sha256(f"trailseal-sequencer\n{stream}\n{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderLock:
    """pg_try_advisory_lock on a connection of its own; `held()` says whether it still is."""

    def __init__(self, url: str, key: int, name: str):
        self.url, self.key, self.name = url, key, name
        self._conn: psycopg.Connection | None = None

    def try_acquire(self) -> bool:
        """Take the lock if no one holds it; False (not an error) if someone does or the DB is away."""
        try:
            conn = self._connection()
            taken = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
        except (psycopg.Error, StoreError):
            self.release()
            return False
        return bool(taken)

    def wait(self, poll_seconds: float, stop: threading.Event) -> bool:
        """Poll until the lock is ours (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if self.try_acquire():
                return True
            stop.wait(poll_seconds)
        return False

    def held(self) -> bool:
        """Whether our session is alive and still holds the lock."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
                " AND objid = (%s::bigint & 4294967295)::oid AND classid = ((%s::bigint >> 32) & 4294967295)::oid",
                (self.key, self.key)).fetchone()
        except psycopg.Error:
            self.release()
            return False
        return row[0] > 0

    def release(self) -> None:
        """Close the session (which frees the lock)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, application_name=self.name,
                                             connect_timeout=3, **KEEPALIVES)
            except psycopg.Error as exc:
                raise StoreError(f"leader lock: cannot connect: {exc}") from exc
        return self._conn

"""Versioned PostgreSQL schema migrations: NNNN_name.sql files, applied in order, recorded once.

`migrate(conn)` runs at every PostgresStore open. Fast path: every known migration is already
recorded with the same checksum, nothing to do. Otherwise, under a transaction-scoped advisory
lock (so two processes opening at once cannot race), it applies the missing ones in one
transaction and records each in `trailseal_migrations`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from trailseal.store.base import StoreError

LOCK = "SELECT pg_advisory_xact_lock(hashtext('trailseal.migrations'))"
TABLE = """CREATE TABLE IF NOT EXISTS trailseal_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied timestamptz NOT NULL DEFAULT now())"""
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the script: an applied migration must never change."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """Every migration shipped with this trailseal, by version."""
    found = []
    for item in resources.files(__name__).iterdir():
        match = _FILE.fullmatch(item.name)
        if match:
            found.append(Migration(int(match[1]), match[2], item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 1..n without gaps: {[m.version for m in found]}")
    return found


def latest() -> int:
    """The schema version this trailseal writes."""
    return available()[-1].version


def applied(conn: psycopg.Connection) -> dict[int, str]:
    """Recorded migrations: version -> checksum ({} on a database never migrated)."""
    if conn.execute("SELECT to_regclass('trailseal_migrations')").fetchone()[0] is None:
        return {}
    return dict(conn.execute("SELECT version, checksum FROM trailseal_migrations").fetchall())


def check(done: dict[int, str], known: list[Migration]) -> list[Migration]:
    """The migrations still to apply; raises if the database is newer or was migrated differently."""
    newest = max(done, default=0)
    if newest > len(known):
        raise StoreError(f"database has schema v{newest}; this trailseal knows v{len(known)}. Upgrade trailseal.")
    for m in known:
        if m.version in done and done[m.version] != m.checksum:
            raise StoreError(f"migration {m.version:04d}_{m.name} was applied with a different checksum; "
                             "the schema was changed outside trailseal")
    return [m for m in known if m.version not in done]


def migrate(conn: psycopg.Connection) -> int:
    """Bring the schema up to date (idempotent, safe to run concurrently); return its version."""
    known = available()
    try:
        if check(applied(conn), known):
            with conn.transaction():
                conn.execute(LOCK)
                _apply_pending(conn, known)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreError(f"{str(exc).strip()}: migrations take the owner role, and the application role needs "
                         "`SELECT trailseal_grant_writer('<role>')` run by the owner (docs/postgres.md)") from exc
    return len(known)


def _apply_pending(conn: psycopg.Connection, known: list[Migration]) -> None:
    """Under the lock: create the record table if needed, then run what is still missing.

    Not to_regclass() here: it reads the catalog cache, which may predate the lock holder's commit.
    """
    conn.execute(TABLE)
    done = dict(conn.execute("SELECT version, checksum FROM trailseal_migrations").fetchall())
    for m in check(done, known):
        _apply(conn, m)


def _apply(conn: psycopg.Connection, m: Migration) -> None:
    """Run one script and record it, inside the caller's transaction."""
    conn.execute(m.sql.encode(), prepare=False)
    conn.execute("INSERT INTO trailseal_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                 (m.version, m.name, m.checksum))

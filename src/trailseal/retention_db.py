"""Retention's tables and connections on both stores: SQLite (the store's own connection) and PostgreSQL.

Retention speaks one SQL (qmark parameters, `glob(pattern, value)`, timestamps as RFC 3339 text);
``connection(store)`` hands it the store's connection, adapted for PostgreSQL where needed, and
``ensure_schema`` creates its tables: `pruned` (leaf hash and state of every entry whose payload
left the store), `archive_segments`, `legal_holds`, `legal_hold_ids`.

On PostgreSQL the sealed `entries` table refuses UPDATE and DELETE for every role (triggers). Retention
replaces the DELETE trigger by one that lets a payload go only once `pruned` holds its leaf hash, and
the hash matches the payload: the database itself keeps the evidence that a pruned entry existed and
what it was. Run retention as the owner role (the application role has no DELETE grant).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from trailseal.store.base import StoreError

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS pruned (log TEXT NOT NULL, idx INTEGER NOT NULL, id TEXT NOT NULL,
    leaf_hash BLOB NOT NULL, category TEXT NOT NULL, received TEXT NOT NULL,
    time TEXT, action TEXT, outcome TEXT, actor_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('archived', 'restored', 'expired')),
    policy TEXT NOT NULL, segment TEXT, archived_at TEXT, expired_at TEXT,
    source_component TEXT, source_kind TEXT,
    PRIMARY KEY (log, idx)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS pruned_by_id ON pruned (log, id);
CREATE INDEX IF NOT EXISTS pruned_expired ON pruned (log, idx) WHERE state = 'expired';
CREATE TABLE IF NOT EXISTS archive_segments (key TEXT PRIMARY KEY, log TEXT NOT NULL, policy TEXT NOT NULL,
    start_idx INTEGER NOT NULL, end_idx INTEGER NOT NULL, count INTEGER NOT NULL, size INTEGER NOT NULL,
    retain_until TEXT NOT NULL, created TEXT NOT NULL, held INTEGER NOT NULL DEFAULT 0, deleted TEXT);
CREATE TABLE IF NOT EXISTS legal_holds (id INTEGER PRIMARY KEY, reason TEXT NOT NULL, query TEXT,
    created TEXT NOT NULL, released TEXT);
CREATE TABLE IF NOT EXISTS legal_hold_ids (hold INTEGER NOT NULL, log TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (hold, log, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS legal_hold_ids_by_id ON legal_hold_ids (log, id);
CREATE TABLE IF NOT EXISTS vault_expiring (log TEXT NOT NULL, subject TEXT NOT NULL,
    PRIMARY KEY (log, subject)) WITHOUT ROWID;
"""

POSTGRES_SCHEMA = r"""
SELECT pg_advisory_xact_lock(hashtext('trailseal.retention'));
CREATE TABLE IF NOT EXISTS pruned (log text COLLATE "C" NOT NULL, idx bigint NOT NULL, id text COLLATE "C" NOT NULL,
    leaf_hash bytea NOT NULL, category text COLLATE "C" NOT NULL, received text COLLATE "C" NOT NULL,
    time text COLLATE "C", action text COLLATE "C", outcome text COLLATE "C", actor_id text COLLATE "C",
    state text NOT NULL CHECK (state IN ('archived', 'restored', 'expired')),
    policy text NOT NULL, segment text, archived_at text, expired_at text,
    source_component text, source_kind text,
    PRIMARY KEY (log, idx));
ALTER TABLE pruned ADD COLUMN IF NOT EXISTS source_component text;
ALTER TABLE pruned ADD COLUMN IF NOT EXISTS source_kind text;
CREATE UNIQUE INDEX IF NOT EXISTS pruned_by_id ON pruned (log, id);
CREATE INDEX IF NOT EXISTS pruned_expired ON pruned (log, idx) WHERE state = 'expired';
CREATE TABLE IF NOT EXISTS archive_segments (key text COLLATE "C" PRIMARY KEY, log text NOT NULL,
    policy text NOT NULL, start_idx bigint NOT NULL, end_idx bigint NOT NULL, count bigint NOT NULL,
    size bigint NOT NULL, retain_until text NOT NULL, created text NOT NULL, held integer NOT NULL DEFAULT 0,
    deleted text);
CREATE TABLE IF NOT EXISTS legal_holds (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, reason text NOT NULL,
    query text, created text NOT NULL, released text);
CREATE TABLE IF NOT EXISTS legal_hold_ids (hold bigint NOT NULL, log text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL, PRIMARY KEY (hold, log, id));
CREATE INDEX IF NOT EXISTS legal_hold_ids_by_id ON legal_hold_ids (log, id);
CREATE TABLE IF NOT EXISTS vault_expiring (log text COLLATE "C" NOT NULL, subject text COLLATE "C" NOT NULL,
    PRIMARY KEY (log, subject));
CREATE OR REPLACE FUNCTION glob(pattern text, value text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
    $$ SELECT value LIKE replace(replace(replace(pattern, '\', '\\'), '%', '\%'), '*', '%') $$;
CREATE OR REPLACE FUNCTION trailseal_prune_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pruned p WHERE p.log = OLD.log AND p.idx = OLD.idx
                   AND p.leaf_hash = sha256('\x00'::bytea || OLD.data)) THEN
        RAISE EXCEPTION 'trailseal: DELETE of entry %/% refused: only retention drops a payload, once its '
            'leaf hash is recorded in pruned', OLD.log, OLD.idx
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END $$;
DROP TRIGGER IF EXISTS entries_sealed ON entries;
CREATE TRIGGER entries_sealed BEFORE UPDATE ON entries FOR EACH ROW EXECUTE FUNCTION trailseal_refuse_change();
CREATE OR REPLACE TRIGGER entries_pruned BEFORE DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION trailseal_prune_only();
"""


class PostgresConnection:
    """A psycopg connection speaking the sqlite3 subset retention uses (qmark parameters, executemany)."""

    def __init__(self, raw):
        """Wrap the store's autocommit connection."""
        self.raw = raw

    def execute(self, sql: str, params: Any = ()):
        """Run one statement; the cursor has fetchone/fetchall/rowcount like sqlite3's."""
        return self.raw.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, rows: list) -> None:
        """Run one statement per row."""
        if rows:
            with self.raw.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)


def is_postgres(conn) -> bool:
    """Whether retention runs on PostgreSQL."""
    return isinstance(conn, PostgresConnection)


def connection(store) -> sqlite3.Connection | PostgresConnection:
    """This thread's connection to the store, as retention speaks to it."""
    conn = getattr(store, "_conn", None)
    if conn is None:
        raise StoreError(f"retention does not know the {type(store).__name__} store")
    raw = conn()
    return raw if isinstance(raw, sqlite3.Connection) else PostgresConnection(raw)


def ensure_schema(conn) -> None:
    """Create retention's tables (and, on PostgreSQL, the prune-only DELETE trigger) if missing."""
    if not is_postgres(conn):
        conn.executescript(SQLITE_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(pruned)")}
        for column in ("source_component", "source_kind"):  # a data dir from before source policies
            if column not in columns:
                conn.execute(f"ALTER TABLE pruned ADD COLUMN {column} TEXT")
        return
    if _postgres_ready(conn):
        return
    import psycopg

    try:
        with conn.raw.transaction():
            conn.raw.execute(POSTGRES_SCHEMA.encode(), prepare=False)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreError(f"retention on PostgreSQL runs as the owner role of the trailseal schema (it creates "
                         f"its tables and the prune-only DELETE trigger of entries): {exc}") from None


def _postgres_ready(conn: PostgresConnection) -> bool:
    """Whether the tables and the trigger are already there."""
    row = conn.raw.execute("SELECT to_regclass('pruned') IS NOT NULL AND EXISTS (SELECT 1 FROM pg_trigger "
                           "WHERE tgname = 'entries_pruned' AND tgrelid = to_regclass('entries')) AND EXISTS "
                           "(SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('pruned') "
                           "AND attname = 'source_kind') AND to_regclass('vault_expiring') IS NOT NULL "
                           "AND to_regclass('pruned_expired') IS NOT NULL").fetchone()
    return bool(row[0])


def minimum_index(conn, log: str, size: int) -> int:
    """The log's C2SP tlog-tiles *minimum index*: every entry bundle from it on can be served whole (no entry
    in it expired), so it is the end of the bundle holding the newest expired entry (0 if none expired,
    never past ``size``). Expiry here is per category, not a prefix: entries below it may still be there.
    One seek in ``pruned_expired`` (archived rows above it are not scanned)."""
    if is_postgres(conn):
        if not conn.execute("SELECT to_regclass('pruned') IS NOT NULL").fetchone()[0]:
            return 0
        expired = "pruned"
    else:
        found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE name IN ('pruned', "
                                                "'pruned_expired')")}
        if "pruned" not in found:
            return 0
        # without statistics SQLite would walk the primary key (the index is made when retention next opens)
        expired = "pruned INDEXED BY pruned_expired" if "pruned_expired" in found else "pruned"
    newest = conn.execute(f"SELECT max(idx) FROM {expired} WHERE log = ? AND state = 'expired'", (log,)).fetchone()[0]
    return 0 if newest is None else min(size, (newest // 256 + 1) * 256)


def has_active_holds(conn) -> bool:
    """Whether the store holds any legal hold not yet released (False before retention ever ran). On
    PostgreSQL, a role that may not read the holds gets a StoreError saying so (it cannot tell)."""
    if is_postgres(conn):
        if not conn.execute("SELECT to_regclass('legal_holds') IS NOT NULL").fetchone()[0]:
            return False
        readable = "SELECT bool_and(has_table_privilege(t, 'SELECT')) FROM unnest(ARRAY['legal_holds', " \
                   "'legal_hold_ids', 'pruned']) AS t"
        if not conn.execute(readable).fetchone()[0]:
            raise StoreError("this role may not read the legal holds (legal_holds, legal_hold_ids, pruned), so it "
                             "cannot tell whether a hold keeps the subject's events: run this as the owner role, "
                             "or GRANT SELECT on those tables to this role")
    elif not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'legal_holds'").fetchone():
        return False
    return conn.execute("SELECT 1 FROM legal_holds WHERE released IS NULL LIMIT 1").fetchone() is not None


def source_sql(conn, column: str, field: str) -> str:
    """SQL reading ``source.<field>`` out of an entries ``data`` column (sealed canonical JSON)."""
    if is_postgres(conn):
        return f"(convert_from({column}, 'UTF8')::jsonb -> 'source' ->> '{field}')"
    return f"json_extract({column}, '$.source.{field}')"


def timestamp(conn, column: str) -> str:
    """SQL reading a store timestamp column as RFC 3339 text with microseconds and Z."""
    if not is_postgres(conn):
        return column
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


class Transaction:
    """BEGIN ... COMMIT, rolled back on any error (SQLite: BEGIN IMMEDIATE, taking the write lock now)."""

    def __init__(self, conn):
        """Wrap a connection in autocommit mode."""
        self.conn = conn

    def __enter__(self):
        """Begin."""
        self.conn.execute("BEGIN" if is_postgres(self.conn) else "BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, *exc: object) -> None:
        """Commit, or roll back if the block raised."""
        self.conn.execute("ROLLBACK" if kind else "COMMIT")

"""The PostgreSQL store: COPY batches, monthly entry partitions, immutability enforced by the database.

Schema and roles: store/migrations/ and docs/postgres.md. One connection per thread (autocommit
for reads); a group commit is one transaction: COPY of every log's entries and ids, tile upserts,
checkpoint inserts and the logs head, so a crash keeps all of it or none.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import psycopg
from psycopg import conninfo

from trailseal.event import format_time
from trailseal.store import migrations
from trailseal.store.base import Commit, Cursor, EntryRow, Filters, LogInfo, StoreError, rightmost_tiles

ENTRY_COLUMNS = "log, idx, received, time, id, category, action, outcome, actor_id, data"
ENTRY_TYPES = ["text", "int8", "timestamptz", "timestamptz", "text", "text", "text", "text", "text", "bytea"]
ID_TYPES = ["text", "text", "int8", "timestamptz"]
COPY_ENTRIES = f"COPY entries ({ENTRY_COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_IDS = "COPY entry_ids (log, id, idx, received) FROM STDIN (FORMAT BINARY)"
UPSERT_TILE = ("INSERT INTO tiles (log, level, idx, data) VALUES (%s, %s, %s, %s) ON CONFLICT (log, level, idx)"
               " DO UPDATE SET data = excluded.data WHERE tiles.data IS DISTINCT FROM excluded.data")
INSERT_CHECKPOINT = "INSERT INTO checkpoints (log, size, note, created) VALUES (%s, %s, %s, %s)"
UPSERT_LOG = ("INSERT INTO logs (name, size, checkpoint) VALUES (%s, %s, %s) ON CONFLICT (name)"
              " DO UPDATE SET size = excluded.size, checkpoint = excluded.checkpoint")
ENSURE_PARTITIONS = "SELECT trailseal_ensure_partitions(%s::date[])"
PAGE = 4096
# The sealed bytes as json for path filters; PostgreSQL json cannot hold \u0000, so it reads as U+FFFD.
JSON = "replace(convert_from(data, 'UTF8'), '\\u0000', '\\ufffd')::json"


class PostgresStore:
    """Store protocol on a PostgreSQL database (libpq URL; schema from the URL's search_path)."""

    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()
        self._connections: list[psycopg.Connection] = []
        self._guard = threading.Lock()
        self._months: set[date] = set()
        try:
            self.schema_version = self._prepare()
        except BaseException:
            self.close()
            raise

    def _prepare(self) -> int:
        """Migrate the schema and make this month's and next month's partitions; return the version."""
        now = datetime.now(UTC).date().replace(day=1)
        try:
            version = migrations.migrate(self._conn())
            self._ensure_months({now, _next_month(now)})
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare the trailseal schema in {_redact(self.url)}: {exc}") from exc
        return version

    # -- connections -------------------------------------------------------------------------------
    def _conn(self) -> psycopg.Connection:
        """This thread's connection, reopened if the server dropped it."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def _connect(self) -> psycopg.Connection:
        """A new autocommit connection, named for pg_stat_activity unless the URL names it."""
        try:
            params = conninfo.conninfo_to_dict(self.url)
            extra = {} if "application_name" in params else {"application_name": "trailseal"}
            return psycopg.connect(self.url, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {_redact(self.url)}: {exc}") from exc

    # -- reading the head --------------------------------------------------------------------------
    def logs(self) -> list[LogInfo]:
        rows = self._conn().execute("SELECT name, size, checkpoint FROM logs ORDER BY name").fetchall()
        return [LogInfo(name, size, note) for name, size, note in rows]

    def tree_size(self, log: str) -> int:
        row = self._conn().execute("SELECT size FROM logs WHERE name = %s", (log,)).fetchone()
        return row[0] if row else 0

    def latest_checkpoint(self, log: str) -> str | None:
        row = self._conn().execute("SELECT checkpoint FROM logs WHERE name = %s", (log,)).fetchone()
        return row[0] if row else None

    def edge_tiles(self, log: str, size: int) -> dict[int, bytes]:
        return rightmost_tiles(self, log, size)

    def find_ids(self, log: str, ids: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        if not ids:
            return {}
        rows = self._binary().execute(  # LEFT JOIN: an id whose payload retention pruned is still sealed
            "SELECT i.id, i.idx, e.data FROM entry_ids i LEFT JOIN entries e"
            " ON e.log = i.log AND e.idx = i.idx AND e.received = i.received"
            " WHERE i.log = %s AND i.id = ANY(%s)", (log, list(ids))).fetchall()
        return {id_: (idx, data) for id_, idx, data in rows}

    def read_pruned(self, log: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(index, recorded leaf hash) of entries whose payload retention pruned (see retention_db.py)."""
        if self._conn().execute("SELECT to_regclass('pruned')").fetchone()[0] is None:
            return
        while start < end:
            rows = self._binary().execute(
                "SELECT idx, leaf_hash FROM pruned WHERE log = %s AND idx >= %s AND idx < %s ORDER BY idx LIMIT %s",
                (log, start, end, PAGE)).fetchall()
            yield from rows
            if len(rows) < PAGE:
                return
            start = rows[-1][0] + 1

    # -- writing -----------------------------------------------------------------------------------
    def commit(self, commits: Sequence[Commit]) -> None:
        rows = [_entry(c.log, e) for c in commits for e in c.entries]
        months = {_month(row[2]) for row in rows}
        self._ensure_months(months)
        try:
            self._write(commits, rows)
        except psycopg.errors.CheckViolation as exc:
            if not (exc.diag.message_primary or "").startswith("no partition of relation"):
                raise
            self._months.clear()  # a partition went away behind our back (retention): recreate, retry
            self._ensure_months(months)
            self._write(commits, rows)

    def _write(self, commits: Sequence[Commit], rows: list[tuple]) -> None:
        """The one transaction of a group commit."""
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            if rows:
                _copy(cur, COPY_ENTRIES, ENTRY_TYPES, rows)
                _copy(cur, COPY_IDS, ID_TYPES, [(r[0], r[4], r[1], r[2]) for r in rows])
            tiles = [(c.log, level, index, data) for c in commits for level, index, data in c.tiles]
            if tiles:
                cur.executemany(UPSERT_TILE, tiles)
            vault = [(r.commitment, r.subject, r.log, r.salt, r.value, r.field, r.token)
                     for c in commits for r in c.vault]
            if vault:
                cur.executemany("INSERT INTO vault VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING", vault)
            signed = [c for c in commits if c.checkpoint]  # a commit of vault rows only has none
            cur.executemany(INSERT_CHECKPOINT, [(c.log, c.size, c.checkpoint, c.created) for c in signed])
            cur.executemany(UPSERT_LOG, [(c.log, c.size, c.checkpoint) for c in signed])

    def _ensure_months(self, months: set[date]) -> None:
        """Create the monthly partitions not yet known to exist, in their own short transaction."""
        missing = sorted(months - self._months)
        if missing:
            self._conn().execute(ENSURE_PARTITIONS, (missing,))
            self._months.update(missing)

    # -- reading entries, tiles, checkpoints -------------------------------------------------------
    def read_entries(self, log: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        while start < end:
            rows = self._binary().execute(
                "SELECT idx, data FROM entries WHERE log = %s AND idx >= %s AND idx < %s ORDER BY idx LIMIT %s",
                (log, start, end, PAGE)).fetchall()
            yield from rows
            if len(rows) < PAGE:
                return
            start = rows[-1][0] + 1

    def read_tile(self, log: str, level: int, index: int) -> bytes | None:
        row = self._binary().execute("SELECT data FROM tiles WHERE log = %s AND level = %s AND idx = %s",
                                     (log, level, index)).fetchone()
        return row[0] if row else None

    def read_tiles(self, log: str, level: int) -> Iterator[tuple[int, bytes]]:
        last = -1
        while True:
            rows = self._binary().execute(
                "SELECT idx, data FROM tiles WHERE log = %s AND level = %s AND idx > %s ORDER BY idx LIMIT 1024",
                (log, level, last)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def checkpoints(self, log: str) -> Iterator[tuple[int, str]]:
        last = -1
        while True:
            rows = self._conn().execute(
                "SELECT size, note FROM checkpoints WHERE log = %s AND size > %s ORDER BY size LIMIT 1024",
                (log, last)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def checkpoint_at(self, log: str, size: int) -> str | None:
        row = self._conn().execute("SELECT note FROM checkpoints WHERE log = %s AND size = %s",
                                   (log, size)).fetchone()
        return row[0] if row else None

    def select(self, logs: Sequence[str] | None, filters: Filters, after: Cursor | None,
               limit: int) -> list[tuple[str, int, str, bytes]]:
        where, params = _filter_sql(filters)
        if logs is not None:
            where.append("log = ANY(%s)")
            params.append(list(logs))
        if after is not None:
            where.append("(time, log, idx) < (%s::timestamptz, %s, %s)")
            params.extend([after.time, after.log, after.index])
        sql = ("SELECT log, idx, time, data FROM entries" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY time DESC, log DESC, idx DESC LIMIT %s")
        rows = self._binary().execute(sql, [*params, limit]).fetchall()
        return [(log, idx, format_time(time), data) for log, idx, time, data in rows]

    def _binary(self) -> psycopg.Cursor:
        """A cursor receiving binary results (bytea without hex decoding)."""
        return self._conn().cursor(binary=True)

    def vault_get(self, commitments: Sequence[str]) -> dict:
        from trailseal.privacy.vault import VaultRow

        if not commitments:
            return {}
        rows = self._conn().execute("SELECT subject, log, commitment, salt, value, field, token FROM vault"
                                    " WHERE commitment = ANY(%s)", (list(set(commitments)),)).fetchall()
        return {r[2]: VaultRow(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6]) for r in rows}

    def vault_find(self, token: str, log: str | None = None) -> list[str]:
        sql, params = "SELECT commitment FROM vault WHERE token = %s", [token]
        if log is not None:
            sql, params = sql + " AND log = %s", [token, log]
        return [r[0] for r in self._conn().execute(sql, params).fetchall()]

    def vault_erase(self, subject: str, log: str | None = None) -> int:
        conn = self._conn()
        with conn.transaction():
            return erase_subjects(conn, [subject], log)

    def close(self) -> None:
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def _entry(log: str, e: EntryRow) -> tuple:
    """One COPY row of `entries`, in ENTRY_COLUMNS order."""
    return (log, e.index, _timestamp(e.received), _timestamp(e.time), e.id, e.category, e.action, e.outcome,
            _text(e.actor_id), e.data)


def _copy(cur: psycopg.Cursor, statement: str, types: list[str], rows: list[tuple]) -> None:
    """Stream rows into a table with binary COPY."""
    with cur.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp (naive means UTC) as an aware datetime."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise StoreError(f"not an RFC 3339 timestamp: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; the sealed bytes keep the exact value, the index a stand-in."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _month(moment: datetime) -> date:
    """The first day of the UTC month holding ``moment`` (the partition it belongs to)."""
    return moment.astimezone(UTC).date().replace(day=1)


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _filter_sql(f: Filters) -> tuple[list[str], list]:
    """WHERE clauses on indexed columns where they exist, JSON paths otherwise."""
    where: list[str] = []
    params: list = []
    for clause, value in (("time >= %s::timestamptz", f.since), ("time < %s::timestamptz", f.until),
                          ("category = %s", f.category), ("outcome = %s", f.outcome), ("actor_id = %s", f.actor_id),
                          (f"{JSON} #>> '{{target,id}}' = %s", f.target_id),
                          (f"{JSON} #>> '{{source,component}}' = %s", f.source_component)):
        if value is not None:
            where.append(clause)
            params.append(_text(value))
    if f.actor_in is not None:
        where.append("actor_id = ANY(%s)")
        params.append([_text(v) for v in f.actor_in])
    if f.action_prefix:
        where.append("action >= %s AND action < %s")
        params.extend([f.action_prefix, f.action_prefix + "\uffff"])
    return where, params


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "<unparsable PostgreSQL URL>"
    params.pop("password", None)
    return conninfo.make_conninfo(**params)


def erase_subjects(conn, subjects: Sequence[str], log: str | None) -> int:
    """Delete the vault rows of these subjects (in one log or all) and, with them, the search index's rows
    of their sealed addresses; the caller holds the transaction. Returns the vault rows deleted."""
    where, params = "subject = ANY(%s)", [[_text(subject) for subject in subjects]]
    if log is not None:
        where, params = where + " AND log = %s", [*params, log]
    conn.execute(f"DELETE FROM search_ips WHERE commitment IN (SELECT commitment FROM vault WHERE {where})", params)
    return conn.execute(f"DELETE FROM vault WHERE {where}", params).rowcount

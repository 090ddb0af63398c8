"""The embedded default store: one SQLite file, WAL, synchronous=FULL. Nothing to install or start."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from trailseal.store import sqlite_vault as vault
from trailseal.store.base import Commit, Cursor, Filters, LogInfo, StoreError, rightmost_tiles
from trailseal.store.readers import SPLIT_ABOVE, Readers

SCHEMA_VERSION = 4  # 2: vault search tokens keyed by token_key; 3: every vault lookup by an integer key;
# 4: the vault's keys in key tables, settled in batches (sqlite_vault.py); an older trailseal cannot write these vaults
WAL_CHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the WAL file is truncated back to after a checkpoint

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (name TEXT PRIMARY KEY, size INTEGER NOT NULL DEFAULT 0,
    checkpoint TEXT);
CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY,
    log TEXT NOT NULL, idx INTEGER NOT NULL, id TEXT NOT NULL,
    time TEXT NOT NULL, received TEXT NOT NULL, category TEXT NOT NULL, action TEXT NOT NULL,
    outcome TEXT NOT NULL, actor_id TEXT NOT NULL, data BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS entries_by_index ON entries (log, idx);
CREATE UNIQUE INDEX IF NOT EXISTS entries_by_id ON entries (log, id);
CREATE INDEX IF NOT EXISTS entries_by_time ON entries (log, time);
CREATE INDEX IF NOT EXISTS entries_by_action ON entries (log, action, time);
CREATE TABLE IF NOT EXISTS tiles (log TEXT NOT NULL, level INTEGER NOT NULL, idx INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (log, level, idx)) WITHOUT ROWID;
{vault.TABLE};
CREATE TABLE IF NOT EXISTS checkpoints (log TEXT NOT NULL, size INTEGER NOT NULL, note TEXT NOT NULL,
    created TEXT NOT NULL, PRIMARY KEY (log, size)) WITHOUT ROWID;
"""


LOCK_POLL_SECONDS = 0.0005  # how often a writer tries again for the write lock another connection holds
LOCK_TIMEOUT_SECONDS = 30.0


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE (the write lock now) ... COMMIT, rolled back on any error."""
    begin_immediate(conn)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def begin_immediate(conn: sqlite3.Connection, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
    """BEGIN IMMEDIATE, trying again every ``LOCK_POLL_SECONDS`` (up to ``timeout``) while another connection
    (serve's search indexer, another process) holds the write lock. SQLite's own busy handler sleeps 1, 2,
    5, 10, 15, 20, 25 ... ms between its tries, so a commit queued behind a 9 ms transaction slept until
    18 ms: the spikes in single-event latency while the indexer ran. The connection's busy timeout is
    put back afterwards."""
    (busy_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(LOCK_POLL_SECONDS)
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")


class SQLiteStore:
    """Store protocol on one SQLite database file."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._checkpointer: WalCheckpointer | None = None
        self.readers = Readers(self.path)  # threads start on a search page's first split read
        conn = self._conn()
        version = _schema_version(conn)
        if version > SCHEMA_VERSION:  # refuse before touching anything a newer trailseal laid out
            raise StoreError(f"{self.path} has schema v{version}; this trailseal knows v{SCHEMA_VERSION}. "
                             "Upgrade trailseal.")
        with conn:
            conn.executescript(SCHEMA)
            _drop_actor_index(conn)
            vault.upgrade(conn)
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE"
                         " SET value=excluded.value", (str(SCHEMA_VERSION),))

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections must not be shared across threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA cache_size=-65536")
                conn.execute("PRAGMA secure_delete=ON")  # erased vault values must not linger in free pages
                # Checkpoint the WAL into the database every ~40 MB rather than every 4 MB: a page that many
                # commits touch (the hot end of an index) is then written back once, not once per commit.
                # In `serve`, most of that copying is done beforehand by a checkpointer thread (start_checkpointer).
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
                conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def logs(self) -> list[LogInfo]:
        rows = self._conn().execute("SELECT name, size, checkpoint FROM logs ORDER BY name")
        return [LogInfo(name, size, note) for name, size, note in rows]

    def tree_size(self, log: str) -> int:
        row = self._conn().execute("SELECT size FROM logs WHERE name=?", (log,)).fetchone()
        return row[0] if row else 0

    def edge_tiles(self, log: str, size: int) -> dict[int, bytes]:
        return rightmost_tiles(self, log, size)

    def find_ids(self, log: str, ids: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        found: dict[str, tuple[int, bytes]] = {}
        conn = self._conn()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT id, idx, data FROM entries WHERE log=? AND id IN ({marks})",
                                [log, *chunk])
            found.update((id_, (idx, data)) for id_, idx, data in rows)
        return found | self._pruned_ids(log, [i for i in ids if i not in found])

    def _pruned_ids(self, log: str, ids: Sequence[str]) -> dict[str, tuple[int, None]]:
        """Ids whose payload retention pruned: still sealed, so a re-send must not seal them again."""
        conn = self._conn()
        if not ids or not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='pruned'").fetchone():
            return {}
        found: dict[str, tuple[int, None]] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            rows = conn.execute(f"SELECT id, idx FROM pruned WHERE log=? AND id IN ({','.join('?' * len(chunk))})",
                                [log, *chunk])
            found.update((id_, (idx, None)) for id_, idx in rows)
        return found

    def commit(self, commits: Sequence[Commit]) -> None:
        self.commit_parts([commits])

    def commit_parts(self, parts: Iterable[Sequence[Commit]]) -> None:
        """One transaction over commits that arrive in parts (Sealer.seal_parts): a part may hold only
        entries and vault rows (checkpoint ""), its tiles and checkpoint coming in a later part."""
        with write_transaction(self._conn()) as conn:
            for commits in parts:
                for c in commits:
                    self._write(conn, c)

    def _write(self, conn: sqlite3.Connection, c: Commit) -> None:
        """One log's share of a group commit."""
        conn.executemany(
            "INSERT INTO entries (idx, id, time, received, category, action, outcome, actor_id, data, log)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(*(e.index, e.id, e.time, e.received, e.category, e.action, e.outcome, e.actor_id, e.data),
              c.log) for e in c.entries])
        conn.executemany("INSERT OR REPLACE INTO tiles VALUES (?,?,?,?)",
                         [(c.log, level, index, data) for level, index, data in c.tiles])
        if c.vault:
            vault.insert(conn, c.vault)
        if not c.checkpoint:
            return
        conn.execute("INSERT INTO checkpoints VALUES (?,?,?,?)", (c.log, c.size, c.checkpoint, c.created))
        conn.execute("INSERT INTO logs (name, size, checkpoint) VALUES (?,?,?) ON CONFLICT(name) DO UPDATE"
                     " SET size=excluded.size, checkpoint=excluded.checkpoint", (c.log, c.size, c.checkpoint))

    def read_entries(self, log: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        conn = self._conn()
        while start < end:
            rows = conn.execute("SELECT idx, data FROM entries WHERE log=? AND idx>=? AND idx<? ORDER BY idx"
                                " LIMIT 4096", (log, start, end)).fetchall()
            yield from rows
            if len(rows) < 4096:
                return
            start = rows[-1][0] + 1

    def read_tile(self, log: str, level: int, index: int) -> bytes | None:
        row = self._conn().execute("SELECT data FROM tiles WHERE log=? AND level=? AND idx=?",
                                   (log, level, index)).fetchone()
        return row[0] if row else None

    def read_tiles(self, log: str, level: int) -> Iterator[tuple[int, bytes]]:
        conn = self._conn()
        last = -1
        while True:
            rows = conn.execute("SELECT idx, data FROM tiles WHERE log=? AND level=? AND idx>? ORDER BY idx"
                                " LIMIT 1024", (log, level, last)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def latest_checkpoint(self, log: str) -> str | None:
        row = self._conn().execute("SELECT checkpoint FROM logs WHERE name=?", (log,)).fetchone()
        return row[0] if row else None

    def checkpoints(self, log: str) -> Iterator[tuple[int, str]]:
        conn = self._conn()
        last = -1
        while True:
            rows = conn.execute("SELECT size, note FROM checkpoints WHERE log=? AND size>? ORDER BY size"
                                " LIMIT 1024", (log, last)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def checkpoint_at(self, log: str, size: int) -> str | None:
        row = self._conn().execute("SELECT note FROM checkpoints WHERE log=? AND size=?", (log, size)).fetchone()
        return row[0] if row else None

    def select(self, logs: Sequence[str] | None, filters: Filters, after: Cursor | None,
               limit: int) -> list[tuple[str, int, str, bytes]]:
        where, params = _filter_sql(filters)
        if filters.actor_id is not None or filters.actor_in is not None:
            clause, values = self._actor_sql(logs, filters)
            where, params = [*where, clause], [*params, *values]
        if logs is not None:
            where.append(f"log IN ({','.join('?' * len(logs))})")
            params.extend(logs)
        if after is not None:
            where.append("(time < ? OR (time = ? AND (log < ? OR (log = ? AND idx < ?))))")
            params.extend([after.time, after.time, after.log, after.log, after.index])
        sql = ("SELECT log, idx, time, data FROM entries" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY time DESC, log DESC, idx DESC LIMIT ?")
        return self._conn().execute(sql, [*params, limit]).fetchall()

    def _actor_sql(self, logs: Sequence[str] | None, f: Filters) -> tuple[str, list]:
        """The actor filter as a lookup in the query index's entries_actor (brought up to date first)."""
        from trailseal.query import index

        index.refresh(index.connection(self))
        names = list(logs) if logs is not None else [i.name for i in self.logs()]
        actors = [f.actor_id] if f.actor_id is not None else list(f.actor_in or ())
        sql = (f"seq IN (SELECT seq FROM entries_actor WHERE log IN ({','.join('?' * len(names)) or 'NULL'})"
               f" AND actor IN ({','.join('?' * len(actors)) or 'NULL'}))")
        return sql, [*names, *actors]

    def read_pruned(self, log: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(index, recorded leaf hash) of entries whose payload retention pruned (see retention.py)."""
        conn, last = self._conn(), start - 1
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='pruned'").fetchone():
            return
        while True:
            rows = conn.execute("SELECT idx, leaf_hash FROM pruned WHERE log=? AND idx>? AND idx<? ORDER BY idx"
                                " LIMIT 4096", (log, last, end)).fetchall()
            yield from rows
            if len(rows) < 4096:
                return
            last = rows[-1][0]

    def hashed_tiles(self, log: str, start: int, end: int, workers: int) -> Iterator[tuple]:
        """(tile, leaf hashes, subtree hash) of full tiles start..end-1, re-hashed from their entries in
        worker processes (see tile_hashing)."""
        from trailseal.store.tile_hashing import hashed_tiles

        return hashed_tiles(self.path, log, start, end, workers)

    def vault_get(self, commitments: Sequence[str]) -> dict:
        from trailseal.privacy.vault import VaultRow

        columns = "subject, log, commitment, salt, value, field, token"
        if len(commitments) > SPLIT_ABOVE:  # a page's worth: cold, its reads overlap on the reader threads
            parts = self.readers.map(lambda conn, part: list(vault.select(conn, columns, part)), commitments)
            rows = [row for part in parts for row in part]
        else:
            rows = vault.select(self._conn(), columns, commitments)
        return {r[2]: VaultRow(*r) for r in rows}

    def vault_find(self, token: str, log: str | None = None) -> list[str]:
        rowids = vault.token_rowids(self._conn(), token)
        if len(rowids) <= SPLIT_ABOVE:
            return vault.find(self._conn(), token, log, rowids)
        return [c for part in self.readers.map(lambda conn, ids: vault.find(conn, token, log, ids), rowids) for c in part]

    def vault_erase(self, subject: str, log: str | None = None) -> int:
        conn = self._conn()
        with write_transaction(conn):
            count = erase_subject(conn, subject, log)
        if not truncate_wal(conn):
            raise StoreError("erased, but old copies remain in the WAL until readers finish: run erase again")
        return count

    def start_checkpointer(self) -> None:
        """Copy the WAL back in a background thread between the writer's own checkpoints: `serve` asks for it
        (tail latency); a library writer does not (it costs bulk appends a few per cent of throughput)."""
        with self._guard:
            if self._checkpointer is None:
                self._checkpointer = WalCheckpointer(self.path).start()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.readers.close()
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


class WalCheckpointer:
    """Copies the WAL back into the database off the commit path.

    With SQLite's automatic checkpoint alone, the commit that crosses the threshold writes ~40 MB back
    and fsyncs the database file before it returns, and every request waiting on that commit waits too.
    Here a thread with its own connection runs a PASSIVE checkpoint (which never blocks the writer) each
    second the WAL has changed, so when the writer's own automatic checkpoint comes due, almost every
    frame is already copied: it only finishes the last ones, and the WAL can be rewound. (The writer
    must keep that last step: a checkpoint racing with appends never completes, and the WAL would grow.)
    The WAL is watched by os.stat only: opening and closing an SQLite file (say, reading the -shm
    header) would drop this process's POSIX locks on it and let two writers corrupt the database."""

    def __init__(self, path: str, interval: float = 1.0):
        self.path, self.wal, self.interval = path, path + "-wal", interval
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trailseal-wal-checkpoint", daemon=True)

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        conn = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
        seen = _stamp(self.wal)
        try:
            while not self._stop.wait(self.interval):
                stamp = _stamp(self.wal)
                if stamp != seen:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    seen = _stamp(self.wal)
                    self.runs += 1
        except sqlite3.Error:  # the store is closing; its last connection checkpoints what is left
            pass
        finally:
            conn.close()


def erase_subject(conn: sqlite3.Connection, subject: str, log: str | None) -> int:
    """Delete a subject's vault rows (in one log or all) and the IP index rows of its erased addresses;
    the caller holds the write transaction. Returns the rows deleted."""
    from trailseal.query.index import forget_erased_ips

    where, params = vault.of_subject(subject, log)
    erased_ips = f"SELECT commitment, value FROM vault WHERE {where} AND field = ?"
    forget_erased_ips(conn, conn.execute(erased_ips, [*params, "actor.ip"]).fetchall())
    return vault.erase(conn, where, params)


def truncate_wal(conn: sqlite3.Connection, attempts: int = 50, pause: float = 0.1) -> bool:
    """Copy the whole WAL back and truncate it, so no erased value stays in it. Busy while a reader holds
    an older snapshot or another checkpoint runs (serve's checkpointer, the indexer child): tried again
    for up to ``attempts * pause`` seconds."""
    for _ in range(attempts):
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return True
        time.sleep(pause)
    return False


SCRUB_CHUNK_PAGES = 8192
SECURE_DELETE_MODES = ("OFF", "ON", "FAST")  # PRAGMA secure_delete reads back 0, 1, 2 (setting 2 means ON)


@contextmanager
def pragmas(conn: sqlite3.Connection, settings: dict[str, object]) -> Iterator[sqlite3.Connection]:
    """These pragmas set on the connection for a block, each put back as it was afterwards."""
    before = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in settings}
    for name, value in settings.items():
        conn.execute(f"PRAGMA {name}={value}")
    try:
        yield conn
    finally:
        for name, value in before.items():
            conn.execute(f"PRAGMA {name}={SECURE_DELETE_MODES[value] if name == 'secure_delete' else int(value)}")


def scrub_free_pages(conn: sqlite3.Connection) -> int:
    """Overwrite every free page of the database with zeros, then copy the WAL back: pages freed while
    ``secure_delete`` was FAST (retention's archive moves, whose bytes the archive keeps) hold their old
    bytes until SQLite reuses them. A scratch table takes the free pages as zero blobs, one write
    transaction per ``SCRUB_CHUNK_PAGES`` (a writer beside it waits for one chunk, not the whole scrub), and
    is dropped again. The caller is outside a transaction. Returns the pages that were free."""
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    if not free:
        return 0
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.execute("CREATE TABLE IF NOT EXISTS trailseal_scrub (zeros BLOB)")
    while _fill_free_pages(conn, page_size):
        pass
    with pragmas(conn, {"secure_delete": "FAST"}):  # the pages hold zeros already: no second write
        conn.execute("DROP TABLE trailseal_scrub")
    truncate_wal(conn)
    return free


def _fill_free_pages(conn: sqlite3.Connection, page_size: int) -> bool:
    """In one write transaction, a zero blob over up to SCRUB_CHUNK_PAGES free pages; False if none was free."""
    with write_transaction(conn):
        (left,) = conn.execute("PRAGMA freelist_count").fetchone()
        if left:
            zeros = (page_size - 4) * min(left, SCRUB_CHUNK_PAGES)  # an overflow page holds page_size - 4 bytes
            conn.execute("INSERT INTO trailseal_scrub VALUES (zeroblob(?))", (zeros,))
    return bool(left)


def _stamp(path: str) -> tuple[int, int] | None:
    """(size, mtime) of a file by stat alone (never opened: see WalCheckpointer)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _schema_version(conn: sqlite3.Connection) -> int:
    """The layout version a data dir was last opened with (0 for a new file)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def _drop_actor_index(conn: sqlite3.Connection) -> None:
    """Data dirs from before: `entries_by_actor (log, actor_id, time)` cost every commit half its CPU and
    bytes; actor lookups now go through the query index's `entries_actor`, filled in batches after the
    commit (query/index.py). Drop the old index, and `entries_actor` with it so the next search connection
    refills it whole (a trailseal that still had the index may have indexed entries without it)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='index' AND name='entries_by_actor'").fetchone():
        conn.execute("DROP INDEX entries_by_actor")
        conn.execute("DROP TABLE IF EXISTS entries_actor")


def _filter_sql(f: Filters) -> tuple[list[str], list]:
    """WHERE clauses on indexed columns where they exist, JSON paths otherwise."""
    where: list[str] = []
    params: list = []
    for clause, value in (("time >= ?", f.since), ("time < ?", f.until), ("category = ?", f.category),
                          ("outcome = ?", f.outcome), ("actor_id = ?", f.actor_id),
                          ("json_extract(data, '$.target.id') = ?", f.target_id),
                          ("json_extract(data, '$.source.component') = ?", f.source_component)):
        if value is not None:
            where.append(clause)
            params.append(value)
    if f.actor_in is not None:
        where.append(f"actor_id IN ({','.join('?' * len(f.actor_in)) or 'NULL'})")
        params.extend(f.actor_in)
    if f.action_prefix:
        where.append("action >= ? AND action < ?")
        params.extend([f.action_prefix, f.action_prefix + "\uffff"])
    return where, params

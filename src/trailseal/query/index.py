"""Search indexes beside the SQLite store's `entries`: full text, IP ranges, and a few more columns.

What is indexed, all derived from the sealed bytes (so nothing erased from the vault is ever here):

- ``entries_fts`` (FTS5, contentless, rowid = ``entries.seq``): the words of every string and number
  in the event except ``time``, ``received`` and ``raw_hash``, as ``text_tokens`` makes them
  (case-folded, accents removed, letters and digits). Values are separated by a boundary token that
  no query can contain, so a phrase never spans two fields. The ascii tokenizer then only splits on
  our spaces, which is what keeps FTS5 and ``language.matches`` in exact agreement.
- ``entries_ip``: ``actor.ip`` as a sortable key (version byte + packed address), so a CIDR is one
  range scan.
- ``entries_actor``: ``(log, actor_id, time, seq)``, the stored actor id (a commitment when privacy
  seals it) in time order, so an actor's events are one range scan newest first. It replaces an
  index on ``entries`` that SQLite kept on every insert and that cost ingest half its CPU and bytes.
- ``entries_keys``: ``(log, field, value, time, seq)`` for ``actor.session`` and ``request.trace_id``
  (``session:``, ``trace:``, timelines). They were JSON expression indexes on ``entries``, which every
  commit paid for (two JSON parses and two random-key B-tree inserts per entry).
- One index on ``entries``: by outcome in time order, with the action beside it (SQLite keeps it on every
  insert). ``outcome:failure action:auth.*`` tests the action on the index entry and reads the entry row only
  for the events it returns; with ``(log, outcome, time)`` a rare prefix read thousands of rows per page.

The FTS, IP, actor and key tables are filled by ``refresh``, which indexes every entry committed since
the last call, a bounded batch per transaction. ``serve`` runs it every second in a child process
(indexer.py), so a search only has the last few commits to index; without a server, search calls it first.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from trailseal.query.language import QueryError, ip_of, text_tokens, text_values
from trailseal.store import sqlite_vault as vault
from trailseal.store.sqlite import LOCK_TIMEOUT_SECONDS, begin_immediate, write_transaction

SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(text, content='', columnsize=0, tokenize='ascii');
CREATE TABLE IF NOT EXISTS entries_ip (ip BLOB NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (ip, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_ip_by_seq ON entries_ip (seq);
CREATE TABLE IF NOT EXISTS entries_actor (log TEXT NOT NULL, actor TEXT NOT NULL, time TEXT NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (log, actor, time, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS query_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_outcome_action ON entries (log, outcome, time, action);
CREATE TABLE IF NOT EXISTS entries_keys (log TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
    time TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (log, field, value, time, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_keys_by_seq ON entries_keys (seq);
"""
KEY_FIELDS = ("actor.session", "request.trace_id")  # in entries_keys: timelines and session:/trace: searches
_KEY_PATHS = [(name, tuple(name.split("."))) for name in KEY_FIELDS]
_KEY_ROWS = " UNION ALL ".join(
    f"SELECT log, '{name}', json_extract(data, '$.{name}'), time, seq FROM entries"
    f" WHERE seq > ? AND seq <= ? AND json_type(data, '$.{name}') = 'text'" for name in KEY_FIELDS)
BOUNDARY = "\ue000"  # a private-use character: never a query token, always an FTS5 ascii token
BATCH = 20_000
_SEPARATOR = "\x1f"  # joins values for the all-ASCII fast path (checked absent from them)
_NON_WORD = re.compile(r"[^a-z0-9\x1f]+")

_decode = msgspec.json.Decoder().decode


def document_text(event: dict[str, Any]) -> str:
    """The text FTS5 indexes for an event: its words, value by value, with boundaries between."""
    values = text_values(event)
    joined = _SEPARATOR.join(values)
    if joined.isascii() and joined.count(_SEPARATOR) == len(values) - 1:
        return _NON_WORD.sub(" ", joined.lower()).replace(_SEPARATOR, f" {BOUNDARY} ")
    words = (" ".join(tokens) for text in values if (tokens := text_tokens(text)))
    return f" {BOUNDARY} ".join(words)


def ip_key(text: Any) -> bytes | None:
    """A sortable key of an IP address: version byte then the packed address; None if not an IP."""
    address = ip_of(text) if isinstance(text, str) else None
    return None if address is None else bytes([address.version]) + address.packed


def network_range(network) -> tuple[bytes, bytes]:
    """The first and last key of a network."""
    version = bytes([network.version])
    return version + network.network_address.packed, version + network.broadcast_address.packed


# -- connections -----------------------------------------------------------------------------------
_local: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ready: set[str] = set()
_ready_lock = threading.Lock()


def connection(store: Any) -> sqlite3.Connection:
    """This thread's query connection to a SQLite store, with the index schema in place."""
    path = getattr(store, "path", None)
    if not isinstance(path, str) or type(store).__name__ != "SQLiteStore":
        raise QueryError("search needs the SQLite store (PostgreSQL search is not built yet)")
    local = _local.setdefault(store, threading.local())
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = _open(path)
    return conn


def _open(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")  # derived data, rebuilt by refresh if ever lost
    conn.execute("PRAGMA cache_size=-262144")
    # No memory map: a page fault on a mapped file reads around it, up to the device's read-ahead (8 MB on
    # this project's VMs), so a cold search that touched a few pages read tens of MB (BENCHMARKS, session 21).
    # pread reads a random page as it is; warm, the two were level.
    conn.execute("PRAGMA mmap_size=0")
    conn.create_function("ts_ip_key", 1, ip_key, deterministic=True)
    with _ready_lock:
        if path not in _ready:
            ensure(conn)
            _ready.add(path)
    return conn


def ensure(conn: sqlite3.Connection) -> None:
    """Create the index tables and indexes if missing (the first time on a big store takes a while)."""
    with write_transaction(conn):
        had_actor_table = _has_table(conn, "entries_actor")
        had_keys_table = _has_table(conn, "entries_keys")
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        if not had_actor_table:
            _backfill_actors(conn)
        if not had_keys_table:
            _move_key_indexes(conn)
        conn.execute("DROP INDEX IF EXISTS entries_by_outcome")  # (log, outcome, time): now with the action


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _backfill_actors(conn: sqlite3.Connection) -> None:
    """A data dir indexed before ``entries_actor`` existed: add the entries the mark already covers."""
    conn.execute("INSERT OR IGNORE INTO entries_actor SELECT log, actor_id, time, seq FROM entries"
                 " WHERE seq <= ?", (indexed_up_to(conn),))


def _move_key_indexes(conn: sqlite3.Connection) -> None:
    """A data dir from before `entries_keys`: session and trace were expression indexes on `entries`, kept
    by every commit (two JSON parses per insert). Drop them and fill the table for the entries indexed."""
    conn.execute("DROP INDEX IF EXISTS entries_by_session")
    conn.execute("DROP INDEX IF EXISTS entries_by_trace")
    upto = indexed_up_to(conn)
    conn.execute(f"INSERT OR IGNORE INTO entries_keys {_KEY_ROWS}", [0, upto] * len(KEY_FIELDS))


# -- keeping up with the store ---------------------------------------------------------------------
def indexed_up_to(conn: sqlite3.Connection) -> int:
    """The last entries.seq the FTS and IP tables hold."""
    row = conn.execute("SELECT value FROM query_state WHERE key='indexed_seq'").fetchone()
    return row[0] if row else 0


def pending(conn: sqlite3.Connection) -> int:
    """How many committed entries the search indexes do not hold yet (an upper bound)."""
    latest = conn.execute("SELECT max(seq) FROM entries").fetchone()[0] or 0
    return max(0, latest - indexed_up_to(conn))


def reset(conn: sqlite3.Connection) -> None:
    """Empty the search indexes and move the mark back to the start, in one transaction; the next
    ``refresh`` rebuilds them from the sealed entries and the vault as they are now."""
    with write_transaction(conn):
        conn.execute("INSERT INTO entries_fts (entries_fts) VALUES ('delete-all')")
        conn.execute("DELETE FROM entries_ip")
        conn.execute("DELETE FROM entries_actor")
        conn.execute("DELETE FROM entries_keys")
        conn.execute("DELETE FROM query_state WHERE key = 'indexed_seq'")


def refresh(conn: sqlite3.Connection, batch: int = BATCH, progress: Callable[[int], None] | None = None,
            stop: Callable[[], bool] | None = None) -> int:
    """Index every entry committed since the last refresh, ``batch`` entries per write transaction (so the
    sealer never waits long for the lock); return how many were indexed. ``progress`` gets each count;
    ``stop`` is asked before each batch (true: return now, the rest is indexed by the next refresh).
    Each batch's words are worked out before the write lock is taken: the lock is held for the inserts only.
    The keys of the vault rows the sealer appended are settled first (store/sqlite_vault.py)."""
    vault.settle_now(conn)
    latest = conn.execute("SELECT max(seq) FROM entries").fetchone()[0] or 0
    total = 0
    while (done := indexed_up_to(conn)) < latest and not (stop is not None and stop()):
        rows = _rows_after(conn, done, batch)
        if not rows:
            break
        prepared = _prepared(conn, rows)
        begin_immediate(conn)
        try:
            if not _unchanged(conn, done, rows):  # indexed or pruned by another connection meanwhile
                conn.execute("ROLLBACK")
                continue
            _write_index(conn, done, rows[-1][0], prepared)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        total += len(rows)
        if progress is not None:
            progress(len(rows))
    return total


def _unchanged(conn: sqlite3.Connection, done: int, rows: Sequence[tuple]) -> bool:
    """Inside the write transaction: the mark and the batch's entries are as they were when read."""
    count = conn.execute("SELECT count(*) FROM entries WHERE seq > ? AND seq <= ?", (done, rows[-1][0])).fetchone()[0]
    return indexed_up_to(conn) == done and count == len(rows)


def _rows_after(conn: sqlite3.Connection, done: int, batch: int | None) -> list[tuple[int, bytes, str, str]]:
    sql = ("SELECT seq, data, log, time FROM entries WHERE seq > ? ORDER BY seq" + (" LIMIT ?" if batch else ""))
    return conn.execute(sql, (done, batch) if batch else (done,)).fetchall()


def _prepared(conn: sqlite3.Connection, rows: Sequence[tuple[int, bytes, str, str]]) -> tuple[list, list, list]:
    """The FTS (seq, text), IP (key, seq) and key (log, field, value, time, seq) rows of entries
    (seq, bytes, log, time): worked out before the write lock is taken."""
    texts, ips, keys = [], [], []
    events = [(seq, _decode(data), log, time) for seq, data, log, time in rows]
    plain = sealed_ips(conn, [event for _, event, _, _ in events])
    for seq, event, log, time in events:
        texts.append((seq, document_text(event)))
        key = ip_key(_actor_ip(event, plain))
        if key is not None:
            ips.append((key, seq))
        for name, (parent, child) in _KEY_PATHS:
            value = (event.get(parent) or {}).get(child)
            if type(value) is str:
                keys.append((log, name, value, time, seq))
    return texts, ips, keys


def _write_index(conn: sqlite3.Connection, done: int, last: int, prepared: tuple[list, list, list]) -> None:
    """Inside a write transaction: add prepared rows, the actor rows of seq done+1..last, and move the mark."""
    texts, ips, keys = prepared
    conn.executemany("INSERT INTO entries_fts (rowid, text) VALUES (?, ?)", texts)
    conn.executemany("INSERT OR IGNORE INTO entries_ip VALUES (?, ?)", ips)
    conn.executemany("INSERT OR IGNORE INTO entries_keys VALUES (?, ?, ?, ?, ?)", keys)
    conn.execute("INSERT OR IGNORE INTO entries_actor SELECT log, actor_id, time, seq FROM entries"
                 " WHERE seq > ? AND seq <= ?", (done, last))
    conn.execute("INSERT INTO query_state VALUES ('indexed_seq', ?) ON CONFLICT(key) DO UPDATE"
                 " SET value=excluded.value", (last,))


def indexed_words(entries: Sequence[bytes]) -> list[str]:
    """The FTS text ``refresh`` indexed for each entry (what its 'delete' command must be given): a pure
    function of the sealed bytes, so a caller may work it out ahead of the write transaction."""
    return [document_text(_decode(data)) for data in entries]


def forget(conn, log: str, indices: Sequence[int], words: Sequence[str] | None = None) -> None:
    """Inside a write transaction (e.g. the one retention drops these payloads in): take the entries out of
    every search index. ``words``: their ``indexed_words``, if already worked out. Every IP and key row of
    an entry's seq is that entry's, so they go by seq (no vault lookup for sealed addresses)."""
    upto = indexed_up_to(conn)
    keys = _has_table(conn, "entries_keys")  # a data dir no search connection has opened since it came
    known = dict(zip(indices, words, strict=True)) if words is not None else None
    for i in range(0, len(indices), 500):
        chunk = list(indices[i:i + 500])
        rows = conn.execute(f"SELECT seq, idx, actor_id, time, data FROM entries WHERE log=? AND seq <= ? AND idx "
                            f"IN ({','.join('?' * len(chunk))})", (log, upto, *chunk)).fetchall()
        texts = [known[row[1]] for row in rows] if known is not None else indexed_words([row[4] for row in rows])
        seqs = json.dumps([row[0] for row in rows])  # the IP and key rows go by one statement each
        conn.executemany("DELETE FROM entries_actor WHERE log=? AND actor=? AND time=? AND seq=?",
                         [(log, actor, time_, seq) for seq, _, actor, time_, _ in rows])
        conn.executemany("INSERT INTO entries_fts (entries_fts, rowid, text) VALUES ('delete', ?, ?)",
                         [(row[0], text) for row, text in zip(rows, texts, strict=True)])
        conn.execute("DELETE FROM entries_ip WHERE seq IN (SELECT value FROM json_each(?))", (seqs,))
        if keys:
            conn.execute("DELETE FROM entries_keys WHERE seq IN (SELECT value FROM json_each(?))", (seqs,))


def _actor_ip(event: dict, plain: dict[str, str]) -> Any:
    ip = (event.get("actor") or {}).get("ip")
    return plain.get(ip, ip) if isinstance(ip, str) else ip


def sealed_ips(conn: sqlite3.Connection, events: Sequence[dict]) -> dict[str, str]:
    """The vault's plaintext of the events' sealed ``actor.ip`` commitments (erased ones stay unknown),
    so an erasable IP is still found by ``ip:`` ranges while it exists."""
    sealed = list({ip for event in events
                   if isinstance(ip := (event.get("actor") or {}).get("ip"), str) and ip.startswith("pd:")})
    return dict(vault.select(conn, "commitment, value", sealed))


def forget_erased_ips(conn: sqlite3.Connection, erased: Iterable[tuple[str, str]]) -> None:
    """Inside the erasure's transaction: drop the IP index rows of erased (commitment, value) pairs, so
    no erased address stays findable (rows of other subjects with the same address stay)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'entries_ip'").fetchone():
        return
    for commitment, value in erased:
        key = ip_key(value)
        if key is None:
            continue
        for (seq,) in conn.execute("SELECT seq FROM entries_ip WHERE ip = ?", (key,)).fetchall():
            row = conn.execute("SELECT data FROM entries WHERE seq = ?", (seq,)).fetchone()
            if row is None or (_decode(row[0]).get("actor") or {}).get("ip") == commitment:
                conn.execute("DELETE FROM entries_ip WHERE ip = ? AND seq = ?", (key, seq))

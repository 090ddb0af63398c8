"""The SQLite store's vault table: personal values behind the commitments sealed in entries.

Every lookup goes through an integer key of 60 bits, never through a text index: ``ckey`` of the
commitment (reveal, search), ``tkey`` of the search token (``vault_find``) and ``skey`` of the subject
(erasure). Each key is a prefix of a SHA-256 hex digest, so the keys are spread evenly, and each lookup
also compares the whole text, so two values sharing a key are never confused.

The sealer only appends rows (in rowid order, in the commit that seals their events). Their keys go into
three key tables (``vault_ckey``, ``vault_tkey``, ``vault_skey``: (key, rowid), one B-tree each) later, in
batches (``settle``): by the search indexer of `serve` within a second, and by the sealer itself once
``TAIL_MAX`` rows wait. Every lookup reads the key tables and the rows not keyed yet (the tail, after
``vault_keyed.upto``) in one statement, so a value is found from the commit that wrote it. Keys inserted
300 per commit dirtied a page of each B-tree per row, all written to the WAL at every commit: 43-59 us of
the sealer's CPU per row at 15-45k rows, ~90 at 400k (schema v3). Appended alone, a row costs the commit
7-9 us; keyed 4,096 at a time in key order, ~7 us more (at 15k rows), off the ingest path in `serve`
(schema v4). Data dirs from before are laid out like this when the store opens.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

COLUMNS = "commitment, subject, log, salt, value, field, token, tkey, ckey, skey"
TABLE = """CREATE TABLE IF NOT EXISTS vault (commitment TEXT NOT NULL, subject TEXT NOT NULL, log TEXT NOT NULL,
    salt BLOB NOT NULL, value TEXT NOT NULL, field TEXT NOT NULL, token TEXT NOT NULL, tkey INTEGER NOT NULL,
    ckey INTEGER NOT NULL, skey INTEGER NOT NULL)"""
KEYS = ("ckey", "tkey", "skey")
KEY_TABLES = tuple(f"CREATE TABLE IF NOT EXISTS vault_{key} ({key} INTEGER NOT NULL, rid INTEGER NOT NULL,"
                   f" PRIMARY KEY ({key}, rid)) WITHOUT ROWID" for key in KEYS)
V3_INDEXES = ("vault_by_ckey", "vault_by_tkey", "vault_by_skey")  # on the table itself, before v4
_INSERT = f"INSERT INTO vault ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
CHUNK = 500  # commitments per lookup statement
TAIL_MAX = 4096  # rows the sealer leaves unkeyed at most (every lookup scans them: ~1.5 ms at 4,096)
_UPTO = "(SELECT upto FROM vault_keyed)"


def _keyed(key: str, marks: str) -> str:
    """The rowids of the rows whose ``key`` is among ``marks`` (given twice): from its key table and the tail."""
    return (f"SELECT rid FROM vault_{key} WHERE {key} IN ({marks})"
            f" UNION ALL SELECT rowid FROM vault WHERE rowid > {_UPTO} AND {key} IN ({marks})")


def token_key(token: str) -> int:
    """The vault_tkey key of a search token: its first 60 bits (an integer B-tree key costs about half
    a 64-character text key per insert; vault_find checks the whole token)."""
    return int(token[:15], 16)


def commitment_key(commitment: str) -> int | None:
    """The vault_ckey key of a ``pd:<hex>`` commitment (its first 60 bits); None if it is not one."""
    try:
        return int(commitment[3:18], 16) if commitment.startswith("pd:") and len(commitment) >= 18 else None
    except ValueError:
        return None


def subject_key(subject: str) -> int:
    """The vault_skey key of a data subject: the first 60 bits of SHA-256 of its UTF-8 bytes."""
    return int.from_bytes(hashlib.sha256(subject.encode("utf-8", "surrogatepass")).digest()[:8], "big") >> 4


def insert(conn: sqlite3.Connection, rows: Iterable[Any]) -> None:
    """Append VaultRows (the caller holds the write transaction); the keys of every row waiting are settled
    once ``TAIL_MAX`` wait. A commitment written twice is kept once (see ``settle``)."""
    conn.executemany(_INSERT, map(_insert_params, {r.commitment: r for r in rows}.values()))
    if tail(conn) >= TAIL_MAX:
        settle(conn)


def _insert_params(r: Any) -> tuple:
    """One row's _INSERT parameters; ckey -1 for a commitment that is not ``pd:<hex>`` (kept, found only by
    its subject)."""
    key = commitment_key(r.commitment)
    return (r.commitment, r.subject, r.log, r.salt, r.value, r.field, r.token, token_key(r.token),
            -1 if key is None else key, subject_key(r.subject))


def tail(conn: sqlite3.Connection) -> int:
    """How many rows (at most) wait for their keys."""
    return conn.execute("SELECT coalesce((SELECT max(rowid) FROM vault), 0) - upto FROM vault_keyed").fetchone()[0]


def settle(conn: sqlite3.Connection) -> int:
    """Key every row of the tail (the caller holds the write transaction), in key order; a tail row whose
    commitment is there already (keyed, or earlier in the tail) is dropped. Returns the rows keyed."""
    upto, top = conn.execute("SELECT upto, (SELECT max(rowid) FROM vault) FROM vault_keyed").fetchone()
    if top is None or top <= upto:
        return 0
    conn.execute("DELETE FROM vault WHERE rowid > ?1 AND rowid <= ?2 AND (rowid NOT IN"
                 " (SELECT min(rowid) FROM vault WHERE rowid > ?1 AND rowid <= ?2 GROUP BY commitment)"
                 " OR EXISTS (SELECT 1 FROM vault_ckey k JOIN vault v ON v.rowid = k.rid"
                 " WHERE k.ckey = vault.ckey AND v.commitment = vault.commitment))", (upto, top))
    _key_rows(conn, upto, top)
    return top - upto


def _key_rows(conn: sqlite3.Connection, after: int, top: int) -> None:
    """Put the keys of rows after..top into the key tables and mark them keyed."""
    for key in KEYS:
        conn.execute(f"INSERT INTO vault_{key} SELECT {key}, rowid FROM vault WHERE rowid > ? AND rowid <= ?"
                     f" ORDER BY {key}", (after, top))
    conn.execute("UPDATE vault_keyed SET upto = ?", (top,))


def settle_now(conn: sqlite3.Connection) -> int:
    """``settle`` in a write transaction of its own, if any row waits (the search indexer's turn)."""
    from trailseal.store.sqlite import write_transaction  # sqlite.py imports this module

    if tail(conn) <= 0:
        return 0
    with write_transaction(conn):
        return settle(conn)


def erase(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> int:
    """Delete the rows ``where`` selects (see ``of_subject``) and their keys; the caller holds the write
    transaction. The keyed mark never passes the newest row, so rows written later are never taken for keyed."""
    doomed = conn.execute(f"SELECT rowid, {', '.join(KEYS)} FROM vault WHERE {where}", params).fetchall()
    conn.executemany("DELETE FROM vault WHERE rowid = ?", [(rowid,) for rowid, *_ in doomed])
    for position, key in enumerate(KEYS, 1):
        conn.executemany(f"DELETE FROM vault_{key} WHERE {key} = ? AND rid = ?",
                         [(row[position], row[0]) for row in doomed])
    conn.execute("UPDATE vault_keyed SET upto = min(upto, coalesce((SELECT max(rowid) FROM vault), 0))")
    return len(doomed)


def find(conn: sqlite3.Connection, token: str, log: str | None, rowids: Sequence[int] | None = None) -> list[str]:
    """The commitments whose search token is ``token``, in one log or all (among ``rowids`` if given)."""
    sql, params = "SELECT commitment FROM vault WHERE tkey = ? AND token = ?", [token_key(token), token]
    if log is not None:
        sql, params = sql + " AND log = ?", [*params, log]
    if rowids is None:
        rowids = token_rowids(conn, token)
    found = []
    for start in range(0, len(rowids), CHUNK):  # bound the statement's variables, however many rows
        chunk = rowids[start:start + CHUNK]
        found += [row[0] for row in conn.execute(f"{sql} AND rowid IN ({','.join('?' * len(chunk))})",
                                                 [*params, *chunk])]
    return list(dict.fromkeys(found))


def token_rowids(conn: sqlite3.Connection, token: str) -> list[int]:
    """The rowids under ``token``'s key, from its key table and the tail: a token's rows lie anywhere in the
    table, so reading them can be split (``find`` with ``rowids``)."""
    key = token_key(token)
    return [row[0] for row in conn.execute(_keyed("tkey", "?"), (key, key))]


def select(conn: sqlite3.Connection, columns: str, commitments: Sequence[str]) -> Iterator[tuple]:
    """``columns`` of the vault rows holding these commitments (any order; unknown ones are left out)."""
    keyed = {c: key for c in dict.fromkeys(commitments) if (key := commitment_key(c)) is not None}
    wanted = list(keyed)
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        marks = ",".join("?" * len(chunk))
        keys = [keyed[c] for c in chunk]
        yield from conn.execute(f"SELECT {columns} FROM vault WHERE rowid IN ({_keyed('ckey', marks)})"
                                f" AND commitment IN ({marks})", [*keys, *keys, *chunk])


def of_subject(subject: str, log: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of a subject's rows, in one log or all."""
    key = subject_key(subject)
    where, params = f"rowid IN ({_keyed('skey', '?')}) AND subject = ?", [key, key, subject]
    if log is not None:
        where, params = where + " AND log = ?", [*params, log]
    return where, params


def upgrade(conn: sqlite3.Connection) -> None:
    """Lay the vault out as above: a table from before ``ckey`` (schema v1 or v2) is copied into a new one
    with its keys worked out, then dropped (secure_delete zeroes its pages); the rows of a table from before
    the key tables (v3) are keyed and its indexes dropped. Each in one transaction."""
    from trailseal.store.sqlite import write_transaction  # sqlite.py imports this module

    if "ckey" not in _columns(conn):
        with write_transaction(conn):
            if "ckey" not in _columns(conn):  # another process may have upgraded it meanwhile
                _rebuild(conn)
    if not _has_key_tables(conn):
        with write_transaction(conn):
            create(conn)


def create(conn: sqlite3.Connection) -> None:
    """The vault table and its key tables, where missing (rows already there are keyed, v3 indexes dropped)."""
    conn.execute(TABLE)
    if not _has_key_tables(conn):  # another process may have added them meanwhile
        _add_key_tables(conn)


def _has_key_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='vault_keyed'").fetchone() is not None


def _add_key_tables(conn: sqlite3.Connection) -> None:
    """Key tables for every row there, and the v3 indexes they replace dropped. Those rows are distinct
    already (v1 and v2 keyed the table by commitment, v3 inserted a commitment only once)."""
    for statement in KEY_TABLES:
        conn.execute(statement)
    conn.execute("CREATE TABLE vault_keyed (upto INTEGER NOT NULL)")
    conn.execute("INSERT INTO vault_keyed VALUES (0)")
    _key_rows(conn, 0, conn.execute("SELECT coalesce(max(rowid), 0) FROM vault").fetchone()[0])
    for index in V3_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {index}")


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(vault)")}


def _rebuild(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE vault RENAME TO vault_before_v3")
    conn.execute(TABLE)
    conn.create_function("trailseal_token_key", 1, token_key, deterministic=True)  # this connection only
    conn.create_function("trailseal_commitment_key", 1, commitment_key, deterministic=True)
    conn.create_function("trailseal_subject_key", 1, subject_key, deterministic=True)
    conn.execute(f"INSERT INTO vault ({COLUMNS}) SELECT commitment, subject, log, salt, value, field, token,"
                 " trailseal_token_key(token), coalesce(trailseal_commitment_key(commitment), -1),"
                 " trailseal_subject_key(subject)"
                 " FROM vault_before_v3")
    conn.execute("DROP TABLE vault_before_v3")

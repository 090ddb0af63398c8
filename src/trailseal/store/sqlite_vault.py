"""The SQLite store's vault table: personal values behind the commitments sealed in entries.

Every lookup goes through an integer key of 60 bits, never through a text index: ``ckey`` of the
commitment (reveal, search), ``tkey`` of the search token (``vault_find``) and ``skey`` of the subject
(erasure). Each key is a prefix of a SHA-256 hex digest, so the keys are spread evenly, and each lookup
also compares the whole text, so two values sharing a key are never confused. The rows themselves are
appended in rowid order. A vault row costs the writer three integer B-tree inserts; with the commitment
as a TEXT PRIMARY KEY and (subject, log) as a text index it cost about a quarter more CPU and WAL bytes
per row (schema v2). Data dirs from before are rebuilt in this layout when the store opens.
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
INDEXES = ("CREATE INDEX IF NOT EXISTS vault_by_ckey ON vault (ckey)",
           "CREATE INDEX IF NOT EXISTS vault_by_tkey ON vault (tkey)",
           "CREATE INDEX IF NOT EXISTS vault_by_skey ON vault (skey)")
_INSERT = (f"INSERT INTO vault ({COLUMNS}) SELECT ?,?,?,?,?,?,?,?,?,?"
           " WHERE NOT EXISTS (SELECT 1 FROM vault WHERE ckey = ? AND commitment = ?)")
CHUNK = 500  # commitments per lookup statement


def token_key(token: str) -> int:
    """The vault_by_tkey key of a search token: its first 60 bits (an integer B-tree key costs about half
    a 64-character text key per insert; vault_find checks the whole token)."""
    return int(token[:15], 16)


def commitment_key(commitment: str) -> int | None:
    """The vault_by_ckey key of a ``pd:<hex>`` commitment (its first 60 bits); None if it is not one."""
    try:
        return int(commitment[3:18], 16) if commitment.startswith("pd:") and len(commitment) >= 18 else None
    except ValueError:
        return None


def subject_key(subject: str) -> int:
    """The vault_by_skey key of a data subject: the first 60 bits of SHA-256 of its UTF-8 bytes."""
    return int.from_bytes(hashlib.sha256(subject.encode("utf-8", "surrogatepass")).digest()[:8], "big") >> 4


def insert(conn: sqlite3.Connection, rows: Iterable[Any]) -> None:
    """Add VaultRows; a commitment already there is kept as it is (a row written twice is kept once)."""
    conn.executemany(_INSERT, map(_insert_params, rows))


def _insert_params(r: Any) -> tuple:
    """One row's _INSERT parameters; ckey -1 for a commitment that is not ``pd:<hex>`` (kept, found only by
    its subject)."""
    key = commitment_key(r.commitment)
    key = -1 if key is None else key
    return (r.commitment, r.subject, r.log, r.salt, r.value, r.field, r.token, token_key(r.token), key,
            subject_key(r.subject), key, r.commitment)


def find(conn: sqlite3.Connection, token: str, log: str | None, rowids: Sequence[int] | None = None) -> list[str]:
    """The commitments whose search token is ``token``, in one log or all (among ``rowids`` if given)."""
    sql, params = "SELECT commitment FROM vault WHERE tkey = ? AND token = ?", [token_key(token), token]
    if log is not None:
        sql, params = sql + " AND log = ?", [*params, log]
    if rowids is None:
        return [row[0] for row in conn.execute(sql, params)]
    found = []
    for start in range(0, len(rowids), CHUNK):  # bound the statement's variables, however many rows
        chunk = rowids[start:start + CHUNK]
        found += [row[0] for row in conn.execute(f"{sql} AND rowid IN ({','.join('?' * len(chunk))})",
                                                 [*params, *chunk])]
    return found


def token_rowids(conn: sqlite3.Connection, token: str) -> list[int]:
    """The rowids under ``token``'s key, from the index alone: a token's rows lie anywhere in the table, so
    reading them can be split (``find`` with ``rowids``)."""
    return [row[0] for row in conn.execute("SELECT rowid FROM vault WHERE tkey = ?", (token_key(token),))]


def select(conn: sqlite3.Connection, columns: str, commitments: Sequence[str]) -> Iterator[tuple]:
    """``columns`` of the vault rows holding these commitments (any order; unknown ones are left out)."""
    keyed = {c: key for c in dict.fromkeys(commitments) if (key := commitment_key(c)) is not None}
    wanted = list(keyed)
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        marks = ",".join("?" * len(chunk))
        yield from conn.execute(f"SELECT {columns} FROM vault WHERE ckey IN ({marks}) AND commitment IN ({marks})",
                                [*(keyed[c] for c in chunk), *chunk])


def of_subject(subject: str, log: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of a subject's rows, in one log or all."""
    where, params = "skey = ? AND subject = ?", [subject_key(subject), subject]
    if log is not None:
        where, params = where + " AND log = ?", [*params, log]
    return where, params


def upgrade(conn: sqlite3.Connection) -> None:
    """Lay the vault out as above: a table from before ``ckey`` (schema v1 or v2) is copied into a new one
    with its keys worked out, then dropped (secure_delete zeroes its pages), in one transaction."""
    from trailseal.store.sqlite import write_transaction  # sqlite.py imports this module

    if "ckey" not in _columns(conn):
        with write_transaction(conn):
            if "ckey" not in _columns(conn):  # another process may have upgraded it meanwhile
                _rebuild(conn)
    for statement in INDEXES:
        conn.execute(statement)


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

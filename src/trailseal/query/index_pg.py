"""Search tables beside the PostgreSQL store's `entries` (migration 0003_search.sql), kept by `refresh`.

Everything here is derived from the sealed bytes, as in the SQLite index (index.py):

- ``search_text``: per entry, ``doc``, the words of every value in order, one space apart, with a
  boundary token between values, and ``words``, its distinct words as a ``tsvector`` the database
  derives from ``doc`` (GIN-indexed; a word longer than ``LEXEME_CHARS`` is cut to that length there,
  from ``cut``, a superset filter). ``words @@ 'a' & 'b'`` finds the candidates and ``doc LIKE '% a b %'`` is the exact
  phrase test, so results equal ``language.matches``.
- ``search_ips``: ``actor.ip`` and ``source.ip`` as sortable keys (``index.ip_key``); a sealed
  ``actor.ip`` is keyed by the vault's value and names its commitment, so an erased address stops
  matching at once and its rows go with the erasure (PostgresStore.vault_erase) or the next ``tidy``.
- ``search_keys``: ``actor.session`` and ``request.trace_id`` with the entry's time, for timelines.

``refresh`` indexes each log from its mark in ``search_state`` up to the log's committed size, a
batch per transaction, under a per-log advisory lock (every API node may run it at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import msgspec

from trailseal.query.index import document_text, ip_key

BATCH = 5_000
LEXEME_CHARS = 100  # as in 0003_search.sql: tsvector lexemes hold 2047 bytes; words are cut to 100 characters
LOCK = "SELECT pg_advisory_xact_lock(hashtext('trailseal.search:' || %s))"
BEHIND = ("SELECT l.name, l.size, coalesce(s.indexed, 0) FROM logs l LEFT JOIN search_state s ON s.log = l.name"
          " WHERE l.size > coalesce(s.indexed, 0) ORDER BY l.name")
KEY_FIELDS = (("actor.session", "actor", "session"), ("request.trace_id", "request", "trace_id"))
COPIES = {  # binary COPY of each search table: columns and their types
    "search_text": ("log, idx, received, doc, cut", ["text", "int8", "timestamptz", "text", "text"]),
    "search_ips": ("field, ip, log, idx, received, commitment", ["text", "bytea", "text", "int8", "timestamptz", "text"]),
    "search_keys": ("log, field, value, time, idx, received", ["text", "text", "text", "timestamptz", "int8", "timestamptz"]),
}
_decode = msgspec.json.Decoder().decode
_ip_key = lru_cache(maxsize=65536)(ip_key)  # addresses repeat; parsing one is most of an entry's cost


def lexeme(word: str) -> str:
    """A word as the tsvector holds it."""
    return word[:LEXEME_CHARS]


def phrase_doc(event: dict[str, Any]) -> str:
    """The event's words in order, single-spaced and space-framed, with boundaries between values."""
    return " " + " ".join(document_text(event).split()) + " "


def cut_words(doc: str) -> str | None:
    """The document with words longer than a lexeme cut to one; None when it has none."""
    words = doc.split(" ")
    if max(map(len, words)) <= LEXEME_CHARS:
        return None
    return " ".join(lexeme(w) for w in words)


# -- keeping up with the store ---------------------------------------------------------------------
def pending(store) -> int:
    """How many committed entries the search tables do not hold yet."""
    return sum(size - mark for _, size, mark in store._conn().execute(BEHIND).fetchall())


def reset(store) -> None:
    """Empty the search tables and every log's mark, in one transaction holding each log's indexing lock
    (so no refresh interleaves); the next ``refresh`` rebuilds them."""
    conn = store._conn()
    with conn.transaction():
        for (log,) in conn.execute("SELECT name FROM logs ORDER BY name").fetchall():
            conn.execute(LOCK, (log,))
        for table in (*COPIES, "search_state"):
            conn.execute(f"DELETE FROM {table}")


def refresh(store, batch: int = BATCH) -> int:
    """Index every entry committed since the last refresh; return how many were indexed."""
    total = 0
    for log, size, _ in store._conn().execute(BEHIND).fetchall():
        while (count := _index_batch(store, log, size, batch)) is not None:
            total += count
    return total


def _index_batch(store, log: str, size: int, batch: int) -> int | None:
    """One transaction: index up to ``batch`` entries past the log's mark; None when none are left."""
    conn = store._conn()
    with conn.transaction():
        conn.execute(LOCK, (log,))
        row = conn.execute("SELECT indexed FROM search_state WHERE log = %s", (log,)).fetchone()
        mark = row[0] if row else 0
        if mark >= size:
            return None
        rows = store._binary().execute(
            "SELECT idx, received, time, data FROM entries WHERE log = %s AND idx >= %s AND idx < %s"
            " ORDER BY idx LIMIT %s", (log, mark, size, batch)).fetchall()
        upto = rows[-1][0] + 1 if len(rows) == batch else size  # entries retention dropped are skipped
        index_rows(store, conn, log, rows)
        conn.execute("INSERT INTO search_state VALUES (%s, %s) ON CONFLICT (log) DO UPDATE"
                     " SET indexed = excluded.indexed", (log, upto))
    return len(rows)


def index_rows(store, conn, log: str, rows: Sequence[tuple]) -> None:
    """Add (idx, received, time, entry bytes) rows of one log to the search tables."""
    events = [(idx, received, time, _decode(data)) for idx, received, time, data in rows]
    plain = sealed_ips(store, [event for *_, event in events])
    texts, ips, keys = [], [], []
    for idx, received, time, event in events:
        doc = phrase_doc(event)
        texts.append((log, idx, received, doc, cut_words(doc)))
        ips.extend((field, key, log, idx, received, commitment)
                   for field, key, commitment in _ip_rows(event, plain))
        keys.extend((log, field, value, time, idx, received) for field, value in _key_rows(event))
    with conn.cursor() as cur:
        for table, rows in (("search_text", texts), ("search_ips", ips), ("search_keys", keys)):
            _copy(cur, table, rows)


def _copy(cur, table: str, rows: list[tuple]) -> None:
    if rows:
        columns, types = COPIES[table]
        with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)


def _ip_rows(event: dict, plain: dict[str, str]) -> list[tuple[str, bytes, str | None]]:
    """(field, key, commitment) of the event's addresses; a sealed actor.ip through the vault."""
    found = []
    actor_ip = (event.get("actor") or {}).get("ip")
    if isinstance(actor_ip, str) and actor_ip in plain:
        key = _ip_key(plain[actor_ip])
        if key is not None:
            found.append(("actor.ip", key, actor_ip))
    elif isinstance(actor_ip, str) and (key := _ip_key(actor_ip)) is not None:
        found.append(("actor.ip", key, None))
    if isinstance(source_ip := (event.get("source") or {}).get("ip"), str) and (key := _ip_key(source_ip)):
        found.append(("source.ip", key, None))
    return found


def _key_rows(event: dict) -> list[tuple[str, str]]:
    """(field, value) of the event's session and trace id (strings; NUL as U+FFFD, as text needs)."""
    found = []
    for field, part, name in KEY_FIELDS:
        value = (event.get(part) or {}).get(name)
        if isinstance(value, str):
            found.append((field, value.replace("\x00", "\ufffd")))
    return found


def sealed_ips(store, events: Sequence[dict]) -> dict[str, str]:
    """The vault's plaintext of the events' sealed ``actor.ip`` commitments (erased ones stay unknown)."""
    sealed = {ip for event in events
              if isinstance(ip := (event.get("actor") or {}).get("ip"), str) and ip.startswith("pd:")}
    return {commitment: row.value for commitment, row in store.vault_get(sorted(sealed)).items()} if sealed else {}


# -- forgetting ------------------------------------------------------------------------------------
FORGET_ERASED = ("DELETE FROM search_ips s WHERE s.commitment IS NOT NULL"
                 " AND NOT EXISTS (SELECT 1 FROM vault v WHERE v.commitment = s.commitment)")
TABLES = ("search_text", "search_ips", "search_keys")


def forget(conn, log: str, indices: Sequence[int]) -> None:
    """Inside the transaction that drops these entries' payloads (retention): their search rows go too,
    so nothing of a payload that left the store stays searchable. ``conn`` is a psycopg connection."""
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE log = %s AND idx = ANY(%s)", (log, list(indices)))


def tidy(store) -> int:
    """Drop rows of addresses the vault no longer holds and of entries retention dropped; how many."""
    conn = store._conn()
    removed = conn.execute(FORGET_ERASED).rowcount
    for (log,) in conn.execute("SELECT name FROM logs").fetchall():
        first = conn.execute("SELECT min(idx) FROM entries WHERE log = %s", (log,)).fetchone()[0]
        below = first if first is not None else conn.execute(
            "SELECT coalesce(max(indexed), 0) FROM search_state WHERE log = %s", (log,)).fetchone()[0]
        for table in TABLES:
            removed += conn.execute(f"DELETE FROM {table} WHERE log = %s AND idx < %s", (log, below)).rowcount
    return removed

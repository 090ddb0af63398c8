"""Pages of sealed entries as one text, vault values joined: ``StoredPages`` and ``VaultValues``.

JSONL and OCSF Parquet exports read each page from the SQLite store this way (``StoredPages.read``: SQLite
concatenates the entries, a JSON array or JSONL lines, so no row becomes a Python object), in a thread of
their own, join the vault values with one cache for the whole export, and write the lines or hand the
array to the Parquet worker processes. One cache matters: a page's values are
mostly new, but many recur from recent pages (an actor's id, the address it came from), and a cache per
worker misses those first sealed in the pages the other workers built (1M default-policy events over
three builders: 0.26 lookups one by one per event, against none with one cache). A page read after an
entry was pruned leaves that entry out, as an export started a moment later would; a value erased
meanwhile stays ``pd:<digits>``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from itertools import starmap
from typing import Any

import msgspec

from trailseal.store import sqlite_vault as vault
from trailseal.store.readers import read_only

_encode = msgspec.json.Encoder().encode
_decode_indexes = msgspec.json.Decoder(list[int]).decode
_COMMITMENT_DIGITS = re.compile(rb"pd:([0-9a-f]{64})")
_HEX_DIGITS = b"0123456789abcdef"
RUN_ABOVE = 64  # a page missing more values than this reads its stretch of the vault as one run
ANCHORS = 5  # commitments at each end of a page whose newest vault row bounds that run
RUN_SLACK = 4  # the run is read only if it is at most this many rows per value still missing
# one row: how many entries, their indexes as a JSON array, and their texts, in the index order: as one JSON
# array, or as JSONL lines with `index` put in first (a BLOB joined with `||` is taken as text, byte for byte)
_ARRAY = "CAST('[' || group_concat(data, ',') || ']' AS BLOB)"
_LINES = "CAST(group_concat('{\"index\":' || idx || ',' || substr(data, 2) || char(10), '') AS BLOB)"
_PAGE = (
    "SELECT count(*), '[' || group_concat(idx) || ']', {text}"
    " FROM (SELECT idx, data FROM entries WHERE log = ? AND idx BETWEEN ? AND ?{only} ORDER BY idx)"
)
_CHOSEN = " AND idx IN (SELECT value FROM json_each(?))"
# a run of vault rows as one row: how many, their commitments run together (each `pd:` and 64 digits), their
# values joined by NUL (a value holding a NUL itself makes one value too many: the run is then read row by row)
_RUN_VALUES = (
    "SELECT count(*), CAST(group_concat(commitment, '') AS BLOB), CAST(group_concat(value, char(0)) AS BLOB)"
    " FROM vault WHERE rowid BETWEEN ? AND ?"
)
_NEEDS_ESCAPE = re.compile(rb'["\\\x01-\x1f]')  # what JSON escapes in a string (NUL: see _RUN_VALUES)


class VaultValues:
    """Vault values by commitment, JSON-escaped, cached across pages (an actor's commitment repeats).

    ``reveal`` gives the same result as ``Protection.reveal_all`` on the decoded events: a commitment
    is plain ASCII inside a JSON string, so its JSON-escaped value can replace it in the text.
    """

    CAPACITY = 200_000

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}  # the 64 hex digits after `pd:` -> what replaces `pd:<digits>`
        self.older: dict[bytes, bytes] = {}  # the values before the cache last filled up

    def reveal(self, conn: Any, rows: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """Each row's text with the values joined."""
        return [(position, self.reveal_text(conn, data)) for position, data in rows]

    def reveal_text(self, conn: Any, text: bytes) -> bytes:
        """A whole page of JSON text with the values joined: one split around every commitment (the
        texts between them, and the digits of each), one lookup each."""
        parts = split_commitments(text)  # [text, digits, text, digits, ..., text]
        if len(parts) == 1:
            return text
        digits = parts[1::2]
        try:
            parts[1::2] = map(self.values.__getitem__, digits)  # most pages: every value already cached
        except KeyError:
            self._load_page(conn, digits)
            parts[1::2] = map(self.values.__getitem__, digits)
        return b"".join(parts)

    def _load_page(self, conn: Any, digits: list[bytes]) -> None:
        """Cache the values of a page's commitments. Were they to overflow the cache, its values become the
        older ones first (the ones older still are forgotten), from which a page takes back those it meets
        again: a value that recurs (an actor's id) is kept without another lookup, while the many seen once
        (addresses) fall out."""
        wanted = set(digits)
        if len(self.values) + len(wanted) > self.CAPACITY:
            self.older, self.values = self.values, {}  # before the page's lookups: they all land in values
        missing = wanted.difference(self.values)
        if self.older and missing:
            older = self.older  # a dict: looked up once per value missing (set.intersection would walk it)
            again = {key: older[key] for key in missing if key in older}
            self.values.update(again)
            missing.difference_update(again)
        if len(missing) > RUN_ABOVE and isinstance(conn, sqlite3.Connection):
            missing = self._load_run(conn, digits, missing)
        if missing:
            self._load(conn, missing)

    def _load_run(self, conn: sqlite3.Connection, digits: list[bytes], missing: set[bytes]) -> set[bytes]:
        """Read the vault rows a page in sealed order needs as one run of rowids; the ones left missing.

        The sealer writes an event's vault rows in the commit that seals it, so the new values of a page of
        events in index order lie in one stretch of the vault, between the rows of its first and its last
        events (the newest row of each end's first values stands in: a value sealed once and reused lies
        far earlier). A run read in rowid order costs a fraction of one index lookup per value; what it
        misses (the reused, the first few) is looked up."""
        first = _newest_rowid(conn, digits[:ANCHORS])
        last = _newest_rowid(conn, digits[-ANCHORS:])
        if first is None or last is None or not 0 <= last - first <= RUN_SLACK * len(missing):
            return missing
        self.values.update(run_values(conn, first, last))
        return missing.difference(self.values)

    def _load(self, conn: Any, missing: set[bytes]) -> None:
        wanted = sorted("pd:" + digits.decode() for digits in missing)
        self.values.update((c[3:].encode(), c.encode()) for c in wanted)  # erased: stays pd:<digits>
        self.values.update(starmap(_cached, vault_values(conn, wanted)))


def split_commitments(text: bytes) -> list[bytes]:
    """``_COMMITMENT_DIGITS.split(text)``: the texts between commitments and the 64 digits of each. Split
    at every ``pd:`` in C, then checked: 64 hex digits after each (else the expression decides: a ``pd:``
    that is no commitment); about 70% of the regular expression's time on pages of default-policy events."""
    pieces = text.split(b"pd:")
    if len(pieces) == 1:
        return pieces
    rest = pieces[1:]
    digits = [piece[:64] for piece in rest]
    joined = b"".join(digits)
    if len(joined) != 64 * len(digits) or joined.translate(None, _HEX_DIGITS):
        return _COMMITMENT_DIGITS.split(text)
    parts = [pieces[0]] * (2 * len(rest) + 1)
    parts[1::2] = digits
    parts[2::2] = [piece[64:] for piece in rest]
    return parts


def run_values(conn: sqlite3.Connection, first: int, last: int) -> Iterable[tuple[bytes, bytes]]:
    """(the 64 digits of a commitment, its value JSON-escaped without the quotes) of the vault rows from
    rowid ``first`` to ``last``: read as one row (``_RUN_VALUES``) and split here, not a row at a time
    (a Python tuple, two strings and an encoding per row were most of an export's join)."""
    count, commitments, values = conn.execute(_RUN_VALUES, (first, last)).fetchone()
    if not count:
        return ()
    digits = commitments.split(b"pd:")[1:]
    texts = values.split(b"\0")
    if len(digits) != count or len(texts) != count:  # a value holding a NUL (or an odd commitment)
        rows = conn.execute("SELECT commitment, value FROM vault WHERE rowid BETWEEN ? AND ?", (first, last))
        return list(starmap(_cached, rows))
    if _NEEDS_ESCAPE.search(values):
        texts = [_escaped(text.decode()) if _NEEDS_ESCAPE.search(text) else text for text in texts]
    return zip(digits, texts, strict=True)


def _cached(commitment: str, value: str) -> tuple[bytes, bytes]:
    """A vault row as the cache holds it: the commitment's 64 digits, and the value as it goes in JSON text."""
    return commitment[3:].encode(), _escaped(value)


def _escaped(value: str) -> bytes:
    """A value JSON-escaped, without its quotes."""
    return _encode(value)[1:-1]


def _newest_rowid(conn: sqlite3.Connection, digits: list[bytes]) -> int | None:
    """The highest vault rowid of these commitments (None if none is in the vault)."""
    return max((row[0] for row in vault.select(conn, "rowid", ["pd:" + d.decode() for d in digits])), default=None)


def vault_values(conn: Any, commitments: list[str]) -> Iterator[tuple[str, str]]:
    """(commitment, value) of the vault rows holding these commitments: through the integer key on a SQLite
    store (sqlite_vault.py), by the commitment itself on PostgreSQL (export's reader, ``?`` marks)."""
    if isinstance(conn, sqlite3.Connection):
        yield from vault.select(conn, "commitment, value", commitments)
        return
    for start in range(0, len(commitments), vault.CHUNK):
        chunk = commitments[start:start + vault.CHUNK]
        yield from conn.execute(f"SELECT commitment, value FROM vault WHERE commitment IN ({','.join('?' * len(chunk))})",
                                chunk)


def jsonl_line(row: tuple[int, bytes]) -> bytes:
    """A sealed entry's JSON text with ``index`` put in first, as a line (what ``_LINES`` makes in SQL)."""
    return b'{"index":%d,%b\n' % (row[0], row[1][1:])


class StoredPages:
    """Pages read by index from a SQLite store, as they are stored (commitments not joined), on a read-only
    connection of their own: each as one JSON array text, or with ``lines`` as JSONL lines."""

    def __init__(self, path: str, lines: bool = False):
        self.path, self.lines = path, lines
        self.conn: sqlite3.Connection | None = None
        text = _LINES if lines else _ARRAY
        self.run = _PAGE.format(text=text, only="")  # every index of a run: no list needed
        self.chosen = _PAGE.format(text=text, only=_CHOSEN)

    def read(self, log: str, indexes: list[int]) -> tuple[bytes, list[int]]:
        """(the text of the log's entries at ``indexes``, ascending, the indexes found): an index no longer
        stored is left out."""
        if not indexes:
            return self._text([]), []
        conn = self.connection()
        first, last = indexes[0], indexes[-1]
        if last - first + 1 == len(indexes):
            found, numbers, text = conn.execute(self.run, (log, first, last)).fetchone()
        else:
            found, numbers, text = conn.execute(self.chosen, (log, first, last, _encode(indexes))).fetchone()
        if not found:
            return self._text([]), []
        positions = _decode_indexes(numbers)
        if positions != sorted(positions):  # never seen: the order group_concat keeps is SQLite's choice
            return self._read_rows(log, positions)
        return text, positions

    def _read_rows(self, log: str, indexes: list[int]) -> tuple[bytes, list[int]]:
        """The same, row by row, in index order."""
        rows = sorted(
            self.connection().execute(
                "SELECT idx, data FROM entries WHERE log = ? AND idx IN (SELECT value FROM json_each(?))",
                (log, _encode(indexes)),
            )
        )
        return self._text(rows), [idx for idx, _ in rows]

    def _text(self, rows: list[tuple[int, bytes]]) -> bytes:
        if self.lines:
            return b"".join(map(jsonl_line, rows))
        return b"[%b]" % b",".join(data for _, data in rows)

    def connection(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn = read_only(self.path)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

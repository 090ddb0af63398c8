"""Pages read by index from the SQLite store (what JSONL and OCSF Parquet exports read) hold the stored
entries, as a JSON array or as JSONL lines, with or without every index of a run, and leave out what is no
longer stored; the export joins their vault values as a lookup of each would."""

from __future__ import annotations

import sqlite3
import threading

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.query import export, stored_pages
from trailseal.query.export import export_to
from trailseal.query.stored_pages import StoredPages, VaultValues, jsonl_line


def stored_rows(trail, indexes: list[int]) -> list[tuple[int, bytes]]:
    """(index, sealed text) of the entries at ``indexes`` that are stored, one lookup each."""
    conn = sqlite3.connect(trail.store.path)
    try:
        found = [(i, conn.execute("SELECT data FROM entries WHERE log = 'default' AND idx = ?", (i,)).fetchone())
                 for i in indexes]
    finally:
        conn.close()
    return [(i, row[0]) for i, row in found if row is not None]


def stored(trail, indexes: list[int], lines: bool = False) -> bytes:
    """The stored entries at ``indexes`` as one JSON array text, or as JSONL lines."""
    rows = stored_rows(trail, indexes)
    if lines:
        return b"".join(map(jsonl_line, rows))
    return b"[%b]" % b",".join(data for _, data in rows)


def joined(trail, text: bytes) -> bytes:
    """The text with its vault values joined by ``VaultValues``, one lookup each."""
    conn = sqlite3.connect(trail.store.path)
    try:
        return VaultValues().reveal_text(conn, text)
    finally:
        conn.close()


@pytest.mark.parametrize("lines", [False, True], ids=["array", "lines"])
def test_a_run_of_indexes_reads_what_is_stored(trail, lines):
    reader = StoredPages(trail.store.path, lines=lines)
    try:
        text, found = reader.read("default", list(range(10, 200)))
    finally:
        reader.close()
    assert found == list(range(10, 200))
    assert text == stored(trail, found, lines) and b"pd:" in text  # commitments are joined by the export


@pytest.mark.parametrize("lines", [False, True], ids=["array", "lines"])
def test_chosen_indexes_read_in_index_order(trail, lines):
    chosen = [3, 4, 17, 90, 91, 250, 380]
    reader = StoredPages(trail.store.path, lines=lines)
    try:
        text, found = reader.read("default", chosen)
        rows_text, rows_found = reader._read_rows("default", chosen)  # the row-by-row fallback
    finally:
        reader.close()
    assert found == rows_found == chosen
    assert text == rows_text == stored(trail, chosen, lines)


@pytest.mark.parametrize("lines", [False, True], ids=["array", "lines"])
def test_indexes_no_longer_stored_are_left_out(trail, lines):
    empty = b"" if lines else b"[]"
    reader = StoredPages(trail.store.path, lines=lines)
    try:
        assert reader.read("default", [5, 10_000, 10_001]) == (stored(trail, [5], lines), [5])
        assert reader.read("default", [10_000, 10_001]) == (empty, [])
        assert reader.read("default", []) == (empty, [])
        assert reader.read("nosuchlog", [1, 2]) == (empty, [])
    finally:
        reader.close()


@pytest.mark.parametrize("lines", [False, True], ids=["array", "lines"])
def test_the_export_joins_each_page_read_ahead_as_lookups_would(trail, lines):
    """Pages read in a thread of their own, their values joined here with one cache: every page's text is
    the stored text with each value looked up, and nothing of the erased subject comes back."""
    pages = list(export._stored_pages(trail, "", "default", 37, lines))
    assert len(pages) > 5 and [found for _, found, _ in pages] == [
        list(range(n, min(n + 37, trail.store.tree_size("default"))))
        for n in range(0, trail.store.tree_size("default"), 37)
    ]
    for text, found, name in pages:
        assert name == "default"
        assert text == joined(trail, stored(trail, found, lines))
        assert b'"gone"' not in text


def test_an_error_while_reading_ahead_is_raised_to_the_exporter(trail, monkeypatch):
    def broken(self, log, indexes):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(StoredPages, "read", broken)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        list(export._stored_pages(trail, "", "default", 37, lines=True))


def test_pages_read_here_and_built_by_workers_write_the_same_files(trail, tmp_path, monkeypatch):
    """Many small pages, two workers: the files equal those of pages read and built in this process."""
    here = export_to(trail, "", "ocsf-parquet", tmp_path / "here")
    monkeypatch.setattr(export, "PARQUET_PAGE", 37)
    monkeypatch.setattr(export, "PARQUET_WORKERS", 2)
    paged = export_to(trail, "", "ocsf-parquet", tmp_path / "workers")
    monkeypatch.setattr(export, "PARQUET_WORKERS", 0)
    alone = export_to(trail, "-category:system", "ocsf-parquet", tmp_path / "alone")
    assert paged.rows == here.rows > 300 and paged.classes == here.classes
    for one, other in zip(here.files, paged.files, strict=True):
        assert one.name == other.name
        assert pq.read_table(one).to_pylist() == pq.read_table(other).to_pylist()
    assert 0 < alone.rows < here.rows and 6002 not in alone.classes


def test_a_page_in_sealed_order_reads_its_vault_values_as_one_run(monkeypatch):
    """New values of a page lie in one stretch of vault rowids: read as a run, they join as lookups would.
    Values sealed long before (reused), erased ones and another log's rows in the stretch change nothing."""
    from trailseal.privacy.vault import VaultRow
    from trailseal.query import stored_pages
    from trailseal.query.export import join_values
    from trailseal.store import sqlite_vault

    conn = sqlite3.connect(":memory:")
    sqlite_vault.create(conn)
    commitment = [f"pd:{n * 7919 % 10_007:064x}" for n in range(400)]  # rowid order is not commitment order
    rows = [VaultRow("s", "audit" if n % 9 == 0 else "default", c, b"\0" * 32, f'v"{n}\u00e9', "actor.id", "0" * 64)
            for n, c in enumerate(commitment)]
    sqlite_vault.insert(conn, rows)
    conn.execute("DELETE FROM vault WHERE rowid % 13 = 0")  # erased: stays pd:<digits>
    known = {r.commitment.encode(): r.value for r in rows if conn.execute(
        "SELECT 1 FROM vault WHERE commitment = ?", (r.commitment,)).fetchone()}
    looked_up: list[int] = []
    real = VaultValues._load
    monkeypatch.setattr(VaultValues, "_load", lambda self, c, missing: looked_up.append(len(missing)) or
                        real(self, c, missing))
    monkeypatch.setattr(stored_pages, "RUN_ABOVE", 8)
    vault = VaultValues()
    for start in range(100, 400, 60):  # pages in sealed order, each also naming values sealed long before
        names = [commitment[n] for n in range(start, start + 60) if n % 9] + [commitment[n] for n in (3, 50, 97)]
        page = b"[" + b",".join(b'{"a":"%s"}' % name.encode() for name in names) + b"]"
        assert vault.reveal_text(conn, page) == join_values(page, known)
    # one by one: only the reused, the erased and the first few (before the newest of the first anchors)
    assert looked_up and max(looked_up) <= 3 + 60 // 13 + 1 + stored_pages.ANCHORS, looked_up
    monkeypatch.setattr(stored_pages, "RUN_ABOVE", 10_000)
    looked_up.clear()
    vault = VaultValues()
    page = b",".join(b'"%s"' % commitment[n].encode() for n in range(100, 160) if n % 9)
    assert vault.reveal_text(conn, page) == join_values(page, known)
    assert looked_up == [sum(1 for n in range(100, 160) if n % 9)]  # without the run: every one


def test_values_met_again_after_the_cache_fills_up_are_not_looked_up_again(monkeypatch):
    """Filling the cache makes its values the older ones: a page takes back those it meets again (an actor's
    id) without a lookup; the values before those are forgotten and looked up."""
    from trailseal.privacy.vault import VaultRow
    from trailseal.query.export import join_values
    from trailseal.store import sqlite_vault

    conn = sqlite3.connect(":memory:")
    sqlite_vault.create(conn)
    commitment = [f"pd:{n:064x}" for n in range(90)]
    rows = [VaultRow("s", "default", c, b"\0" * 32, f"v{n}", "actor.ip", "0" * 64) for n, c in enumerate(commitment)]
    sqlite_vault.insert(conn, rows)
    known = {r.commitment.encode(): r.value for r in rows}
    looked_up: list[bytes] = []
    real = VaultValues._load
    monkeypatch.setattr(VaultValues, "_load", lambda self, c, missing: looked_up.extend(missing) or
                        real(self, c, missing))
    vault = VaultValues()
    vault.CAPACITY = 40

    def reveal(numbers) -> None:
        page = b"[" + b",".join(b'"%s"' % commitment[n].encode() for n in numbers) + b"]"
        assert vault.reveal_text(conn, page) == join_values(page, known)

    reveal(range(0, 30))  # 30 new values
    reveal(range(30, 60))  # 30 more overflow the cache: the first 30 become the older ones
    assert len(looked_up) == 60
    reveal([0, 1, 2, 30, 31])  # met again: taken back from the older values, or still cached
    assert len(looked_up) == 60
    reveal(range(60, 90))  # overflows again: values 30-59 and 0-2 become the older ones, 3-29 are forgotten
    reveal([3, 4, 0, 31])
    assert sorted(looked_up[90:]) == [commitment[3][3:].encode(), commitment[4][3:].encode()]


def test_a_row_group_the_writer_thread_cannot_write_fails_the_export(trail, tmp_path, monkeypatch):
    """Row groups are written by a thread of their own: an error there (a full disk) is raised by the export,
    not lost with the thread."""
    import pyarrow.parquet as parquet

    written = []

    def full_disk(self, table, *args, **kwargs):
        written.append(table.num_rows)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "PARQUET_ROWS", 50)
    monkeypatch.setattr(parquet.ParquetWriter, "write_table", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export_to(trail, "", "ocsf-parquet", tmp_path / "full")
    assert written  # the thread tried
    assert not [t for t in threading.enumerate() if t.name.startswith("trailseal-parquet")]


@pytest.mark.parametrize(
    "odd",
    [None, 'say "hi"', "back\\slash", "tab\there\nnewline\x01\x1f", "nul\x00inside", "é 😀 \u2028 \x7f", ""],
    ids=["plain", "quote", "backslash", "controls", "nul", "unicode", "empty"],
)
def test_a_run_of_vault_values_read_as_one_row_equals_them_read_row_by_row(odd):
    """The run is read as one row and split: each commitment's value JSON-escaped as msgspec writes it, for
    values needing escapes, a NUL (which would shift the split: read row by row then) or none at all."""
    import msgspec

    from trailseal.privacy.vault import VaultRow
    from trailseal.query.stored_pages import run_values
    from trailseal.store import sqlite_vault

    conn = sqlite3.connect(":memory:")
    sqlite_vault.create(conn)
    values = [f"10.0.{n // 250}.{n % 250}" for n in range(300)]
    if odd is not None:
        values[150] = odd
    rows = [VaultRow("s", "default", f"pd:{n * 7919 % 10_007:064x}", b"\0" * 32, v, "actor.ip", "0" * 64)
            for n, v in enumerate(values)]
    sqlite_vault.insert(conn, rows)
    encode = msgspec.json.Encoder().encode
    expected = {row.commitment[3:].encode(): encode(row.value)[1:-1] for row in rows}
    assert dict(run_values(conn, 1, 300)) == expected
    assert dict(run_values(conn, 101, 200)) == {k: expected[k] for k in list(expected)[100:200]}
    assert list(run_values(conn, 400, 500)) == []


_DIGITS = "0123456789abcdef"
_PIECES = st.one_of(
    st.sampled_from(["pd:", "pd", ":", '"', ",", "PD:", "x"]),
    st.text(_DIGITS, min_size=60, max_size=70),  # around 64 digits: too few, just so, and more
    st.text(_DIGITS + "ABCDEFg", min_size=64, max_size=64),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=12))
def test_commitments_are_split_out_as_the_regular_expression_splits_them(pieces):
    text = "".join(pieces).encode()
    assert stored_pages.split_commitments(text) == stored_pages._COMMITMENT_DIGITS.split(text)


def test_a_page_of_commitments_is_split_without_the_regular_expression(monkeypatch):
    digits = [f"{i:064x}".encode() for i in range(3)]
    text = b'[{"id":"pd:%b"},{"id":"pd:%b","ip":"pd:%bff"}]' % tuple(digits)

    class Unused:
        def split(self, text):
            raise AssertionError("the regular expression was used")

    monkeypatch.setattr(stored_pages, "_COMMITMENT_DIGITS", Unused())
    assert stored_pages.split_commitments(text) == [b'[{"id":"', digits[0], b'"},{"id":"', digits[1], b'","ip":"',
                                                    digits[2], b'ff"}]']

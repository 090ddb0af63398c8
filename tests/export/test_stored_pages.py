"""Pages read by index from the SQLite store (what OCSF Parquet workers read) equal the pages an export
reads and joins itself, with or without every index of a run, and leave out what is no longer stored."""

from __future__ import annotations

import sqlite3

import pyarrow.parquet as pq

from trailseal.query import export
from trailseal.query.export import export_to
from trailseal.query.stored_pages import StoredPages, VaultValues


def expected(trail, indexes: list[int]) -> bytes:
    """The entries at ``indexes`` as one JSON array text, vault values joined by ``VaultValues``."""
    conn = sqlite3.connect(trail.store.path)
    try:
        rows = [conn.execute("SELECT data FROM entries WHERE log = 'default' AND idx = ?", (i,)).fetchone()
                for i in indexes]
        text = b"[%b]" % b",".join(row[0] for row in rows if row is not None)
        return VaultValues().reveal_text(conn, text)
    finally:
        conn.close()


def test_a_run_of_indexes_reads_as_the_export_reads_it(trail):
    stored = StoredPages(trail.store.path)
    try:
        text, found = stored.read("default", list(range(10, 200)))
    finally:
        stored.close()
    assert found == list(range(10, 200))
    assert text == expected(trail, found)
    assert b'"gone"' not in text  # nothing of the erased subject comes back


def test_chosen_indexes_read_in_index_order(trail):
    chosen = [3, 4, 17, 90, 91, 250, 380]
    stored = StoredPages(trail.store.path)
    try:
        text, found = stored.read("default", chosen)
        rows_text, rows_found = stored._read_rows("default", chosen)  # the row-by-row fallback
    finally:
        stored.close()
    assert found == rows_found == chosen
    assert text == rows_text == expected(trail, chosen)


def test_indexes_no_longer_stored_are_left_out(trail):
    stored = StoredPages(trail.store.path)
    try:
        assert stored.read("default", [5, 10_000, 10_001]) == (expected(trail, [5]), [5])
        assert stored.read("default", [10_000, 10_001]) == (b"[]", [])
        assert stored.read("default", []) == (b"[]", [])
        assert stored.read("nosuchlog", [1, 2]) == (b"[]", [])
    finally:
        stored.close()


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

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


def test_workers_reading_their_pages_write_the_same_files(trail, tmp_path, monkeypatch):
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

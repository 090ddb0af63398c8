"""Reader threads: a page's vault lookups and entry rows split over a few read-only connections, so their cold
disk reads overlap. The split must give exactly what one connection gives, erased rows included."""

from __future__ import annotations

import threading

from tests.privacy.test_vault_keys import vault_row, write
from trailseal.store import sqlite_vault
from trailseal.store.readers import SPLIT_ABOVE, Readers
from trailseal.store.sqlite import SQLiteStore


def test_map_splits_over_the_readers_and_keeps_the_order(tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    readers = Readers(store.path, threads=3)
    seen: set[str] = set()

    def read(conn, part):
        seen.add(threading.current_thread().name)
        return [conn.execute("SELECT ?", (item,)).fetchone()[0] for item in part]

    parts = readers.map(read, list(range(10)))
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert seen and all(name.startswith("trailseal-reader") for name in seen)
    readers.close()
    assert readers._connections == [] and readers._pool is None
    assert readers.map(read, [1]) == [[1]]  # usable again after close: a new pool starts
    readers.close()
    store.close()


def test_a_split_vault_lookup_equals_one_connection_and_misses_erased_rows(tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    rows = [vault_row(n, f"{n:064x}", subject="alice" if n % 3 else "bob") for n in range(1, 3 * SPLIT_ABOVE)]
    write(store, rows)
    wanted = [row.commitment for row in rows] + ["pd:" + "f" * 64, "not-a-commitment"]
    assert len(wanted) > SPLIT_ABOVE
    assert store.vault_get(wanted) == {row.commitment: row for row in rows}
    assert store.vault_erase("bob") == len([row for row in rows if row.subject == "bob"])
    assert store.vault_get(wanted) == {row.commitment: row for row in rows if row.subject == "alice"}
    store.close()


def test_a_split_token_lookup_finds_every_row_of_the_token_and_log(tmp_path, monkeypatch):
    """An actor's commitments (one per event) lie anywhere in the vault: found by rowid from the token's key
    index, then read on the readers. Same token key, other token: never returned."""
    store = SQLiteStore(tmp_path / "t.db")
    token, other = "c" * 64, "c" * 15 + "d" * 49  # same 60-bit key
    rows = [vault_row(n, token if n % 4 else other, log="default" if n % 5 else "audit")
            for n in range(1, 4 * SPLIT_ABOVE)]
    write(store, rows)
    mine = [row for row in rows if row.token == token]
    assert len(mine) > SPLIT_ABOVE
    assert sorted(store.vault_find(token)) == sorted(row.commitment for row in mine)
    assert sorted(store.vault_find(token, "audit")) == sorted(row.commitment for row in mine if row.log == "audit")
    assert sorted(store.vault_find(other)) == sorted(row.commitment for row in rows if row.token == other)
    monkeypatch.setattr(sqlite_vault, "CHUNK", 7)  # a reader's share in several statements (SQLite caps variables)
    assert sorted(store.vault_find(token)) == sorted(row.commitment for row in mine)
    assert store.readers.map(lambda conn, part: part, []) == []
    store.close()

"""The SQLite vault is looked up only through integer keys (tkey of the search token, ckey of the commitment,
skey of the subject) in key tables, settled in batches after the rows are appended; lookups check the whole
text and read the rows not keyed yet too, and data dirs made before are upgraded when the store opens."""

from __future__ import annotations

import sqlite3

from trailseal.privacy.vault import VaultRow
from trailseal.store import sqlite_vault
from trailseal.store.base import Commit
from trailseal.store.sqlite import SQLiteStore, write_transaction
from trailseal.store.sqlite_vault import commitment_key, subject_key, token_key

OLD_VAULT = """
CREATE TABLE vault (commitment TEXT PRIMARY KEY, subject TEXT NOT NULL, log TEXT NOT NULL,
    salt BLOB NOT NULL, value TEXT NOT NULL, field TEXT NOT NULL, token TEXT NOT NULL);
CREATE INDEX vault_by_subject ON vault (subject, log);
CREATE INDEX vault_by_token ON vault (token);
"""


def vault_row(n: int, token: str, subject: str = "alice", log: str = "default") -> VaultRow:
    return VaultRow(subject, log, "pd:" + f"{n:x}".rjust(64, "0"), bytes([n]) * 32, f"value-{n}", "actor.id", token)


def write(store: SQLiteStore, rows: list[VaultRow], size: int = 1) -> None:
    store.commit([Commit("default", [], [], size, f"note {size}\n", "2026-01-01T00:00:00.000000Z", rows)])


KEY_TABLES = {"vault_ckey", "vault_tkey", "vault_skey", "vault_keyed"}


def layout(path) -> tuple[set[str], set[str]]:
    """(the vault table's indexes, the key tables there)."""
    with sqlite3.connect(path) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='vault'")}
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'vault_%'")}
    return indexes, tables


def waiting(store: SQLiteStore) -> int:
    return sqlite_vault.tail(store._conn())


def settle(store: SQLiteStore) -> int:
    with write_transaction(store._conn()) as conn:
        return sqlite_vault.settle(conn)


def raw_bytes(path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_token_key_is_the_first_60_bits():
    assert token_key("f" * 64) == 2**60 - 1
    assert token_key("0123456789abcde" + "f" * 49) == 0x0123456789ABCDE


def test_find_checks_the_whole_token_not_only_its_key(tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    shared = "a" * 15  # same tkey, different tokens
    write(store, [vault_row(1, shared + "1" * 49), vault_row(2, shared + "2" * 49),
                  vault_row(3, shared + "1" * 49, log="other")])
    assert token_key(shared + "1" * 49) == token_key(shared + "2" * 49)
    assert sorted(store.vault_find(shared + "1" * 49)) == [vault_row(1, "").commitment, vault_row(3, "").commitment]
    assert store.vault_find(shared + "1" * 49, "default") == [vault_row(1, "").commitment]
    assert store.vault_find(shared + "2" * 49) == [vault_row(2, "").commitment]
    assert store.vault_find(shared + "3" * 49) == []
    store.close()


def test_rows_written_twice_are_kept_once(tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    row, other = vault_row(1, "b" * 64), vault_row(2, "c" * 64)
    write(store, [row, row])
    write(store, [row, other], size=2)
    assert store.vault_get([row.commitment]) == {row.commitment: row}
    assert store.vault_find("b" * 64) == [row.commitment]  # found once, keyed or not
    assert settle(store) == 3 and settle(store) == 0
    write(store, [row], size=3)  # again, after its keys were settled
    assert settle(store) == 1
    assert store.vault_get([row.commitment, other.commitment]) == {row.commitment: row, other.commitment: other}
    assert store.vault_find("b" * 64) == [row.commitment]
    assert store._conn().execute("SELECT count(*) FROM vault").fetchone()[0] == 2
    store.close()


def test_an_old_data_dir_is_upgraded_on_open(tmp_path):
    path = tmp_path / "old.db"
    rows = [vault_row(n, f"{n:02x}" * 32, subject=f"s{n % 2}") for n in range(1, 6)]
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_VAULT)
        conn.executemany("INSERT INTO vault VALUES (?,?,?,?,?,?,?)",
                         [(r.commitment, r.subject, r.log, r.salt, r.value, r.field, r.token) for r in rows])
    store = SQLiteStore(path)
    assert layout(path) == (set(), KEY_TABLES) and waiting(store) == 0
    with sqlite3.connect(path) as conn:
        assert dict(conn.execute("SELECT token, tkey FROM vault")) == {r.token: token_key(r.token) for r in rows}
        assert set(conn.execute("SELECT commitment, ckey, subject, skey FROM vault")) == {
            (r.commitment, commitment_key(r.commitment), r.subject, subject_key(r.subject)) for r in rows}
    for r in rows:
        assert store.vault_find(r.token) == [r.commitment]
    assert store.vault_get([r.commitment for r in rows]) == {r.commitment: r for r in rows}
    write(store, [vault_row(9, "c" * 64, subject="s1")])  # the upgraded table takes new rows
    assert store.vault_find("c" * 64) == [vault_row(9, "").commitment]
    assert store.vault_erase("s1") == 4  # rows 1, 3, 5 and 9
    raw = path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes()
                               if path.with_name(path.name + "-wal").exists() else b"")
    assert b"value-2" in raw and not any(f"value-{n}".encode() in raw for n in (1, 3, 5, 9))
    assert {r.commitment for r in store.vault_get([r.commitment for r in rows]).values()} == {
        r.commitment for r in rows if r.subject == "s0"}
    store.close()
    SQLiteStore(path).close()  # a second open finds nothing left to upgrade
    assert layout(path) == (set(), KEY_TABLES)


def test_a_data_dir_laid_out_by_a_newer_trailseal_is_refused_untouched(tmp_path):
    import sqlite3

    import pytest

    from trailseal.store.sqlite import SCHEMA_VERSION, SQLiteStore, StoreError

    path = tmp_path / "newer.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
        conn.execute("DROP TABLE vault_keyed")  # a layout change this trailseal would "repair"
    with pytest.raises(StoreError, match=f"schema v{SCHEMA_VERSION + 1}"):
        SQLiteStore(path)
    with sqlite3.connect(path) as conn:
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name='vault_keyed'").fetchone()


V2_VAULT = """
CREATE TABLE vault (commitment TEXT PRIMARY KEY, subject TEXT NOT NULL, log TEXT NOT NULL,
    salt BLOB NOT NULL, value TEXT NOT NULL, field TEXT NOT NULL, token TEXT NOT NULL, tkey INTEGER NOT NULL);
CREATE INDEX vault_by_subject ON vault (subject, log);
CREATE INDEX vault_by_tkey ON vault (tkey);
"""


def test_a_v2_vault_is_rebuilt_with_integer_keys_and_loses_nothing(tmp_path):
    path = tmp_path / "v2.db"
    rows = [vault_row(n, f"{n:02x}" * 32, subject=f"s{n % 3}", log=f"log{n % 2}") for n in range(1, 10)]
    odd = VaultRow("s9", "default", "not-a-commitment", b"\x01" * 32, "kept anyway", "actor.id", "d" * 64)
    with sqlite3.connect(path) as conn:
        conn.executescript(V2_VAULT)
        conn.executemany("INSERT INTO vault VALUES (?,?,?,?,?,?,?,?)",
                         [(r.commitment, r.subject, r.log, r.salt, r.value, r.field, r.token, token_key(r.token))
                          for r in [*rows, odd]])
    store = SQLiteStore(path)
    assert store.vault_get([r.commitment for r in rows]) == {r.commitment: r for r in rows}
    assert store.vault_get(["not-a-commitment", "pd:zz", ""]) == {}  # never a crash, never a scan
    assert store.vault_find("d" * 64) == ["not-a-commitment"]
    assert store.vault_erase("s1", "log0") == 1 and store.vault_erase("s1") == 2  # rows 4; 1 and 7
    assert store.vault_erase("s9") == 1
    assert {r.commitment for r in store.vault_get([r.commitment for r in rows]).values()} == {
        r.commitment for r in rows if r.subject != "s1"}
    store.close()


def test_lookups_compare_the_whole_commitment_and_subject(tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    first, second = vault_row(1, "a" * 64), vault_row(2, "b" * 64, subject="bob")
    twin = VaultRow("alice", "default", first.commitment[:18] + "f" * 49, b"\x02" * 32, "twin", "actor.id", "c" * 64)
    assert commitment_key(twin.commitment) == commitment_key(first.commitment)
    write(store, [first, second, twin])
    assert store.vault_get([first.commitment]) == {first.commitment: first}
    assert store.vault_get([twin.commitment, second.commitment]) == {twin.commitment: twin, second.commitment: second}
    assert store.vault_erase("alic") == 0 and store.vault_erase("alice") == 2
    assert store.vault_get([first.commitment, twin.commitment, second.commitment]) == {second.commitment: second}
    store.close()


def test_commitment_key_refuses_what_is_not_a_commitment():
    assert commitment_key("pd:" + "0123456789abcde" + "f" * 49) == 0x0123456789ABCDE
    assert commitment_key("pd:xyz") is None and commitment_key("alice") is None and commitment_key("pd:") is None
    assert subject_key("alice") == subject_key("alice") != subject_key("alicf")
    assert 0 <= subject_key("\udcff surrogate") < 2**60


def test_rows_not_keyed_yet_are_revealed_found_and_erased_like_keyed_ones(tmp_path):
    path = tmp_path / "t.db"
    store = SQLiteStore(path)
    keyed = [vault_row(n, f"{n:02x}" * 32, subject=f"s{n % 2}") for n in range(1, 5)]
    write(store, keyed)
    assert waiting(store) == 4 and settle(store) == 4 and waiting(store) == 0
    tail = [vault_row(n, f"{n:02x}" * 32, subject=f"s{n % 2}") for n in range(5, 9)]
    write(store, tail, size=2)
    assert waiting(store) == 4
    rows = keyed + tail
    assert store.vault_get([r.commitment for r in rows]) == {r.commitment: r for r in rows}
    assert all(store.vault_find(r.token) == [r.commitment] for r in rows)
    assert store.vault_erase("s1") == 4  # rows 1, 3 (keyed) and 5, 7 (not yet)
    assert store.vault_get([r.commitment for r in rows]) == {r.commitment: r for r in rows if r.subject == "s0"}
    assert store.vault_find(rows[0].token) == [] and store.vault_find(rows[4].token) == []
    raw = raw_bytes(path)
    assert b"value-2" in raw and b"value-6" in raw and not any(f"value-{n}".encode() in raw for n in (1, 3, 5, 7))
    with sqlite3.connect(path) as conn:  # no key is left pointing at an erased row
        for key in sqlite_vault.KEYS:
            assert conn.execute(f"SELECT count(*) FROM vault_{key} WHERE rid NOT IN (SELECT rowid FROM vault)"
                                ).fetchone()[0] == 0
    store.close()


def test_the_sealer_settles_the_keys_once_tail_max_rows_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_vault, "TAIL_MAX", 5)
    store = SQLiteStore(tmp_path / "t.db")
    write(store, [vault_row(n, f"{n:02x}" * 32) for n in range(1, 4)])
    assert waiting(store) == 3
    write(store, [vault_row(n, f"{n:02x}" * 32) for n in range(4, 7)], size=2)
    assert waiting(store) == 0
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT count(*) FROM vault_ckey").fetchone()[0] == 6
    rows = [vault_row(n, f"{n:02x}" * 32) for n in range(1, 7)]
    assert store.vault_get([r.commitment for r in rows]) == {r.commitment: r for r in rows}
    store.close()


def test_rows_written_after_the_newest_keyed_ones_were_erased_are_still_found(tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    write(store, [vault_row(1, "01" * 32, subject="keep"), vault_row(2, "02" * 32, subject="gone"),
                  vault_row(3, "03" * 32, subject="gone")])
    assert settle(store) == 3
    assert store.vault_erase("gone") == 2  # the newest rows: SQLite hands their rowids out again
    later = [vault_row(4, "04" * 32, subject="new"), vault_row(5, "05" * 32, subject="new")]
    write(store, later, size=2)
    assert waiting(store) == 2
    assert store.vault_get([r.commitment for r in later]) == {r.commitment: r for r in later}
    assert store.vault_find("05" * 32) == [later[1].commitment]
    assert settle(store) == 2 and store.vault_erase("new") == 2 and store.vault_get([later[0].commitment]) == {}
    store.close()


def test_a_v3_vault_gets_key_tables_and_loses_nothing(tmp_path):
    path = tmp_path / "v3.db"
    store = SQLiteStore(path)
    rows = [vault_row(n, f"{n:02x}" * 32, subject=f"s{n % 2}") for n in range(1, 7)]
    write(store, rows)
    store.close()
    with sqlite3.connect(path) as conn:  # as schema v3 laid it out: three indexes on the table, no key tables
        for table in KEY_TABLES:
            conn.execute(f"DROP TABLE {table}")
        for key in sqlite_vault.KEYS:
            conn.execute(f"CREATE INDEX vault_by_{key} ON vault ({key})")
        conn.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    store = SQLiteStore(path)
    assert layout(path) == (set(), KEY_TABLES) and waiting(store) == 0
    assert store.vault_get([r.commitment for r in rows]) == {r.commitment: r for r in rows}
    assert all(store.vault_find(r.token) == [r.commitment] for r in rows)
    assert store.vault_erase("s0") == 3
    store.close()


def test_the_serve_indexer_settles_the_vault_keys_off_the_sealer(tmp_path):
    import trailseal
    from tests.conftest import make_event, wait_for
    from trailseal.query.indexer import IndexerProcess
    from trailseal.query.sealed import search_trail

    trailseal.init(tmp_path / "d", origin="test.trailseal")
    with trailseal.open(tmp_path / "d") as trail:
        trail.append([make_event(i, actor={"id": f"user-{i}", "type": "user", "ip": f"10.0.0.{i}"})
                      for i in range(1, 40)])
        assert waiting(trail.store) >= 39 * 2  # each actor id and address is a value of its own
        child = IndexerProcess(trail.store.path, interval=0.1)
        child.ensure_running()
        try:
            assert wait_for(lambda: waiting(trail.store) == 0, 30)
        finally:
            child.stop()
        found = search_trail(trail, "actor:user-7 ip:10.0.0.7").events  # by token, revealed: keyed rows
        assert [(e["actor"]["id"], e["actor"]["ip"]) for e in found] == [("user-7", "10.0.0.7")]


def test_a_catch_up_without_server_settles_the_vault_keys_too(tmp_path):
    import trailseal
    from tests.conftest import make_event
    from trailseal.cli_index import catch_up_index

    trailseal.init(tmp_path / "d", origin="test.trailseal")
    with trailseal.open(tmp_path / "d") as trail:
        trail.append([make_event(i, actor={"id": f"user-{i}", "type": "user"}) for i in range(1, 20)])
        assert waiting(trail.store) >= 19
        catch_up_index(trail)  # what `trailseal index`, `query` and `timeline` run first
        assert waiting(trail.store) == 0


def test_an_export_settles_the_vault_keys_before_it_reads_pages(tmp_path):
    import json

    import trailseal
    from tests.conftest import make_event
    from trailseal.query.export import export_to

    trailseal.init(tmp_path / "d", origin="test.trailseal")
    with trailseal.open(tmp_path / "d") as trail:
        trail.append([make_event(i, actor={"id": f"user-{i}", "type": "user"}) for i in range(1, 20)])
        assert waiting(trail.store) >= 19
        export_to(trail, "-category:system", "jsonl", tmp_path / "out.jsonl")
        assert waiting(trail.store) == 0
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    revealed = sorted(line["actor"]["id"] for line in lines if line["actor"]["id"] != "trailseal")  # policy record
    assert revealed == sorted(f"user-{i}" for i in range(1, 20))

"""The store contract, exercised directly and through the single writer (Sealer)."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import make_event
from trailseal.event import from_dict
from trailseal.keys import log_verifier
from trailseal.ledger import Verifier, leaf_hash, merkle, open_note, parse_checkpoint, tile_read_hashes
from trailseal.ledger.verify import verify_log
from trailseal.pipeline import Sealer
from trailseal.store.base import Commit, EntryRow

ORIGIN = "conformance.test"


def sealables(start: int, count: int, **over):
    return [from_dict(make_event(i, **over)) for i in range(start, start + count)]


def row(index: int, id_: str, data: bytes) -> EntryRow:
    return EntryRow(index, id_, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z",
                    "system", "x.y", "success", "a", data)


def test_empty_store_has_nothing(make_store):
    store = make_store()
    assert store.logs() == []
    assert store.tree_size("default") == 0
    assert store.latest_checkpoint("default") is None
    assert list(store.read_entries("default", 0, 10)) == []
    assert store.read_tile("default", 0, 0) is None
    assert store.find_ids("default", ["a", "b"]) == {}


def test_commit_writes_entries_tiles_and_checkpoint(make_store):
    store = make_store()
    store.commit([Commit("l1", [row(0, "a", b"A"), row(1, "b", b"B")], [(0, 0, b"h" * 64)], 2, "note-2\n",
                         "2026-01-01T00:00:00.000000Z")])
    assert [(i.name, i.size, i.checkpoint) for i in store.logs()] == [("l1", 2, "note-2\n")]
    assert list(store.read_entries("l1", 0, 5)) == [(0, b"A"), (1, b"B")]
    assert list(store.read_entries("l1", 1, 2)) == [(1, b"B")]
    assert store.read_tile("l1", 0, 0) == b"h" * 64
    assert store.find_ids("l1", ["b", "zz"]) == {"b": (1, b"B")}
    assert store.checkpoint_at("l1", 2) == "note-2\n"
    assert list(store.checkpoints("l1")) == [(2, "note-2\n")]


def test_a_failed_commit_writes_nothing(make_store):
    store = make_store()
    store.commit([Commit("l1", [row(0, "a", b"A")], [(0, 0, b"h" * 32)], 1, "n1\n", "t")])
    bad = [Commit("l2", [row(0, "x", b"X")], [], 1, "m1\n", "t"),
           Commit("l1", [row(1, "a", b"dup id")], [(0, 0, b"i" * 64)], 2, "n2\n", "t")]
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own integrity error
        store.commit(bad)
    assert store.tree_size("l1") == 1 and store.tree_size("l2") == 0
    assert list(store.read_entries("l2", 0, 9)) == []
    assert store.read_tile("l1", 0, 0) == b"h" * 32
    assert store.latest_checkpoint("l1") == "n1\n"


def test_logs_are_isolated(make_store):
    store = make_store()
    store.commit([Commit("a", [row(0, "same", b"1")], [], 1, "a1\n", "t"),
                  Commit("b", [row(0, "same", b"2")], [], 1, "b1\n", "t")])
    assert store.find_ids("a", ["same"]) == {"same": (0, b"1")}
    assert store.find_ids("b", ["same"]) == {"same": (0, b"2")}


def test_tiles_are_replaced_as_they_grow(make_store):
    store = make_store()
    store.commit([Commit("l", [row(0, "a", b"A")], [(0, 0, b"1" * 32)], 1, "c1\n", "t")])
    store.commit([Commit("l", [row(1, "b", b"B")], [(0, 0, b"1" * 32 + b"2" * 32)], 2, "c2\n", "t")])
    assert store.read_tile("l", 0, 0) == b"1" * 32 + b"2" * 32
    assert [size for size, _ in store.checkpoints("l")] == [1, 2]
    assert list(store.read_tiles("l", 0)) == [(0, b"1" * 32 + b"2" * 32)]


def test_sealer_receipts_proofs_and_checkpoints(make_store, signer):
    store = make_store()
    sealer = Sealer(store, signer).start()
    items = sealables(0, 700)
    receipts = sealer.seal(items[:300]) + sealer.seal(items[300:])
    assert [r.index for r in receipts] == list(range(700))
    assert all(r.leaf_hash == leaf_hash(i.canonical).hex() for r, i in zip(receipts, items, strict=True))
    note = store.latest_checkpoint("default")
    checkpoint = parse_checkpoint(open_note(note, [_verifier(signer)]).text)
    assert checkpoint.origin == f"{ORIGIN}/default" and checkpoint.size == 700
    read = tile_read_hashes(700, lambda level, index, width: store.read_tile("default", level, index)[:width * 32])
    for index in (0, 255, 256, 511, 699):
        proof = merkle.inclusion_proof(index, 700, read)
        merkle.verify_inclusion(bytes.fromhex(receipts[index].leaf_hash), index, 700, proof, checkpoint.root)
    old = parse_checkpoint(open_note(store.checkpoint_at("default", 300), [_verifier(signer)]).text)
    merkle.verify_consistency(300, 700, old.root, checkpoint.root, merkle.consistency_proof(300, 700, read))
    sealer.stop()


def test_resent_ids_return_original_receipts(make_store, signer):
    store = make_store()
    sealer = Sealer(store, signer).start()
    first = sealer.seal(sealables(0, 10))
    again = sealer.seal(sealables(5, 10))  # 5 old, 5 new
    assert again[:5] == first[5:]
    assert [r.index for r in again[5:]] == list(range(10, 15))
    twice = sealer.seal(sealables(100, 1) * 3)  # the same id three times in one batch
    assert twice[0] == twice[1] == twice[2] and twice[0].index == 15
    assert store.tree_size("default") == 16
    sealer.stop()


def test_resent_events_vault_rows_are_written_without_a_new_checkpoint(make_store, signer):
    """A re-sent event seals nothing, but the vault rows it brings are written (the protection that made
    them holds their values for later events, which carry no rows of their own), in a batch of duplicates
    only too: no checkpoint, no entry."""
    import msgspec

    from trailseal.privacy.vault import VaultRow

    store = make_store()
    sealer = Sealer(store, signer).start()
    written: list = []
    sealer.on_written.append(written.extend)
    original = sealables(0, 2)
    sealer.seal(original)
    head = store.latest_checkpoint("default")
    rows = [VaultRow("alice", "default", f"pd:{i:064x}", bytes(32), f"10.0.0.{i}", "actor.ip", f"{i:064x}")
            for i in range(3)]
    resent = [msgspec.structs.replace(original[0], vault=tuple(rows[:2])),
              msgspec.structs.replace(original[1], vault=tuple(rows[1:]))]
    assert [r.index for r in sealer.seal(resent)] == [0, 1]
    assert sorted(store.vault_get([row.commitment for row in rows])) == sorted(row.commitment for row in rows)
    assert sorted(row.commitment for row in written) == sorted(row.commitment for row in rows), "each row once"
    assert store.latest_checkpoint("default") == head and store.tree_size("default") == 2
    sealer.stop()


def test_group_commit_joins_concurrent_submitters(make_store, signer):
    store = make_store()
    sealer = Sealer(store, signer).start()
    results: dict[int, list] = {}

    def send(worker: int) -> None:
        results[worker] = [sealer.seal(sealables(worker * 1000 + b * 10, 10)) for b in range(20)]

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    indices = sorted(r.index for batches in results.values() for batch in batches for r in batch)
    assert indices == list(range(1600))
    assert sealer.stats.commits < 160, "concurrent batches must share commits"
    assert len(list(store.checkpoints("default"))) == sealer.stats.commits
    sealer.stop()


def test_reopen_continues_the_same_tree(make_store, signer):
    store = make_store()
    sealer = Sealer(store, signer).start()
    sealer.seal(sealables(0, 300))
    sealer.stop()
    store.close()
    store = make_store()
    sealer = Sealer(store, signer).start()
    receipts = sealer.seal(sealables(300, 300))
    assert receipts[0].index == 300
    assert sealer.seal(sealables(0, 1))[0].index == 0  # idempotency survives the restart
    sealer.stop()
    report = verify_log(store, "default", [_verifier(signer)])
    assert report.ok, report.summary()
    assert report.entries == 600


def test_events_route_to_their_logs(make_store, signer):
    store = make_store()
    sealer = Sealer(store, signer).start()
    receipts = sealer.seal(sealables(0, 4, log="tenant-a") + sealables(4, 2, log="tenant-b"))
    assert [(r.log, r.index) for r in receipts] == [("tenant-a", 0), ("tenant-a", 1), ("tenant-a", 2),
                                                    ("tenant-a", 3), ("tenant-b", 0), ("tenant-b", 1)]
    assert {i.name: i.size for i in store.logs()} == {"tenant-a": 4, "tenant-b": 2}
    sealer.stop()


def _verifier(signer, log: str = "default") -> Verifier:
    return log_verifier(signer.verifier(), log)

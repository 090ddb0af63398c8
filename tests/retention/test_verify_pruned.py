"""Pruned-aware verification: a pruned entry counts by its recorded leaf hash, which must equal the tile's;
everything else verify_log checks is still checked, and tampering is still found and named."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from tests.conftest import make_event
from trailseal.ledger import verify_proof
from trailseal.retention import find_ids, verify_log_pruned


def utc(*args) -> datetime:
    return datetime(*args, 12, tzinfo=UTC)


@pytest.fixture
def pruned(trail, retention):
    """600 events in 3 commits; at 2026-03-02 data_access is archived; at 2026-07-30 it has expired,
    while authentication (archived 2026-05-01) and admin/config (hot) remain."""
    for start in range(0, 600, 200):
        trail.append([make_event(i) for i in range(start, start + 200)])
    retention.apply(utc(2026, 5, 1))
    retention.apply(utc(2026, 7, 30))
    assert retention.status("default", 1) == "expired" and retention.status("default", 0) == "archived"
    return trail


def db(data_dir) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "trailseal.db", isolation_level=None)


def report(trail, **kwargs):
    return verify_log_pruned(trail.store, "default", [trail.verifier()], **kwargs)


def test_pruned_log_verifies_with_plain_verify(pruned):
    assert report(pruned).ok and report(pruned).entries == 600
    (plain,) = pruned.verify("default")
    assert plain.ok and plain.entries == 600, plain.summary()


def test_trusted_old_checkpoint_still_checked(pruned, retention):
    assert report(pruned, trusted=pruned.checkpoint()).ok
    assert retention.verify("default", trusted=pruned.checkpoint(), deep=True).ok


@pytest.mark.parametrize("tamper, index, message", [
    ("UPDATE pruned SET leaf_hash = zeroblob(32) WHERE idx = 301", 301, "leaf hash"),
    ("DELETE FROM pruned WHERE idx = 301", 301, "missing and was not pruned"),
    ("UPDATE entries SET data = CAST(replace(CAST(data AS TEXT), 'user', 'usex') AS BLOB) WHERE idx = 302",
     302, "does not match leaf hash"),
    ("UPDATE tiles SET data = CAST(zeroblob(32) || substr(data, 33) AS BLOB) WHERE level = 0 AND idx = 1", 256,
     "tile 0/1"),
])
def test_tampering_is_still_found_and_named(pruned, data_dir, tamper, index, message):
    with db(data_dir) as conn:
        conn.execute(tamper)
    result = report(pruned)
    assert not result.ok and result.first_bad_index == index and message in result.problem


def test_a_restored_entry_must_match_its_recorded_leaf(pruned, retention, data_dir):
    assert retention.restore("default", 0, 10) == 2
    assert retention.status("default", 5) == "restored" and report(pruned).ok
    with db(data_dir) as conn:
        conn.execute("UPDATE entries SET data = CAST(replace(CAST(data AS TEXT), 'user', 'usex') AS BLOB) "
                     "WHERE idx = 5")
    result = report(pruned)
    assert not result.ok and result.first_bad_index == 5 and "recorded" in result.problem


def test_deep_verify_checks_the_archive_against_the_recorded_leaves(pruned, retention, data_dir):
    assert retention.verify("default", deep=True).ok
    with db(data_dir) as conn:
        conn.execute("UPDATE pruned SET leaf_hash = zeroblob(32) WHERE idx = 5")
    assert not retention.verify("default").ok


def test_proofs_from_before_pruning_verify_after_it(trail, retention):
    trail.append([make_event(i) for i in range(50)])
    before = {i: (trail.prove(i), trail.entry(i)) for i in range(50)}
    retention.apply(utc(2027, 2, 1))
    assert {retention.status("default", i) for i in range(50)} == {"expired", "hot"}
    for i, (proof, entry) in before.items():
        verify_proof(proof, entry, trail.verifier())
        assert trail.prove(i) == proof  # tiles stay, so the log still proves a pruned entry


def test_pruned_ids_are_still_found_for_idempotency(pruned):
    receipts = {r.id: r for r in pruned.append([make_event(i) for i in (599,)])}
    found = find_ids(pruned.store, "default", ["evt-00000001", "evt-00000000", "evt-00000002", "nope"])
    assert set(found) == {"evt-00000000", "evt-00000001", "evt-00000002"}
    assert pruned.store.find_ids("default", ["evt-00000001"]) == {"evt-00000001": (1, None)}  # pruned, known
    index, leaf = found["evt-00000001"]
    assert index == 1 and leaf.hex() == pruned.store.read_tile("default", 0, 0)[32:64].hex()
    assert receipts["evt-00000599"].index == 599


def test_resending_a_pruned_id_returns_its_original_receipt(pruned):
    """Idempotency survives pruning: the id is still sealed, so nothing new is sealed."""
    size = pruned.store.tree_size("default")
    tile = pruned.store.read_tile("default", 0, 0)
    (receipt,) = pruned.append([make_event(1)])  # entry 1 expired above
    assert receipt.index == 1 and receipt.leaf_hash == tile[32:64].hex()
    assert pruned.store.tree_size("default") == size

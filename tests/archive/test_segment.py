"""Segments verify on their own: decrypt, re-hash, fold with the batch proof into the signed root."""

from __future__ import annotations

import random
import sqlite3

import msgspec
import pytest

from trailseal.archive import segment as seg
from trailseal.archive.crypto import StaticKeys, new_key
from trailseal.ledger import Signer, TreeState, generate, leaf_hash, root_from_leaf_hashes
from trailseal.retention import tile_reader

RETAIN = "2027-01-31T12:00:00.000000Z"


def build(trail, indices, keys, *, log="default", compression=seg.DEFAULT_COMPRESSION):
    """A segment of the given indices of the sealed trail."""
    stored = dict(trail.store.read_entries(log, 0, 2**62))
    rows = [(i, stored[i]) for i in indices]
    return seg.build(log, "auth", rows, checkpoint=trail.checkpoint(log), size=trail.store.tree_size(log),
                     read_tile=tile_reader(trail.store, log), retain_until=RETAIN,
                     created="2026-01-31T12:00:00.000000Z", keys=keys, compression=compression).blob


def reseal(blob, keys, **changes):
    """Open a segment, change its body or manifest, and seal it again (an attacker holding the key)."""
    opened = seg.open_segment(blob, keys)
    body = msgspec.structs.replace(opened.body, **{k: v for k, v in changes.items() if k in seg.Body.__struct_fields__})
    manifest = msgspec.structs.replace(opened.manifest,
                                       **{k: v for k, v in changes.items() if k in seg.Manifest.__struct_fields__})
    return seg.seal(manifest, body, keys)


def test_contiguous_segment_verifies_with_a_logarithmic_proof(sealed, keys):
    blob = build(sealed, range(300, 700), keys)
    report = seg.verify_segment(blob, sealed.verifier(), keys)
    assert report.ok, report.problem
    assert report.entries == 400 and report.proof_hashes <= 2 * 10
    m = seg.read_manifest(blob)
    assert (m.log, m.policy, m.start, m.end, m.count, m.size, m.retain_until) == (
        "default", "auth", 300, 700, 400, 1000, RETAIN)
    assert m.compression == seg.DEFAULT_COMPRESSION == "zstd"  # zstandard is a dependency
    assert m.cipher == "AES-256-GCM" and m.checkpoint == sealed.checkpoint()
    assert "OK — 400 entries" in report.summary()


def test_sparse_segment_verifies(sealed, keys):
    picked = sorted(random.Random(7).sample(range(1000), 60))
    blob = build(sealed, picked, keys)
    opened = seg.open_segment(blob, keys)
    assert opened.body.indices == picked
    assert seg.verify_segment(blob, sealed.verifier(), keys).ok


def test_gzip_segments_verify_too(sealed, keys):
    blob = build(sealed, range(0, 1000, 3), keys, compression="gzip")
    assert seg.read_manifest(blob).compression == "gzip"
    assert seg.verify_segment(blob, sealed.verifier(), keys).ok


def tree_reader(size: int):
    """(leaves, root, read_tile) of a tree of size synthetic leaves."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree, tiles = TreeState.empty(), {}
    tree.append(leaves)
    tiles.update({(lvl, idx): data for lvl, idx, data in tree.take_dirty_tiles()})
    return leaves, tree.root(), lambda level, index, width: tiles[(level, index)][:width * 32]


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257, 1000, 65_537])
def test_batch_proof_folds_to_the_root(size):
    leaves, root, read_tile = tree_reader(size)
    assert root == root_from_leaf_hashes(leaves)
    hashes = seg.TileHashes(size, read_tile, cache=4)
    rng = random.Random(size)
    for _ in range(20):
        k = rng.randint(1, min(size, 40))
        picked = sorted(rng.sample(range(size), k)) if rng.random() < 0.5 else list(
            range(start := rng.randrange(size), min(size, start + k)))
        proof = [hashes.range_hash(lo, hi) for lo, hi in seg.gaps(picked, size)]
        assert seg.fold_root(picked, [leaves[i] for i in picked], proof, size) == root
        if proof:
            with pytest.raises(seg.SegmentError, match="fewer hashes"):
                seg.fold_root(picked, [leaves[i] for i in picked], proof[:-1], size)
        with pytest.raises(seg.SegmentError, match="more hashes"):
            seg.fold_root(picked, [leaves[i] for i in picked], [*proof, bytes(32)], size)


@pytest.mark.parametrize("change, message", [
    ("entry", "do not lead to the signed root"),
    ("index", "do not lead to the signed root"),
    ("proof", "do not lead to the signed root"),
    ("count", "manifest counts"),
    ("range", "manifest says"),
    ("order", "strictly increasing"),
])
def test_tampering_inside_the_encryption_is_caught(sealed, keys, change, message):
    blob = build(sealed, list(range(100, 200, 2)), keys)
    body = seg.open_segment(blob, keys).body
    changes = {
        "entry": {"entries": [body.entries[0].replace(b"user", b"usex", 1), *body.entries[1:]]},
        "index": {"indices": [body.indices[0], body.indices[1] + 1, *body.indices[2:]]},
        "proof": {"proof": [bytes(32), *body.proof[1:]]},
        "count": {"count": 49},
        "range": {"start": 99},
        "order": {"indices": [*body.indices[:10], body.indices[11], body.indices[10], *body.indices[12:]]},
    }[change]
    report = seg.verify_segment(reseal(blob, keys, **changes), sealed.verifier(), keys)
    assert not report.ok and message in report.problem


def test_edited_cleartext_manifest_does_not_decrypt(sealed, keys):
    blob = build(sealed, range(10), keys)
    edited = blob.replace(RETAIN.encode(), b"2026-02-01T12:00:00.000000Z")
    assert seg.read_manifest(edited).retain_until.startswith("2026-02-01")
    report = seg.verify_segment(edited, sealed.verifier(), keys)
    assert not report.ok and "altered" in report.problem


def test_checkpoint_must_be_the_logs_and_signed_by_its_key(sealed, keys):
    blob = build(sealed, range(10), keys)
    stranger = Signer.from_skey(generate("test.trailseal/default")[0])
    assert "checkpoint does not verify" in seg.verify_segment(blob, stranger.verifier(), keys).problem
    other_log = reseal(blob, keys, log="other")
    assert "not log other" in seg.verify_segment(other_log, sealed.verifier(), keys).problem


def test_malformed_blobs(sealed, keys):
    blob = build(sealed, range(10), keys)
    for bad, message in ((b"NOTASEG!" + blob[8:], "bad magic"), (blob[:20], "truncated"),
                         (blob[:-1], "altered")):
        report = seg.verify_segment(bad, sealed.verifier(), keys)
        assert not report.ok and message in report.problem
    assert "not available" in seg.verify_segment(blob, sealed.verifier(), StaticKeys({"k9": new_key()})).problem


def test_a_tampered_store_entry_is_never_archived(sealed, keys, data_dir):
    with sqlite3.connect(data_dir / "trailseal.db", isolation_level=None) as conn:
        conn.execute("UPDATE entries SET data = CAST(replace(CAST(data AS TEXT), 'user', 'usex') AS BLOB) WHERE idx=5")
    with pytest.raises(seg.SegmentError, match="entry 5 does not hash to its tile leaf"):
        build(sealed, range(10), keys)


def test_rewrap_changes_only_the_key_block(sealed, keys):
    blob = build(sealed, range(50), keys)
    rotated = StaticKeys({"k2": new_key(), "k1": keys._keys["k1"]})
    again = seg.rewrap_segment(blob, rotated)
    before, after = seg.split(blob), seg.split(again)
    assert after.ciphertext == before.ciphertext and after.head == before.head
    assert (before.key_block.kek, after.key_block.kek) == ("k1", "k2") and seg.key_id(again) == "k2"
    assert seg.verify_segment(again, sealed.verifier(), StaticKeys({"k2": rotated._keys["k2"]})).ok


def test_no_plaintext_in_a_segment(sealed, keys):
    blob = build(sealed, range(1000), keys)
    for needle in (b"evt-00000", b"user.login", b"/api/v1/orders", b"10.1.0.7", b"orders_"):
        assert needle not in blob

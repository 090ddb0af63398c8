"""Proof generation against the RFC 9162 definitions, verification failures, and TreeState."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.ledger import (
    EMPTY_ROOT,
    ProofError,
    TreeState,
    consistency_proof,
    inclusion_proof,
    root_from_leaf_hashes,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

from . import reference
from .reference import leaf_pool, list_read_hashes


def test_generated_proofs_equal_the_rfc_definitions_up_to_64_leaves():
    leaves = leaf_pool(64)
    read_hashes = list_read_hashes(leaves)
    for size in range(1, 65):
        tree = leaves[:size]
        assert root_from_leaf_hashes(tree) == reference.mth(tree)
        for index in range(size):
            assert inclusion_proof(index, size, read_hashes) == reference.path(index, tree)
        for old in range(1, size + 1):
            assert consistency_proof(old, size, read_hashes) == reference.consistency(old, tree)


def test_empty_tree_root():
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == TreeState.empty().root()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda rh: inclusion_proof(5, 5, rh), "not in a tree"),
        (lambda rh: inclusion_proof(-1, 5, rh), "not in a tree"),
        (lambda rh: consistency_proof(0, 5, rh), "meaningless"),
        (lambda rh: consistency_proof(6, 5, rh), "no consistency proof"),
    ],
)
def test_proof_generation_rejects_impossible_requests(call, message):
    with pytest.raises(ValueError, match=message):
        call(list_read_hashes(leaf_pool(5)))


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    """Return the proof with one bit of hash i flipped."""
    return proof[:i] + [bytes([proof[i][0] ^ 1]) + proof[i][1:]] + proof[i + 1 :]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(2, 3000), data=st.data())
def test_tampered_proofs_are_rejected(size, data):
    leaves = leaf_pool(size)
    read_hashes = list_read_hashes(leaves)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size - 1))
    root, old_root = root_from_leaf_hashes(leaves), root_from_leaf_hashes(leaves[:old])
    proof = inclusion_proof(index, size, read_hashes)
    verify_inclusion(leaves[index], index, size, proof, root)
    cproof = consistency_proof(old, size, read_hashes)
    verify_consistency(old, size, old_root, root, cproof)

    other = (index + 1) % size
    bad_inclusion = [
        (leaves[index], other, size, proof, root),
        (leaves[other], index, size, proof, root),
        (leaves[index], index, size, proof + [root], root),
        (leaves[index], index, size, proof[:-1], root),
        (leaves[index], index, size, proof, old_root),
    ] + [(leaves[index], index, size, _flip(proof, i), root) for i in range(len(proof))]
    for args in bad_inclusion:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    bad_consistency = [
        (old, size, root, old_root, cproof),
        (old, size, _flip([old_root], 0)[0], root, cproof),
        (old + 1, size, old_root, root, cproof),
        (old, size, old_root, root, cproof[:-1]),
        (old, size, old_root, root, cproof + [root]),
    ] + [(old, size, old_root, root, _flip(cproof, i)) for i in range(len(cproof))]
    for args in bad_consistency:
        with pytest.raises(ProofError):
            verify_consistency(*args)


def test_verify_messages_name_the_problem():
    leaves = leaf_pool(5)
    root = root_from_leaf_hashes(leaves)
    with pytest.raises(ProofError, match="want 3"):
        verify_inclusion(leaves[0], 0, 5, [], root)
    with pytest.raises(ProofError, match="leaf hash has 3 bytes"):
        verify_inclusion(b"abc", 0, 5, [], root)
    with pytest.raises(ProofError, match="does not lead to the root"):
        verify_inclusion(leaves[1], 0, 5, inclusion_proof(0, 5, list_read_hashes(leaves)), root)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 5, EMPTY_ROOT, root, [])
    cproof = consistency_proof(3, 5, list_read_hashes(leaves))
    with pytest.raises(ProofError, match="old root of size 3"):
        verify_consistency(3, 5, root_from_leaf_hashes(leaves[:2]), root, cproof)


def test_proofs_read_only_log_n_subtrees():
    leaves = leaf_pool(5000)
    inner = list_read_hashes(leaves)
    asked = []

    def read_hashes(level, start, end):
        asked.append(end - start)
        return inner(level, start, end)

    for size, index, old in [(4999, 17, 3333), (4096, 4095, 1), (3001, 1500, 2999)]:
        asked.clear()
        inclusion_proof(index, size, read_hashes)
        assert sum(asked) <= 2 * size.bit_length()
        asked.clear()
        consistency_proof(old, size, read_hashes)
        assert sum(asked) <= 2 * size.bit_length() + 1


def _grow(leaves: list[bytes], cuts: list[int]) -> TreeState:
    """Append leaves to an empty TreeState in batches split at the cut points."""
    state = TreeState.empty()
    bounds = [0, *sorted(cuts), len(leaves)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        state.append(leaves[a:b])
    return state


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 70_000), data=st.data())
def test_tree_state_root_matches_mth_for_any_batches(size, data):
    leaves = leaf_pool(size)
    cuts = data.draw(st.lists(st.integers(0, size), max_size=8))
    state = _grow(leaves, cuts)
    assert state.size == size
    assert state.root() == root_from_leaf_hashes(leaves)


@settings(max_examples=25, deadline=None)
@given(
    size=st.one_of(st.integers(0, 1500), st.integers(65_000, 66_500)),
    more=st.integers(0, 1500),
    data=st.data(),
)
def test_restore_continues_identically(size, more, data):
    leaves = leaf_pool(size + more)
    cuts = data.draw(st.lists(st.integers(0, size), max_size=4))
    original = _grow(leaves[:size], cuts)
    original.take_dirty_tiles()
    restored = TreeState.restore(size, original.edge_tiles())
    assert restored.root() == original.root()
    assert restored.edge_tiles() == original.edge_tiles()
    original.append(leaves[size:])
    restored.append(leaves[size:])
    assert restored.size == original.size == size + more
    assert restored.root() == original.root() == root_from_leaf_hashes(leaves)
    assert restored.take_dirty_tiles() == original.take_dirty_tiles()


def test_restore_rejects_wrong_edge_tiles():
    state = _grow(leaf_pool(70_000), [1000])
    edge = state.edge_tiles()
    assert sorted(edge) == [0, 1, 2]
    assert [len(edge[level]) // 32 for level in range(3)] == [112, 17, 1]
    with pytest.raises(ValueError, match="levels"):
        TreeState.restore(70_000, {0: edge[0], 1: edge[1]})
    with pytest.raises(ValueError, match="bytes"):
        TreeState.restore(70_000, {**edge, 0: edge[0][:-32]})
    with pytest.raises(ValueError, match="levels"):
        TreeState.restore(70_000, {**edge, 3: b""})


def test_restore_with_full_rightmost_tiles():
    leaves = leaf_pool(65_536 + 300)
    state = _grow(leaves[:65_536], [])
    edge = state.edge_tiles()
    assert [len(edge[level]) for level in sorted(edge)] == [8192, 8192, 32]
    restored = TreeState.restore(65_536, edge)
    restored.append(leaves[65_536:])
    assert restored.root() == root_from_leaf_hashes(leaves)


def test_append_rejects_bad_hashes_and_keeps_state():
    state = _grow(leaf_pool(10), [])
    root = state.root()
    for bad in ([b"short"], [leaf_pool(1)[0] + b"x"], ["a" * 32]):
        with pytest.raises(ValueError, match="32 bytes"):
            state.append(leaf_pool(3) + bad)
    assert (state.size, state.root()) == (10, root)


def test_dirty_tiles_are_exactly_the_changed_tiles():
    state = TreeState.empty()
    leaves = leaf_pool(600)
    state.append(leaves[:100])
    assert [(lv, i, len(d) // 32) for lv, i, d in state.take_dirty_tiles()] == [(0, 0, 100)]
    assert state.take_dirty_tiles() == []
    state.append(leaves[100:600])
    tiles = state.take_dirty_tiles()
    assert [(lv, i, len(d) // 32) for lv, i, d in tiles] == [(0, 0, 256), (0, 1, 256), (0, 2, 88), (1, 0, 2)]
    assert tiles[0][2] == b"".join(leaves[:256])
    assert tiles[3][2] == b"".join(list_read_hashes(leaves)(8, 0, 2))


def test_subtree_hash_reads_one_hash():
    leaves = leaf_pool(8)
    assert subtree_hash(2, 1, list_read_hashes(leaves)) == root_from_leaf_hashes(leaves[4:8])


def test_append_rate():
    leaves = leaf_pool(200_000)
    state = TreeState.empty()
    start = time.perf_counter()
    for i in range(0, len(leaves), 1000):
        state.append(leaves[i : i + 1000])
        state.take_dirty_tiles()
        state.root()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5, f"200k appends took {elapsed:.2f} s"

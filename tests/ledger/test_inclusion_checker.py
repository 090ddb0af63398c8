"""InclusionChecker (many proofs against one tree head, sharing verified paths) passes and fails exactly
the proofs verify_inclusion passes and fails, with the same errors, in any order and after tampering."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.ledger import InclusionChecker, ProofError, root_from_leaf_hashes, verify_inclusion

from . import reference
from .reference import leaf_pool

LEAVES = leaf_pool(70)


def outcome(check, leaf: bytes, index: int, proof: list[bytes]) -> str:
    try:
        check(leaf, index, proof)
    except ProofError as exc:
        return f"fails: {exc}"
    return "passes"


# (index, what to do with its proof): keep it, flip a byte of hash k, drop the last hash, swap two hashes,
# use the neighbour's leaf, or claim the neighbour's index
edits = st.sampled_from(["keep", "flip", "drop", "swap", "other leaf", "other index"])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 70), st.lists(st.tuples(st.integers(0, 69), edits, st.integers(0, 20)), max_size=40),
       st.booleans(), st.sampled_from([1, 3, 1 << 20]), st.sampled_from([70, 1, 2, 3]))
def test_the_checker_agrees_with_verify_inclusion(size, proofs, wrong_root, limit, distinct):
    tree = [LEAVES[i % distinct] for i in range(size)]  # few distinct leaves: equal subtrees at other places
    root = root_from_leaf_hashes(tree)
    if wrong_root:
        root = bytes([root[0] ^ 1]) + root[1:]
    checker = InclusionChecker(size, root, limit)  # a small limit: the memory is emptied often
    for index, edit, k in proofs:
        index %= size
        leaf, proof = tree[index], list(reference.path(index, tree))
        if edit == "flip" and proof:
            proof[k % len(proof)] = bytes([proof[k % len(proof)][0] ^ 1]) + proof[k % len(proof)][1:]
        elif edit == "drop" and proof:
            proof.pop()
        elif edit == "swap" and len(proof) > 1:
            proof[0], proof[-1] = proof[-1], proof[0]
        elif edit == "other leaf":
            leaf = tree[(index + 1) % size]
        elif edit == "other index":
            index = (index + 1) % size
        want = outcome(lambda leaf, index, proof: verify_inclusion(leaf, index, size, proof, root),
                       leaf, index, proof)
        assert outcome(checker.verify, leaf, index, proof) == want


def test_a_proof_that_reuses_a_verified_path_with_a_changed_tail_fails():
    tree = LEAVES[:64]
    checker = InclusionChecker(64, root_from_leaf_hashes(tree))
    checker.verify(tree[0], 0, reference.path(0, tree))
    proof = reference.path(1, tree)  # reaches the node leaves 0 and 1 share, then goes up as proof 0 did
    proof[-1] = bytes(32)
    with pytest.raises(ProofError, match="does not lead to the root"):
        checker.verify(tree[1], 1, proof)
    checker.verify(tree[1], 1, reference.path(1, tree))

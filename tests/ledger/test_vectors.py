"""Every transparency-dev proof vector, and the reference tree of sizes 0 to 8, byte for byte."""

import hashlib
import json

import pytest

from trailseal.ledger import (
    EMPTY_ROOT,
    ProofError,
    TreeState,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

from .reference import list_read_hashes
from .vectors import TD_DIR, b64, b64_list, load_json, vector_files

INCLUSION = vector_files("inclusion")
CONSISTENCY = vector_files("consistency")


def _id(path) -> str:
    """Name a vector test by its path under testdata/."""
    return str(path.relative_to(TD_DIR))


@pytest.fixture(scope="module")
def reference(merkle_dir):
    """The reference tree: leaf inputs, roots by size, node hashes by level."""
    return json.loads((merkle_dir / "merkle-reference-tree.json").read_text())


@pytest.fixture(scope="module")
def leaf_hashes(reference):
    """Leaf hashes of the 8 reference entries."""
    return [leaf_hash(bytes.fromhex(h)) for h in reference["leaf_inputs_hex"]]


def test_all_196_vector_files_are_present(merkle_dir):
    assert (len(INCLUSION), len(CONSISTENCY)) == (98, 98)


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path, merkle_dir):
    v = load_json(path)
    args = (b64(v["leafHash"]), v["leafIdx"], v["treeSize"], b64_list(v["proof"]), b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        assert verify_inclusion(*args) is None


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path, merkle_dir):
    v = load_json(path)
    args = (v["size1"], v["size2"], b64(v["root1"]), b64(v["root2"]), b64_list(v["proof"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        assert verify_consistency(*args) is None


def test_hasher_vectors(reference):
    want = {v["desc"]: bytes.fromhex(v["want"]) for v in reference["hasher_vectors"]}
    assert EMPTY_ROOT == want["empty tree"]
    assert leaf_hash(b"") == want["leaf hash of empty leaf"]
    assert leaf_hash(b"L123456") == want["leaf hash of 'L123456'"]
    assert node_hash(b"N123", b"N456") == want["HashChildren('N123','N456') (raw bytes, not real hashes)"]


def test_reference_roots(reference, leaf_hashes):
    want = [bytes.fromhex(h) for h in reference["root_by_size_hex"]]
    state = TreeState.empty()
    grown = [state.root()]
    for h in leaf_hashes:
        state.append([h])
        grown.append(state.root())
    assert [root_from_leaf_hashes(leaf_hashes[:n]) for n in range(9)] == want
    assert grown == want


def test_reference_node_hashes(reference, leaf_hashes):
    read_hashes = list_read_hashes(leaf_hashes)
    for level, hashes in enumerate(reference["node_hashes_by_level_hex"]):
        want = [bytes.fromhex(h) for h in hashes]
        assert read_hashes(level, 0, len(want)) == want
        assert [subtree_hash(level, i, read_hashes) for i in range(len(want))] == want


def _happy_paths(kind: str) -> list:
    """Return the happy-path vectors of one kind, read at collection time."""
    return [load_json(p) for p in vector_files(kind) if p.name == "happy-path.json"]


@pytest.mark.parametrize("v", _happy_paths("inclusion"), ids=lambda v: f"{v['leafIdx']}-in-{v['treeSize']}")
def test_generated_inclusion_proof_equals_reference(v, leaf_hashes):
    tree = leaf_hashes[: v["treeSize"]]
    proof = inclusion_proof(v["leafIdx"], v["treeSize"], list_read_hashes(tree))
    assert proof == b64_list(v["proof"])
    assert root_from_leaf_hashes(tree) == b64(v["root"])
    assert leaf_hashes[v["leafIdx"]] == b64(v["leafHash"])


@pytest.mark.parametrize("v", _happy_paths("consistency"), ids=lambda v: f"{v['size1']}-to-{v['size2']}")
def test_generated_consistency_proof_equals_reference(v, leaf_hashes):
    tree = leaf_hashes[: v["size2"]]
    proof = consistency_proof(v["size1"], v["size2"], list_read_hashes(tree))
    assert proof == b64_list(v["proof"])
    assert root_from_leaf_hashes(tree[: v["size1"]]) == b64(v["root1"])
    assert root_from_leaf_hashes(tree) == b64(v["root2"])


def test_happy_paths_cover_the_known_cases():
    inclusion = {(v["leafIdx"], v["treeSize"]) for v in _happy_paths("inclusion")}
    consistency = {(v["size1"], v["size2"]) for v in _happy_paths("consistency")}
    assert inclusion == {(0, 1), (0, 8), (5, 8), (2, 3), (1, 5)}
    assert consistency == {(1, 1), (1, 8), (6, 8), (2, 5), (6, 7)}


def test_every_proof_in_the_reference_tree_verifies(reference, leaf_hashes):
    roots = [bytes.fromhex(h) for h in reference["root_by_size_hex"]]
    read_hashes = list_read_hashes(leaf_hashes)
    for size in range(1, 9):
        for index in range(size):
            proof = inclusion_proof(index, size, read_hashes)
            verify_inclusion(leaf_hashes[index], index, size, proof, roots[size])
            with pytest.raises(ProofError):
                verify_inclusion(hashlib.sha256(b"other").digest(), index, size, proof, roots[size])
        for old in range(1, size + 1):
            verify_consistency(old, size, roots[old], roots[size], consistency_proof(old, size, read_hashes))

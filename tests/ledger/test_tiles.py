"""Tile paths, entry bundles, and proofs served from the tiles TreeState writes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.ledger import (
    TileError,
    TreeState,
    consistency_proof,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    inclusion_proof,
    parse_tile_path,
    root_from_leaf_hashes,
    tile_path,
    tile_read_hashes,
    tiles_for_size,
    verify_consistency,
    verify_inclusion,
)

from .reference import leaf_pool, list_read_hashes


@pytest.mark.parametrize(
    ("path", "parsed"),
    [
        ("tile/0/x001/x234/067.p/8", (0, 1234067, 8)),
        ("tile/0/x001/x234/067", (0, 1234067, 256)),
        ("tile/entries/x001/234.p/3", ("entries", 1234, 3)),
        ("tile/entries/000", ("entries", 0, 256)),
        ("tile/1/000.p/1", (1, 0, 1)),
        ("tile/63/999.p/255", (63, 999, 255)),
        ("tile/2/x001/000", (2, 1000, 256)),
        ("tile/0/x123/x456/789", (0, 123456789, 256)),
    ],
)
def test_tile_paths(path, parsed):
    assert parse_tile_path(path) == parsed
    level, index, width = parsed
    assert (entries_path(index, width) if level == "entries" else tile_path(level, index, width)) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile/0/000/",
        "/tile/0/000",
        "tile/0/0",
        "tile/0/01",
        "tile/0/1234",
        "tile/0/x001",
        "tile/0/x000/001",
        "tile/0/x1234/000",
        "tile/0/001/002",
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/data/000",
        "tile/0/000.p/0",
        "tile/0/000.p/08",
        "tile/0/000.p/256",
        "tile/0/000.p/300",
        "tile/0/000.p/",
        "tile/0/000.P/5",
        "tile/0/000.p/5/6",
        "tile/entries/000.p/256",
        "tile/entries/x000/000",
        "tile/0/\u0660\u0660\u0660",
        "tile/\u0661/000",
        "tile/0/000\n",
        "tiles/0/000",
        "tile/8/000.p/1 ",
        "tile/0/" + "x123/" * 2000 + "000",
    ],
)
def test_parse_tile_path_rejects_junk(path):
    with pytest.raises(TileError):
        parse_tile_path(path)


@pytest.mark.parametrize(
    "call",
    [
        lambda: tile_path(64, 0),
        lambda: tile_path(0, -1),
        lambda: tile_path(0, 0, 0),
        lambda: entries_path(0, 257),
    ],
)
def test_tile_path_rejects_bad_coordinates(call):
    with pytest.raises(TileError):
        call()


@given(
    level=st.one_of(st.just("entries"), st.integers(0, 63)),
    index=st.integers(0, 10**15),
    width=st.integers(1, 256),
)
def test_tile_path_round_trip(level, index, width):
    path = entries_path(index, width) if level == "entries" else tile_path(level, index, width)
    assert parse_tile_path(path) == (level, index, width)
    assert path.endswith(f".p/{width}") == (width < 256)


@given(st.lists(st.binary(max_size=300), max_size=256))
def test_entry_bundle_round_trip(entries):
    data = encode_entry_bundle(entries)
    assert len(data) == sum(2 + len(e) for e in entries)
    assert decode_entry_bundle(data) == entries


def test_entry_bundle_format():
    assert encode_entry_bundle([b"ab", b"", b"\x00" * 256]) == b"\x00\x02ab\x00\x00\x01\x00" + b"\x00" * 256
    assert decode_entry_bundle(b"") == []
    assert decode_entry_bundle(b"\xff\xff" + b"x" * 0xFFFF) == [b"x" * 0xFFFF]


@pytest.mark.parametrize(
    "data", [b"\x00", b"\x00\x05abc", b"\x00\x01a\x00", b"\x00\x00" * 257, b"\x01\x00" + b"x" * 255]
)
def test_entry_bundle_rejects_truncated_or_overlong(data):
    with pytest.raises(TileError):
        decode_entry_bundle(data)


def test_entry_bundle_rejects_entries_over_64k():
    with pytest.raises(TileError, match="65536 bytes"):
        encode_entry_bundle([b"x" * 65536])


def test_tiles_for_size_follows_the_spec_examples():
    assert tiles_for_size(0) == []
    assert tiles_for_size(1) == [(0, 0, 1)]
    assert tiles_for_size(256) == [(0, 0, 256), (1, 0, 1)]
    tiles = tiles_for_size(70_000)
    assert sum(1 for t in tiles if t[0] == 0 and t[2] == 256) == 273
    assert [t for t in tiles if t[2] < 256] == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert [t for t in tiles if t[0] > 0 and t[2] == 256] == [(1, 0, 256)]


def _store_from_batches(leaves, cuts) -> dict:
    """Append leaves in batches, keeping every dirty tile as a store would (later writes win)."""
    state, store = TreeState.empty(), {}
    bounds = [0, *sorted(cuts), len(leaves)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        state.append(leaves[a:b])
        for level, index, data in state.take_dirty_tiles():
            store[(level, index)] = data
    return store


def test_written_tiles_hold_the_tree_hashes():
    leaves = leaf_pool(70_000)
    store = _store_from_batches(leaves, [1, 255, 256, 257, 65_535, 65_536, 69_999])
    expected = tiles_for_size(70_000)
    assert sorted(store) == [(level, index) for level, index, _ in expected]
    read_hashes = list_read_hashes(leaves)
    for level, index, width in expected:
        want = read_hashes(8 * level, index * 256, index * 256 + width)
        assert store[(level, index)] == b"".join(want), (level, index)


@settings(max_examples=30, deadline=None)
@given(size=st.one_of(st.integers(1, 1100), st.integers(65_530, 66_100)), data=st.data())
def test_proofs_from_written_tiles_verify(size, data):
    leaves = leaf_pool(size)
    store = _store_from_batches(leaves, data.draw(st.lists(st.integers(0, size), max_size=5)))
    tree_size = data.draw(st.integers(1, size))
    index = data.draw(st.integers(0, tree_size - 1))
    old = data.draw(st.integers(1, tree_size))
    tiles = set(tiles_for_size(tree_size))
    reads = []

    def read_tile(level, tile_index, width):
        assert (level, tile_index, width) in tiles, "read a tile the tree does not have"
        reads.append((level, tile_index))
        return store[(level, tile_index)][: width * 32]

    read_hashes = tile_read_hashes(tree_size, read_tile)
    root = root_from_leaf_hashes(leaves[:tree_size])
    proof = inclusion_proof(index, tree_size, read_hashes)
    verify_inclusion(leaves[index], index, tree_size, proof, root)
    cproof = consistency_proof(old, tree_size, read_hashes)
    verify_consistency(old, tree_size, root_from_leaf_hashes(leaves[:old]), root, cproof)
    assert len(reads) == len(set(reads)) <= 4 * len({level for level, _, _ in tiles})
    if tree_size <= 1100:
        direct = list_read_hashes(leaves[:tree_size])
        assert proof == inclusion_proof(index, tree_size, direct)
        assert cproof == consistency_proof(old, tree_size, direct)


def test_tile_read_hashes_rejects_bad_reads():
    store = _store_from_batches(leaf_pool(300), [])
    read_hashes = tile_read_hashes(290, lambda level, index, width: store[(level, index)])
    assert len(read_hashes(0, 0, 256)) == 256
    with pytest.raises(TileError, match="has 1408 bytes, want 1088"):
        read_hashes(0, 256, 257)  # the store returns its 44-hash tile where the tree of 290 has 34
    with pytest.raises(ValueError, match="not in a tree"):
        read_hashes(3, 36, 37)
    with pytest.raises(ValueError, match="not in a tree"):
        read_hashes(0, 5, 4)

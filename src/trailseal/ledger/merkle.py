"""RFC 9162 Merkle tree: hashing, proofs over perfect-subtree hashes, verification, and the writer's state.

A perfect subtree at level L and index i covers leaves [i*2**L, (i+1)*2**L). Proofs are built from
such subtrees through a ``read_hashes(level, start, end)`` callable (see tiles.tile_read_hashes), so
a proof needs O(log n) hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence

from trailseal.ledger.errors import ProofError

HASH_SIZE = 32
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
TILE_BYTES = TILE_WIDTH * HASH_SIZE
EMPTY_ROOT = hashlib.sha256(b"").digest()

ReadHashes = Callable[[int, int, int], list[bytes]]

_sha256 = hashlib.sha256
_join = b"".join
_NODE = b"\x01"
_IS_HASH_SIZE = HASH_SIZE.__eq__


def leaf_hash(entry: bytes) -> bytes:
    """Return the hash of a log entry: SHA-256(0x00 || entry)."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(_join((_NODE, left, right))).digest()


def parent_hashes(hashes: Sequence[bytes]) -> list[bytes]:
    """Return the node hashes of consecutive pairs of hashes; an odd last hash is left out."""
    return [_sha256(_join((_NODE, a, b))).digest() for a, b in zip(hashes[0::2], hashes[1::2], strict=False)]


def split_hashes(data: bytes) -> list[bytes]:
    """Split concatenated 32-byte hashes into a list."""
    if len(data) % HASH_SIZE:
        raise ValueError(f"hash data length {len(data)} is not a multiple of {HASH_SIZE}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def check_hashes(hashes: Sequence[bytes]) -> None:
    """Raise ValueError unless every hash is a bytes object of 32 bytes."""
    if any(type(h) is not bytes or len(h) != HASH_SIZE for h in hashes):
        raise ValueError(f"every hash must be a bytes object of {HASH_SIZE} bytes")


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash (MTH) of a list of leaf hashes."""
    level = list(hashes)
    check_hashes(level)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        parents = parent_hashes(level)
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


def _split_point(n: int) -> int:
    """Return the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_subtrees(lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """Yield (level, index) of the largest perfect subtrees covering leaves [lo, hi), left to right."""
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)
        yield level, lo >> level
        lo += 1 << level


def subtree_hash(level: int, index: int, read_hashes: ReadHashes) -> bytes:
    """Return the hash of the perfect subtree at (level, index)."""
    return read_hashes(level, index, index + 1)[0]


def range_hash(lo: int, hi: int, read_hashes: ReadHashes) -> bytes:
    """Return MTH(D[lo:hi]) for a range that is a subtree of the RFC 9162 tree."""
    hashes = [subtree_hash(level, index, read_hashes) for level, index in _perfect_subtrees(lo, hi)]
    if not hashes:
        raise ValueError(f"empty range [{lo}, {hi})")
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


def inclusion_proof(index: int, size: int, read_hashes: ReadHashes) -> list[bytes]:
    """Return the RFC 9162 inclusion proof (PATH) of leaf index in the tree of size leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    siblings = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split_point(hi - lo)
        if index < mid:
            siblings.append((mid, hi))
            hi = mid
        else:
            siblings.append((lo, mid))
            lo = mid
    return [range_hash(a, b, read_hashes) for a, b in reversed(siblings)]


def consistency_proof(old: int, new: int, read_hashes: ReadHashes) -> list[bytes]:
    """Return the RFC 9162 consistency proof from the tree of old leaves to the tree of new leaves."""
    if old == 0:
        raise ValueError("a consistency proof from the empty tree is meaningless; send an empty proof")
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    siblings = []
    lo, hi, m, whole = 0, new, old, True
    while m < hi - lo:
        k = _split_point(hi - lo)
        if m <= k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    ranges = ([] if whole else [(lo, hi)]) + siblings[::-1]
    return [range_hash(a, b, read_hashes) for a, b in ranges]


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    """Raise ProofError unless every proof hash is 32 bytes."""
    if all(map(_IS_HASH_SIZE, map(len, proof))):
        return
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"proof hash {i} has {len(h)} bytes, want {HASH_SIZE}")


def _check_hash(h: bytes, what: str) -> None:
    """Raise ProofError unless h is 32 bytes."""
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} has {len(h)} bytes, want {HASH_SIZE}")


def _inclusion_proof_size(index: int, size: int) -> int:
    """Return the length of the inclusion proof of index in a tree of size leaves."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _check_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless index is in the tree and the hashes and the proof's length are right."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root")
    _check_proof_hashes(proof)
    want = _inclusion_proof_size(index, size)
    if len(proof) != want:
        raise ProofError(
            f"inclusion proof has {len(proof)} hashes, want {want} for index {index} in size {size}"
        )


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check an inclusion proof as RFC 9162 section 2.1.3.2; raise ProofError if it fails."""
    _check_inclusion_proof(leaf_hash, index, size, proof, root)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof is longer than the path of index {index} in size {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise ProofError(f"inclusion proof for index {index} does not lead to the root of size {size}")


class InclusionChecker:
    """verify_inclusion for many proofs against one tree head, sharing the work of the paths it verified.

    The fold's state after a step (node position and hash) and the proof hashes still to come decide
    how it ends; a proof that reaches a state a verified proof went through, with the same hashes to
    come, ends as that one did, so it passes there. A proof passes exactly when verify_inclusion passes
    it, with the same errors. At most ``limit`` states are remembered (about 200 bytes each).
    """

    def __init__(self, size: int, root: bytes, limit: int = 1 << 20):
        self.size, self.root, self.limit = size, root, limit
        self._verified: dict[bytes, tuple[int, int, tuple[bytes, ...], int]] = {}  # node hash -> its state

    def verify(self, leaf_hash: bytes, index: int, proof: Sequence[bytes]) -> None:
        """Check an inclusion proof of leaf index against this tree head; raise ProofError if it fails."""
        size, proof = self.size, tuple(proof)
        _check_inclusion_proof(leaf_hash, index, size, proof, self.root)
        verified, passed = self._verified, []
        fn, sn, r = index, size - 1, leaf_hash
        for step, p in enumerate(proof, 1):
            if sn == 0:
                raise ProofError(f"inclusion proof is longer than the path of index {index} in size {size}")
            if fn & 1 or fn == sn:
                r = _sha256(_join((_NODE, p, r))).digest()
                while not fn & 1 and fn:
                    fn, sn = fn >> 1, sn >> 1
            else:
                r = _sha256(_join((_NODE, r, p))).digest()
            fn, sn = fn >> 1, sn >> 1
            known = verified.get(r)
            if known is not None and known[0] == fn and known[1] == sn and known[2][known[3] :] == proof[step:]:
                break
            passed.append((r, (fn, sn, proof, step)))
        else:
            if sn != 0 or r != self.root:
                raise ProofError(f"inclusion proof for index {index} does not lead to the root of size {size}")
        if len(verified) + len(passed) > self.limit:
            verified.clear()
        for node, state in passed:
            verified.setdefault(node, state)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check a consistency proof as RFC 9162 section 2.1.4.2; raise ProofError if it fails."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if old_size == new_size:  # only equality is claimed, so roots of any length compare (as in Go)
        if proof:
            raise ProofError("sizes are equal but the consistency proof is not empty")
        if old_root != new_root:
            raise ProofError(f"roots differ for the same size {old_size}")
        return
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    _check_proof_hashes(proof)
    _check_consistency_proof_size(old_size, new_size, proof)
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof is longer than the path from size {old_size} to {new_size}")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != old_root:
        raise ProofError(f"consistency proof does not lead to the old root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the new root of size {new_size}")


def _check_consistency_proof_size(old_size: int, new_size: int, proof: Sequence[bytes]) -> None:
    """Raise ProofError unless the consistency proof has exactly the expected number of hashes."""
    shift = (old_size & -old_size).bit_length() - 1
    inner = (((old_size - 1) ^ (new_size - 1)).bit_length()) - shift
    border = ((old_size - 1) >> (inner + shift)).bit_count()
    want = inner + border + (0 if old_size == 1 << shift else 1)
    if len(proof) != want:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, want {want} from size {old_size} to {new_size}"
        )


class TreeState:
    """The right edge of a growing tree: enough to append leaves, compute the root and write tiles."""

    def __init__(self) -> None:
        """Start an empty tree; use TreeState.empty() or TreeState.restore()."""
        self._size = 0
        self._edge: list[bytes | None] = []  # _edge[level]: rightmost node if (size >> level) is odd
        self._tiles: list[bytearray] = []  # _tiles[tile_level]: the rightmost partial tile
        self._full: dict[int, bytes] = {}  # the last full tile at each tile level
        self._dirty: dict[tuple[int, int], bytes | None] = {}  # None: the current partial tile

    @classmethod
    def empty(cls) -> TreeState:
        """Return the state of the empty tree."""
        return cls()

    @classmethod
    def restore(cls, size: int, edge_tiles: Mapping[int, bytes]) -> TreeState:
        """Rebuild the state of a tree of size leaves from the rightmost tile of each tile level.

        The caller should compare root() with the root of its last checkpoint.
        """
        if size < 0:
            raise ValueError(f"negative tree size {size}")
        expected = rightmost_tiles(size)
        if set(edge_tiles) != set(expected):
            raise ValueError(f"tree of size {size} needs edge tiles at levels {sorted(expected)}")
        state = cls()
        state._size = size
        state._edge = [None] * size.bit_length()
        for tile_level, (tile_index, width) in sorted(expected.items()):
            data = bytes(edge_tiles[tile_level])
            if len(data) != width * HASH_SIZE:
                raise ValueError(
                    f"edge tile {tile_level}/{tile_index} has {len(data)} bytes, want {width * 32}"
                )
            state._restore_level(tile_level, tile_index, data)
        return state

    def _restore_level(self, tile_level: int, tile_index: int, data: bytes) -> None:
        """Load one rightmost tile and recompute the edge nodes that lie in it."""
        if len(data) == TILE_BYTES:
            self._full[tile_level] = data
            self._tiles.append(bytearray())
            return
        self._tiles.append(bytearray(data))
        hashes = split_hashes(data)
        count = self._size >> (TILE_HEIGHT * tile_level)
        for k in range(TILE_HEIGHT):
            if (count >> k) & 1:
                start = (((count >> k) - 1) << k) - tile_index * TILE_WIDTH
                self._edge[TILE_HEIGHT * tile_level + k] = root_from_leaf_hashes(
                    hashes[start : start + (1 << k)]
                )

    @property
    def size(self) -> int:
        """Return the number of leaves."""
        return self._size

    def append(self, leaf_hashes: Sequence[bytes]) -> None:
        """Append leaf hashes, computing every new node once."""
        new = list(leaf_hashes)
        check_hashes(new)
        count = self._size
        self._size += len(new)
        self._carry(0, count, new)

    def append_full_tile(self, data: bytes, root: bytes) -> None:
        """Append 256 leaf hashes (one full level-0 tile) whose subtree hash is already known.

        The tree size must be a multiple of 256; the caller vouches that root is the subtree hash of data.
        """
        if self._size % TILE_WIDTH or len(data) != TILE_BYTES or len(root) != HASH_SIZE:
            raise ValueError("append_full_tile needs a tile-aligned tree, 256 hashes and a 32-byte root")
        tile_index = self._size >> TILE_HEIGHT  # also the count of hashes at tree level 8 so far
        if not self._tiles:
            self._tiles.append(bytearray())
        self._full[0] = self._dirty[(0, tile_index)] = bytes(data)
        while len(self._edge) < TILE_HEIGHT:  # nodes inside the tile are complete: no edge below level 8
            self._edge.append(None)
        self._size += TILE_WIDTH
        self._carry(TILE_HEIGHT, tile_index, [root])

    def _carry(self, level: int, count: int, new: list[bytes]) -> None:
        """Add new hashes at level (after count there) and every parent they complete, up the tree."""
        while new:
            if level % TILE_HEIGHT == 0:
                self._add_to_tile(level // TILE_HEIGHT, count, new)
            if level == len(self._edge):
                self._edge.append(None)
            nodes = [self._edge[level], *new] if count & 1 else new
            self._edge[level] = nodes[-1] if (count + len(new)) & 1 else None
            new = parent_hashes(nodes)
            count, level = count >> 1, level + 1

    def _add_to_tile(self, tile_level: int, first: int, hashes: list[bytes]) -> None:
        """Add the hashes numbered from first at a tile level to its rightmost tile."""
        if tile_level == len(self._tiles):
            self._tiles.append(bytearray())
        tile = self._tiles[tile_level]
        data = _join(hashes)
        tile_index, pos = first >> TILE_HEIGHT, 0
        while pos < len(data):
            room = TILE_BYTES - len(tile)
            tile += data[pos : pos + room]
            pos += room
            if len(tile) < TILE_BYTES:
                self._dirty[(tile_level, tile_index)] = None
                break
            self._full[tile_level] = self._dirty[(tile_level, tile_index)] = bytes(tile)
            tile.clear()
            tile_index += 1

    def root(self) -> bytes:
        """Return the tree hash, folding the edge nodes from the right."""
        root = None
        for h in self._edge:
            if h is not None:
                root = h if root is None else node_hash(h, root)
        return EMPTY_ROOT if root is None else root

    def take_dirty_tiles(self) -> list[tuple[int, int, bytes]]:
        """Return (tile_level, tile_index, data) of every tile created or changed since the last call."""
        tiles = [
            (tile_level, tile_index, bytes(self._tiles[tile_level]) if data is None else data)
            for (tile_level, tile_index), data in sorted(self._dirty.items())
        ]
        self._dirty.clear()
        return tiles

    def edge_tiles(self) -> dict[int, bytes]:
        """Return the rightmost tile (partial, or else the last full one) of each tile level."""
        return {
            tile_level: bytes(self._tiles[tile_level]) if width < TILE_WIDTH else self._full[tile_level]
            for tile_level, (_, width) in rightmost_tiles(self._size).items()
        }


def rightmost_tiles(size: int) -> dict[int, tuple[int, int]]:
    """Return {tile_level: (tile_index, width)} of the rightmost tile of each tile level of a tree."""
    tiles = {}
    tile_level = 0
    while count := size >> (TILE_HEIGHT * tile_level):
        width = count % TILE_WIDTH
        tiles[tile_level] = (
            (count >> TILE_HEIGHT, width) if width else ((count >> TILE_HEIGHT) - 1, TILE_WIDTH)
        )
        tile_level += 1
    return tiles

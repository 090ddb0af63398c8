"""Sealed archive segments: entries of one log, the subtree hashes that prove them, and a signed
checkpoint, encrypted; a segment verifies on its own.

Container (all integers big-endian)::

    magic     8 bytes   b"TSSEG\\x00\\x01\\n"
    u32 M, manifest     M bytes of JSON (Manifest), readable without a key; authenticated as AAD
    u32 K, key block    K bytes of JSON (KeyBlock): the data key, AES-KW-wrapped by a master key
    ciphertext          12-byte nonce || AES-256-GCM(compress(msgpack(Body)), aad=magic||u32 M||manifest)

Rewrapping the data key under a new master key replaces only the key block; the ciphertext stays
byte for byte. The Body holds the entries (any subset of the log: a segment holds one retention
policy's entries, which may be sparse) and ``proof``: a batch inclusion proof, the RFC 9162 subtree
hashes (what the log's tiles would supply) of every maximal subtree holding none of the entries,
in left-to-right order. The verifier re-hashes the entries, folds them with those hashes into the
root of the checkpoint's tree and compares it with the signed root: every entry is proven, nothing
is taken on trust. A contiguous run needs about 2*log2(size) hashes; k sparse entries about
k*log2(size/k).
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import msgspec

from trailseal.archive.crypto import CryptoError, KeyBlock, KeyProvider, Sealed, decrypt, encrypt, rewrap
from trailseal.ledger import (
    HASH_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    LedgerError,
    Verifier,
    node_hash,
    open_checkpoint,
    root_from_leaf_hashes,
)
from trailseal.ledger.merkle import parent_hashes, range_hash, split_hashes
from trailseal.ledger.tiles import tile_width

try:  # zstd when the zstandard wheel is installed, else stdlib gzip
    import zstandard
except ImportError:  # pragma: no cover - exercised only without the wheel
    zstandard = None

MAGIC = b"TSSEG\x00\x01\n"
FORMAT = 1
CIPHER = "AES-256-GCM"
ZSTD_LEVEL = 3
DEFAULT_COMPRESSION = "zstd" if zstandard is not None else "gzip"

ReadTile = Callable[[int, int, int], bytes]


class SegmentError(ValueError):
    """A segment is malformed, does not decrypt, or does not verify."""


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a segment holds, readable without a key and authenticated by the cipher."""

    format: int
    log: str
    policy: str
    start: int  # first index held
    end: int  # one past the last index held
    count: int  # entries held (a policy's subset of [start, end))
    size: int  # tree size of the checkpoint
    checkpoint: str  # signed C2SP checkpoint note at size
    retain_until: str  # RFC 3339; the archive keeps the segment locked until then
    created: str
    compression: str
    cipher: str = CIPHER


class Body(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """The encrypted part: entries and the hashes that prove them."""

    indices: list[int]
    entries: list[bytes]
    proof: list[bytes]  # subtree hashes of the entry-free subtrees, left to right


@dataclass(frozen=True)
class Segment:
    """An opened (decrypted) segment."""

    manifest: Manifest
    body: Body

    def entries(self) -> Iterator[tuple[int, bytes]]:
        """(index, entry bytes) in index order."""
        return zip(self.body.indices, self.body.entries, strict=True)


@dataclass
class SegmentReport:
    """The outcome of verifying one segment on its own."""

    manifest: Manifest | None
    entries: int = 0
    proof_hashes: int = 0
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return self.problem is None

    def summary(self) -> str:
        """One line for people."""
        m = self.manifest
        what = f"{m.log} [{m.start}, {m.end}) policy {m.policy}" if m else "segment"
        if self.ok:
            return (f"{what}: OK — {self.entries} entries proven with {self.proof_hashes} hashes in the "
                    f"signed checkpoint at size {m.size}")
        return f"{what}: FAILED: {self.problem}"


# -- the batch inclusion proof -------------------------------------------------------------------
def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where RFC 9162 splits n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def gaps(indices: Sequence[int], size: int) -> list[tuple[int, int]]:
    """The maximal RFC 9162 subtrees [lo, hi) of a tree of size that hold none of indices (sorted)."""
    out: list[tuple[int, int]] = []
    if indices:
        _gaps(0, size, indices, 0, len(indices), out)
    return out


def _gaps(lo: int, hi: int, idx: Sequence[int], a: int, b: int, out: list[tuple[int, int]]) -> None:
    """Append the entry-free subtrees of [lo, hi), whose entries are idx[a:b]."""
    if a == b:
        out.append((lo, hi))
    elif b - a != hi - lo:
        mid = lo + _split(hi - lo)
        m = bisect.bisect_left(idx, mid, a, b)
        _gaps(lo, mid, idx, a, m, out)
        _gaps(mid, hi, idx, m, b, out)


def fold_root(indices: Sequence[int], leaves: Sequence[bytes], proof: Sequence[bytes], size: int) -> bytes:
    """The root of the tree of size from the leaves at indices and the proof's subtree hashes."""
    if not indices:
        raise SegmentError("no entries to prove")
    if any(len(h) != HASH_SIZE for h in proof):
        raise SegmentError(f"every proof hash must be {HASH_SIZE} bytes")
    supply = iter(proof)
    root = _fold(0, size, indices, leaves, 0, len(indices), supply)
    if next(supply, None) is not None:
        raise SegmentError("the proof has more hashes than the entries need")
    return root


def _mth(level: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH of leaf hashes (already 32 bytes each), level by level."""
    while len(level) > 1:
        parents = parent_hashes(level)
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


def _fold(lo: int, hi: int, idx: Sequence[int], leaves: Sequence[bytes], a: int, b: int,
          supply: Iterator[bytes]) -> bytes:
    """MTH of leaves [lo, hi): from the entries idx[a:b], or the next proof hash if it holds none."""
    if a == b:
        h = next(supply, None)
        if h is None:
            raise SegmentError("the proof has fewer hashes than the entries need")
        return h
    if b - a == hi - lo:
        return _mth(leaves[a:b])
    mid = lo + _split(hi - lo)
    m = bisect.bisect_left(idx, mid, a, b)
    return node_hash(_fold(lo, mid, idx, leaves, a, m, supply), _fold(mid, hi, idx, leaves, m, b, supply))


class TileHashes:
    """Tree hashes of a tree of size, read from its tiles with a bounded cache (segments can be sparse)."""

    def __init__(self, size: int, read_tile: ReadTile, cache: int = 256):
        """Read tiles with read_tile(level, index, width), keeping at most cache of them."""
        self.size = size
        self._read_tile = read_tile
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._limit = cache

    def tile(self, level: int, index: int) -> bytes:
        """One tile's hashes at the tree's size."""
        key = (level, index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        width = tile_width(self.size, level, index)
        data = bytes(self._read_tile(level, index, width))
        if len(data) != width * HASH_SIZE:
            raise SegmentError(f"tile {level}/{index} has {len(data)} bytes, want {width * HASH_SIZE}")
        self._cache[key] = data
        if len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return data

    def leaf(self, index: int) -> bytes:
        """The leaf hash at index."""
        at = (index % TILE_WIDTH) * HASH_SIZE
        return self.tile(0, index // TILE_WIDTH)[at:at + HASH_SIZE]

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        """Hashes of the perfect subtrees start..end-1 at level (merkle.ReadHashes)."""
        tile_level, k = divmod(level, TILE_HEIGHT)
        out = []
        for i in range(start, end):
            first = i << k
            data = self.tile(tile_level, first >> TILE_HEIGHT)
            at = (first % TILE_WIDTH) * HASH_SIZE
            out.append(root_from_leaf_hashes(split_hashes(data[at:at + (HASH_SIZE << k)])))
        return out

    def range_hash(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi), a subtree of the RFC 9162 tree."""
        return range_hash(lo, hi, self.read_hashes)


# -- building ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Built:
    """A sealed segment and the leaf hash of each of its entries (checked against the tiles)."""

    blob: bytes
    leaves: list[bytes]


def build(log: str, policy: str, rows: Sequence[tuple[int, bytes]], *, checkpoint: str, size: int,
          read_tile: ReadTile, retain_until: str, created: str, keys: KeyProvider,
          compression: str = DEFAULT_COMPRESSION) -> Built:
    """Seal rows (index, entry) of log, sorted by index, into an encrypted segment."""
    if not rows:
        raise SegmentError("a segment needs at least one entry")
    indices, entries = [i for i, _ in rows], [e for _, e in rows]
    if indices[-1] >= size:
        raise SegmentError(f"entry {indices[-1]} is not covered by the checkpoint at size {size}")
    hashes = TileHashes(size, read_tile)
    leaves = _check_rows(indices, entries, hashes)
    body = Body(indices, entries, [hashes.range_hash(lo, hi) for lo, hi in gaps(indices, size)])
    manifest = Manifest(FORMAT, log, policy, indices[0], indices[-1] + 1, len(rows), size, checkpoint,
                        retain_until, created, compression)
    return Built(seal(manifest, body, keys), leaves)


def _check_rows(indices: Sequence[int], entries: Sequence[bytes], hashes: TileHashes) -> list[bytes]:
    """Leaf hashes of the entries; refuse rows out of order or an entry that does not hash to its tile leaf."""
    sha256 = hashlib.sha256
    leaves = [sha256(b"\x00" + entry).digest() for entry in entries]
    tile_index, tile, last = -1, b"", -1
    for index, leaf in zip(indices, leaves, strict=True):
        if index <= last:
            raise SegmentError(f"entries must be in increasing index order ({index} after {last})")
        if index // TILE_WIDTH != tile_index:
            tile_index = index // TILE_WIDTH
            tile = hashes.tile(0, tile_index)
        at = (index % TILE_WIDTH) * HASH_SIZE
        if tile[at:at + HASH_SIZE] != leaf:
            raise SegmentError(f"entry {index} does not hash to its tile leaf; run `trailseal verify`")
        last = index
    return leaves


def seal(manifest: Manifest, body: Body, keys: KeyProvider) -> bytes:
    """Compress, encrypt and frame a segment."""
    head = _head(manifest)
    plaintext = compress(manifest.compression, msgspec.msgpack.encode(body))
    sealed = encrypt(plaintext, head, keys)
    return frame(head, sealed)


def _head(manifest: Manifest) -> bytes:
    """Magic and length-prefixed manifest: the authenticated prefix."""
    data = msgspec.json.encode(manifest)
    return MAGIC + len(data).to_bytes(4, "big") + data


def frame(head: bytes, sealed: Sealed) -> bytes:
    """Join the authenticated head, the key block and the ciphertext."""
    block = msgspec.json.encode(sealed.key_block)
    return b"".join((head, len(block).to_bytes(4, "big"), block, sealed.ciphertext))


def compress(name: str, data: bytes) -> bytes:
    """Compress with the named codec."""
    if name == "zstd":
        return _zstd().ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    if name == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    raise SegmentError(f"unknown compression {name!r}")


def decompress(name: str, data: bytes) -> bytes:
    """Decompress with the named codec."""
    if name == "zstd":
        return _zstd().ZstdDecompressor().decompress(data)
    if name == "gzip":
        return gzip.decompress(data)
    raise SegmentError(f"unknown compression {name!r}")


def _zstd():
    """The zstandard module, or a SegmentError saying how to get it."""
    if zstandard is None:
        raise SegmentError("this segment is zstd-compressed: pip install zstandard")
    return zstandard


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parts:
    """A segment split into its framed parts."""

    head: bytes
    manifest: Manifest
    key_block: KeyBlock
    ciphertext: bytes


def split(blob: bytes) -> Parts:
    """Split a segment into head, manifest, key block and ciphertext (nothing is decrypted)."""
    if blob[:len(MAGIC)] != MAGIC:
        raise SegmentError("not a trailseal segment (bad magic)")
    pos = len(MAGIC)
    manifest_bytes, pos = _chunk(blob, pos, "manifest")
    head = blob[:pos]
    block_bytes, pos = _chunk(blob, pos, "key block")
    try:
        manifest = msgspec.json.decode(manifest_bytes, type=Manifest)
        block = msgspec.json.decode(block_bytes, type=KeyBlock)
    except msgspec.DecodeError as exc:
        raise SegmentError(f"malformed segment header: {exc}") from None
    if manifest.format != FORMAT:
        raise SegmentError(f"segment format {manifest.format}; this trailseal reads format {FORMAT}")
    return Parts(head, manifest, block, blob[pos:])


def _chunk(blob: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """A u32-length-prefixed chunk at pos, and the position after it."""
    if pos + 4 > len(blob):
        raise SegmentError(f"segment truncated before its {what}")
    end = pos + 4 + int.from_bytes(blob[pos:pos + 4], "big")
    if end > len(blob):
        raise SegmentError(f"segment truncated in its {what}")
    return blob[pos + 4:end], end


def read_manifest(blob: bytes) -> Manifest:
    """The manifest, without decrypting (not authenticated until the segment is opened)."""
    return split(blob).manifest


def open_segment(blob: bytes, keys: KeyProvider) -> Segment:
    """Decrypt and decode a segment; the cipher authenticates manifest and body."""
    parts = split(blob)
    try:
        plaintext = decrypt(Sealed(parts.key_block, parts.ciphertext), parts.head, keys)
    except CryptoError as exc:
        raise SegmentError(str(exc)) from None
    try:
        body = msgspec.msgpack.decode(decompress(parts.manifest.compression, plaintext), type=Body)
    except (msgspec.DecodeError, ValueError, EOFError) as exc:
        raise SegmentError(f"segment body does not decode: {exc}") from None
    return Segment(parts.manifest, body)


def rewrap_segment(blob: bytes, keys: KeyProvider, kek_id: str | None = None) -> bytes:
    """The same segment with its data key wrapped by kek_id (default: current); ciphertext unchanged."""
    parts = split(blob)
    block = rewrap(parts.key_block, keys, kek_id)
    return frame(parts.head, Sealed(block, parts.ciphertext))


def key_id(blob: bytes) -> str:
    """Id of the master key that wraps the segment's data key."""
    return split(blob).key_block.kek


# -- verifying -----------------------------------------------------------------------------------
def verify_segment(blob: bytes, verifier: Verifier | Sequence[Verifier], keys: KeyProvider) -> SegmentReport:
    """Decrypt, re-hash the entries, fold them with the proof into a root, check it and its signature."""
    report = SegmentReport(None)
    try:
        report.manifest = read_manifest(blob)
        check_segment(open_segment(blob, keys), verifier, report)
    except (SegmentError, LedgerError) as exc:
        report.problem = str(exc)
    return report


def check_segment(segment: Segment, verifier: Verifier | Sequence[Verifier], report: SegmentReport) -> list[bytes]:
    """Every check of an opened segment; raise SegmentError at the first failure; returns the leaf hashes."""
    m, body = segment.manifest, segment.body
    root = _checkpoint_root(m, verifier)
    _check_layout(m, body)
    sha256 = hashlib.sha256
    leaves = [sha256(b"\x00" + entry).digest() for entry in body.entries]
    if fold_root(body.indices, leaves, body.proof, m.size) != root:
        raise SegmentError(f"the entries and proof do not lead to the signed root at size {m.size}: "
                           "an entry, its index or a proof hash was changed")
    report.entries = len(body.entries)
    report.proof_hashes = len(body.proof)
    return leaves


def _checkpoint_root(m: Manifest, verifier) -> bytes:
    """Open the signed checkpoint; it must be the log's and at the manifest's size."""
    try:
        checkpoint = open_checkpoint(m.checkpoint, verifier)
    except LedgerError as exc:
        raise SegmentError(f"checkpoint does not verify: {exc}") from None
    if not checkpoint.origin.endswith("/" + m.log):
        raise SegmentError(f"checkpoint is for {checkpoint.origin}, not log {m.log}")
    if checkpoint.size != m.size:
        raise SegmentError(f"checkpoint has size {checkpoint.size}, manifest says {m.size}")
    return checkpoint.root


def _check_layout(m: Manifest, body: Body) -> None:
    """Indices strictly increasing, spanning exactly [start, end), as many as the manifest counts."""
    idx = body.indices
    if len(idx) != len(body.entries) or len(idx) != m.count or not idx:
        raise SegmentError(f"segment holds {len(body.entries)} entries, manifest counts {m.count}")
    if idx[0] != m.start or idx[-1] + 1 != m.end or not 0 <= m.start < m.end <= m.size:
        raise SegmentError(f"entries span [{idx[0]}, {idx[-1] + 1}), manifest says [{m.start}, {m.end})")
    if any(b <= a for a, b in zip(idx, idx[1:], strict=False)):
        raise SegmentError("entry indices are not strictly increasing")

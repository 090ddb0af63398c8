"""C2SP tlog-tiles (height 8): tile paths, entry bundles, and reading tree hashes from tiles.

A tile at tile level L and index N holds up to 256 consecutive hashes at tree level 8L, starting at
hash N*256; the tree levels between two tile levels are recomputed from the tile's hashes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping, Sequence
from typing import Literal

from trailseal.ledger.errors import TileError
from trailseal.ledger.merkle import (
    HASH_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    ReadHashes,
    parent_hashes,
    split_hashes,
)

MAX_TILE_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF

ReadTile = Callable[[int, int, int], bytes]

_TILE_PATH = re.compile(
    r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/){0,6}[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?"
)


def _encode_index(index: int) -> str:
    """Encode a tile index as 3-digit path elements, all but the last prefixed by x."""
    if index < 0:
        raise TileError(f"negative tile index {index}")
    parts = [f"{index % 1000:03d}"]
    while index >= 1000:
        index //= 1000
        parts.append(f"x{index % 1000:03d}")
    return "/".join(reversed(parts))


def _width_suffix(width: int) -> str:
    """Return the .p/W suffix of a partial tile, or nothing for a full one."""
    if not 1 <= width <= TILE_WIDTH:
        raise TileError(f"tile width {width} is not in 1..{TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Return the path of a hash tile, like tile/0/x001/x234/067.p/8."""
    if not 0 <= level <= MAX_TILE_LEVEL:
        raise TileError(f"tile level {level} is not in 0..{MAX_TILE_LEVEL}")
    return f"tile/{level}/{_encode_index(index)}{_width_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Return the path of an entry bundle, like tile/entries/x001/234.p/3."""
    return f"tile/entries/{_encode_index(index)}{_width_suffix(width)}"


def parse_tile_path(path: str) -> tuple[int | Literal["entries"], int, int]:
    """Parse a canonical tile or entry bundle path into (level or "entries", index, width)."""
    match = _TILE_PATH.fullmatch(path)
    if not match:
        raise TileError(f"malformed tile path {path!r}")
    level_text, index_text, width_text = match.groups()
    level: int | Literal["entries"] = "entries" if level_text == "entries" else int(level_text)
    index = int(index_text.replace("x", "").replace("/", ""))
    width = int(width_text) if width_text else TILE_WIDTH
    canonical = entries_path(index, width) if level == "entries" else tile_path(level, index, width)
    if canonical != path:
        raise TileError(f"non-canonical tile path {path!r}, want {canonical!r}")
    return level, index, width


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Encode entries as a bundle: each prefixed by its big-endian uint16 length."""
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"entry {i} has {len(entry)} bytes, more than {MAX_ENTRY_SIZE}")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """Decode an entry bundle into its entries."""
    entries, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise TileError(f"entry bundle truncated in the length of entry {len(entries)}")
        end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
        if end > len(data):
            raise TileError(f"entry bundle truncated in entry {len(entries)}")
        entries.append(bytes(data[pos + 2 : end]))
        pos = end
    if len(entries) > TILE_WIDTH:
        raise TileError(f"entry bundle has {len(entries)} entries, more than {TILE_WIDTH}")
    return entries


def tile_width(size: int, level: int, index: int) -> int:
    """Return the width of a tile in the tree of size leaves, or raise TileError if it has no such tile."""
    count = size >> (TILE_HEIGHT * level)
    if index < count >> TILE_HEIGHT:
        return TILE_WIDTH
    if index == count >> TILE_HEIGHT and count % TILE_WIDTH:
        return count % TILE_WIDTH
    raise TileError(f"a tree of size {size} has no tile {level}/{index}")


def tiles_for_size(size: int) -> list[tuple[int, int, int]]:
    """Return (level, index, width) of every tile of a tree of size leaves: full ones, then the partial one."""
    tiles = []
    level = 0
    while count := size >> (TILE_HEIGHT * level):
        tiles += [(level, index, TILE_WIDTH) for index in range(count >> TILE_HEIGHT)]
        if count % TILE_WIDTH:
            tiles.append((level, count >> TILE_HEIGHT, count % TILE_WIDTH))
        level += 1
    return tiles


def tile_levels(hashes: list[bytes]) -> list[list[bytes]]:
    """Every perfect subtree hash inside one tile: levels[k][i] covers hashes [i*2^k, (i+1)*2^k)."""
    levels = [hashes]
    while len(levels[-1]) > 1:
        levels.append(parent_hashes(levels[-1]))
    return levels


def tile_read_hashes(size: int, read_tile: ReadTile,
                     full_tiles: MutableMapping[tuple[int, int], list[list[bytes]]] | None = None) -> ReadHashes:
    """Return read_hashes(level, start, end) for the tree of size leaves, reading tiles with read_tile.

    read_tile(tile_level, tile_index, width) must return exactly width hashes; build one reader per
    request, since it keeps the few tiles it read. ``full_tiles`` may be a long-lived cache shared
    across requests of one log: a tile is put there under (level, index) when full and under
    (level, index, width) when partial, since the first ``width`` hashes of a tile never change.
    """
    cache: dict[tuple[int, int], list[list[bytes]]] = {}

    def tile_hashes(level: int, index: int) -> list[list[bytes]]:
        """Return the subtree levels of one tile as the tree of size has it."""
        key = (level, index)
        if key in cache:
            return cache[key]
        width = tile_width(size, level, index)
        shared = key if width == TILE_WIDTH else (level, index, width)
        if full_tiles is not None and shared in full_tiles:
            cache[key] = full_tiles[shared]
            return cache[key]
        data = read_tile(level, index, width)
        if len(data) != width * HASH_SIZE:
            raise TileError(f"tile {tile_path(level, index, width)} has {len(data)} bytes, want {width * 32}")
        cache[key] = tile_levels(split_hashes(bytes(data)))
        if full_tiles is not None:
            full_tiles[shared] = cache[key]
        return cache[key]

    def read_hashes(level: int, start: int, end: int) -> list[bytes]:
        """Return the hashes of the perfect subtrees at level with indices start..end-1."""
        if level < 0 or not 0 <= start <= end or end << level > size:
            raise ValueError(f"subtrees {start}..{end - 1} at level {level} are not in a tree of size {size}")
        tile_level, k = divmod(level, TILE_HEIGHT)
        hashes = []
        for i in range(start, end):
            first = i << k
            levels = tile_hashes(tile_level, first >> TILE_HEIGHT)
            hashes.append(levels[k][(first % TILE_WIDTH) >> k])
        return hashes

    return read_hashes

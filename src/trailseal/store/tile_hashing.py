"""Re-hashing full tiles of a SQLite store in worker processes, for `verify` at the speed of SHA-256.

Each worker (``python -m trailseal.store.tile_hashing DB LOG``: a fresh interpreter, so nothing of the
caller's threads, locks or ``__main__`` is inherited) opens the database (query only) and, for each run of
full level-0 tiles it is sent, reads their 256 entries, hashes them (RFC 9162 leaves), compares the
leaf hashes with the stored tile, and computes the tile's subtree hash. A tile whose entries are not
exactly the 256 expected ones, are not stored as bytes, or do not hash to the stored tile comes back
as None: the verifier then re-checks it entry by entry, so every failure is still reported exactly as
the sequential walk reports it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from trailseal.store.base import StoreError

TILE = 256
TILE_BYTES = TILE * 32
TILES_PER_TASK = 64  # 16,384 entries (~10 MB of payload) per task: big enough to amortize, small enough to stream
READ_AHEAD = 2  # tasks queued per worker: keeps every worker busy, memory flat in the log's size

TileResult = tuple[int, bytes | None, bytes | None]  # (tile index, leaf hashes, subtree hash)


def default_workers() -> int:
    """Worker processes for a full verify: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


def hashed_tiles(path: str, log: str, start: int, end: int, workers: int) -> Iterator[TileResult]:
    """Every full tile start..end-1 of ``log``, in order, hashed by ``workers`` processes."""
    tasks = [(first, min(TILES_PER_TASK, end - first)) for first in range(start, end, TILES_PER_TASK)]
    procs = [_spawn(path, log) for _ in range(min(workers, len(tasks)))]
    done = False
    try:
        ahead = READ_AHEAD * len(procs)
        for i, task in enumerate(tasks[:ahead]):
            _send(procs[i % len(procs)], task)
        for i, (first, count) in enumerate(tasks):
            if i + ahead < len(tasks):
                _send(procs[(i + ahead) % len(procs)], tasks[i + ahead])
            yield from _receive(procs[i % len(procs)], first, count)
        done = True
    finally:
        for proc in procs:
            _stop(proc, done)


def _spawn(path: str, log: str) -> subprocess.Popen:
    package_root = str(Path(__file__).resolve().parents[2])  # where `trailseal` is importable from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "trailseal.store.tile_hashing", path, log], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _send(proc: subprocess.Popen, task: tuple[int, int]) -> None:
    proc.stdin.write(f"{task[0]} {task[1]}\n".encode())
    proc.stdin.flush()


def _receive(proc: subprocess.Popen, first: int, count: int) -> Iterator[TileResult]:
    for tile in range(first, first + count):
        flag = proc.stdout.read(1)
        if flag == b"\x01":
            data = proc.stdout.read(TILE_BYTES + 32)
            if len(data) == TILE_BYTES + 32:
                yield tile, data[:TILE_BYTES], data[TILE_BYTES:]
                continue
        elif flag == b"\x00":
            yield tile, None, None
            continue
        proc.kill()
        raise StoreError(f"a verify worker failed: {proc.stderr.read().decode(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen, done: bool) -> None:
    """Close a worker's input (it exits at end of input), or kill it if the caller stopped early."""
    if done:
        proc.stdin.close()
    else:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        stream.close()


def serve(path: str, log: str) -> None:
    """The worker: read `first count` lines, answer each tile with 0x00, or 0x01 + leaf hashes + root."""
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA query_only=ON")  # a verifier reads; it never writes
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        first, count = map(int, line.split())
        for _, data, root in hash_tiles(conn, log, first, count):
            out.write(b"\x00" if data is None else b"\x01" + data + root)
        out.flush()


def hash_tiles(conn: sqlite3.Connection, log: str, first: int, count: int) -> list[TileResult]:
    """(tile, leaf hashes, subtree hash) for tiles first..first+count-1, or (tile, None, None)."""
    start, end = first * TILE, (first + count) * TILE
    rows = conn.execute("SELECT idx, data FROM entries WHERE log=? AND idx>=? AND idx<? ORDER BY idx",
                        (log, start, end)).fetchall()
    stored = dict(conn.execute("SELECT idx, data FROM tiles WHERE log=? AND level=0 AND idx>=? AND idx<?",
                               (log, first, first + count)).fetchall())
    by_tile: dict[int, list] = {}
    for row in rows:
        by_tile.setdefault(row[0] // TILE, []).append(row)
    return [_hash_tile(tile, by_tile.get(tile, []), stored.get(tile)) for tile in range(first, first + count)]


def _hash_tile(tile: int, rows: list, stored: bytes | None) -> TileResult:
    """One tile's leaf hashes and subtree hash, if its entries are exactly the expected ones."""
    base = tile * TILE
    if len(rows) != TILE or any(row[0] != base + k for k, row in enumerate(rows)):
        return tile, None, None
    sha256 = hashlib.sha256
    try:
        leaves = [sha256(b"\x00" + data).digest() for _, data in rows]
    except TypeError:  # a payload stored as TEXT: the entry-by-entry walk reports it
        return tile, None, None
    joined = b"".join(leaves)
    if joined != stored:
        return tile, None, None
    return tile, joined, subtree_hash(leaves)


def subtree_hash(hashes: list[bytes]) -> bytes:
    """The hash of a perfect subtree from its (power of two) leaf hashes."""
    sha256 = hashlib.sha256
    while len(hashes) > 1:
        hashes = [sha256(b"\x01" + a + b).digest() for a, b in zip(hashes[0::2], hashes[1::2], strict=True)]
    return hashes[0]


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])

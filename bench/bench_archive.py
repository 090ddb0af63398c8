"""Archive and restore throughput: 1M sealed events (100k with TRAILSEAL_BENCH_QUICK=1).

Ours: `Retention.apply` moves every payload past its hot period into sealed segments (zstd, AES-256-GCM
under a wrapped per-segment key, batch inclusion proof, signed checkpoint) in a directory target,
reads each back, then drops the local payloads keeping leaf hashes; `Retention.restore` fetches,
verifies (signature, proof, every entry re-hashed) and re-inserts them. Both rates include SQLite.
Retention pipelines both: its background thread builds or fetches segment k+1 while the calling thread
writes segment k's rows in SQLite, so the bench prints CPU seconds per thread beside the wall clock.

A second, smaller run (a tenth of the events) archives and restores in a data dir whose search indexes
are current, as `serve` keeps them: there every payload that leaves the store also leaves the FTS, IP and
actor indexes, and `entries` carries the index module's three extra indexes.

Events are sealed with privacy protection off (it only slows the setup; segments carry sealed bytes
either way). Peer: stdlib gzip at level 6 (what `tar czf` does) over the very same entry bytes, and gunzip back:
the plain "compress the old rows into a tarball" archive that audit teams start from, with no
encryption, no proof and no database work. It tells what our extra guarantees cost.
"""

from __future__ import annotations

import gzip
import hashlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.archive.helpers import without_privacy
from tests.conftest import make_event

import trailseal
from bench.common import QUICK, Result, peak_rss_mb, report
from trailseal.archive import Archive
from trailseal.archive.crypto import StaticKeys, new_key
from trailseal.archive.dir import DirTarget
from trailseal.event import format_time
from trailseal.retention import Policies, Retention, verify_log_pruned
from trailseal.store.base import Filters

EVENTS = 100_000 if QUICK else 1_000_000
INDEXED_EVENTS = EVENTS // 10
BATCH = 20_000
GOAL = 100_000
START = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = {"policies": {"everything": {"logs": ["default"],
                                      "categories": ["authentication", "data_access", "admin", "config"],
                                      "hot": "30d", "keep": "1y"}}}


class Clock:
    """A settable clock for Trail (str) and Retention (datetime)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> str:
        return format_time(self.now)

    def moment(self) -> datetime:
        return self.now


def seal(directory: Path, clock: Clock, count: int = EVENTS) -> None:
    """Seal count events, one batch per simulated minute."""
    with trailseal.open(directory, clock=clock) as log:
        for start in range(0, count, BATCH):
            log.append([make_event(i) for i in range(start, min(start + BATCH, count))])
            clock.now += timedelta(minutes=1)


def digest(store) -> tuple[str, bytes]:
    """SHA-256 over every (index, entry) and the entries concatenated."""
    h, parts = hashlib.sha256(), []
    for index, data in store.read_entries("default", 0, 2**62):
        h.update(index.to_bytes(8, "big") + data)
        parts.append(data)
    return h.hexdigest(), b"".join(parts)


def rate(count: int, seconds: float) -> float:
    """Events per second."""
    return count / seconds if seconds else float("inf")


def peer_rates(raw: bytes) -> tuple[float, float, int]:
    """gzip -6 and gunzip of the same bytes: (events/s each way, compressed size)."""
    started = time.perf_counter()
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    packing = time.perf_counter() - started
    started = time.perf_counter()
    gzip.decompress(packed)
    unpacking = time.perf_counter() - started
    return rate(EVENTS, packing), rate(EVENTS, unpacking), len(packed)


def floor_rates(raw: bytes) -> tuple[float, float]:
    """zstd -3 then AES-256-GCM of the same bytes and back, in 8 MiB chunks: the crypto floor, no proof, no db."""
    import os

    import zstandard
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead, chunks = AESGCM(new_key()), [raw[i:i + (8 << 20)] for i in range(0, len(raw), 8 << 20)]
    started = time.perf_counter()
    sealed = [(nonce := os.urandom(12), aead.encrypt(nonce, zstandard.ZstdCompressor(level=3).compress(c), None))
              for c in chunks]
    packing = time.perf_counter() - started
    started = time.perf_counter()
    back = b"".join(zstandard.ZstdDecompressor().decompress(aead.decrypt(n, c, None)) for n, c in sealed)
    unpacking = time.perf_counter() - started
    assert back == raw
    return rate(EVENTS, packing), rate(EVENTS, unpacking)


def main() -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        directory = without_privacy(trailseal.init(root / "data", origin="bench.trailseal"))
        clock = Clock(START)
        started = time.perf_counter()
        seal(directory, clock)
        print(f"sealed {EVENTS:,} events in {time.perf_counter() - started:.1f} s")
        with trailseal.open(directory, clock=clock) as trail:
            results = run(trail, root, clock)
        return results + run_indexed(root)


def run(trail, root: Path, clock: Clock) -> list[Result]:
    before, raw = digest(trail.store)
    archive = Archive(DirTarget(root / "archive"), StaticKeys({"bench": new_key()}))
    retention = Retention(trail.store, Policies.from_config(POLICY), archive, verifier=trail.verifier,
                          clock=clock.moment)
    now = clock.now + timedelta(days=31)
    with cpu_split() as archive_cpu:
        applied = retention.apply(now)
    archiving = archive_cpu.wall
    archive_phases = dict(retention.timings)
    assert applied.count("archive") == EVENTS, applied.steps
    assert next(trail.store.read_entries("default", 0, 2**62), None) is None, "local payloads remain"
    started = time.perf_counter()
    assert verify_log_pruned(trail.store, "default", [trail.verifier()]).ok
    pruned_verify = time.perf_counter() - started
    with cpu_split() as restore_cpu:
        restored = retention.restore("default")
    restoring = restore_cpu.wall
    restore_phases = dict(retention.timings)
    after, _ = digest(trail.store)
    assert restored == EVENTS and after == before, "restore is not byte-identical"
    assert trail.verify("default")[0].ok
    started = time.perf_counter()
    hits = trail.store.select(["default"], Filters(category="admin"), None, 1000)
    assert len(hits) == 1000 and all(b'"category":"admin"' in data for *_, data in hits), "restored rows not queryable"
    print(f"query after restore: 1000 admin events in {time.perf_counter() - started:.3f} s")
    stored = sum(p.stat().st_size for p in (root / "archive").rglob("*.tseg"))
    gz_in, gz_out, gz_size = peer_rates(raw)
    floor_in, floor_out = floor_rates(raw)
    print(f"{len(applied.steps)} segments, {stored / 2**20:.1f} MiB archived from {len(raw) / 2**20:.1f} MiB "
          f"(gzip -6: {gz_size / 2**20:.1f} MiB); pruned-aware verify {rate(EVENTS, pruned_verify):,.0f} "
          f"events/s; peak RSS {peak_rss_mb():,.0f} MiB")
    print("archive phases (s): " + phases(archive_phases) + "; restore phases (s): " + phases(restore_phases))
    print(f"CPU s, archive: {archive_cpu.describe()}; restore: {restore_cpu.describe()}")
    ours_in, ours_out = rate(EVENTS, archiving), rate(EVENTS, restoring)
    seg_in, seg_out = rate(EVENTS, archive_phases["segments"]), rate(EVENTS, restore_phases["verify"])
    return [
        report(Result("archive events/s, end to end (incl. SQLite moves)", ours_in, gz_in, "events/s",
                      "gzip -6 same bytes", f">= {GOAL:,}", ours_in >= GOAL)),
        report(Result("archive events per CPU-s, end to end (both threads)", rate(EVENTS, archive_cpu.process),
                      gz_in, "events/s", "gzip -6 same bytes", f">= {GOAL:,}", rate(EVENTS, archive_cpu.process) >= GOAL)),
        report(Result("archive events/s, quiet 2 cores (busier thread's CPU)", rate(EVENTS, archive_cpu.busiest),
                      gz_in, "events/s", "gzip -6 same bytes", f">= {GOAL:,}", rate(EVENTS, archive_cpu.busiest) >= GOAL)),
        report(Result("archive events/s, segments only (build+encrypt+write+read back)", seg_in, gz_in, "events/s",
                      "gzip -6 same bytes", f">= {GOAL:,}", seg_in >= GOAL)),
        report(Result("restore events/s, end to end (incl. SQLite inserts)", ours_out, gz_out, "events/s",
                      "gunzip same bytes", f">= {GOAL:,}", ours_out >= GOAL)),
        report(Result("restore events per CPU-s, end to end (both threads)", rate(EVENTS, restore_cpu.process),
                      gz_out, "events/s", "gunzip same bytes", f">= {GOAL:,}", rate(EVENTS, restore_cpu.process) >= GOAL)),
        report(Result("restore events/s, quiet 2 cores (busier thread's CPU)", rate(EVENTS, restore_cpu.busiest),
                      gz_out, "events/s", "gunzip same bytes", f">= {GOAL:,}", rate(EVENTS, restore_cpu.busiest) >= GOAL)),
        report(Result("restore events/s, segments only (fetch+decrypt+verify)", seg_out, gz_out, "events/s",
                      "gunzip same bytes", f">= {GOAL:,}", seg_out >= GOAL)),
        report(Result("archive events/s, segments only vs crypto floor", seg_in, floor_in, "events/s",
                      "zstd -3 + AES-GCM alone", f">= {GOAL:,}", seg_in >= GOAL)),
        report(Result("restore events/s, segments only vs crypto floor", seg_out, floor_out, "events/s",
                      "AES-GCM + unzstd alone", f">= {GOAL:,}", seg_out >= GOAL)),
    ]


def run_indexed(root: Path) -> list[Result]:
    """Archive and restore INDEXED_EVENTS events with the search indexes current (query/index.py)."""
    from trailseal.query import index

    directory = without_privacy(trailseal.init(root / "indexed", origin="bench.trailseal"))
    clock = Clock(START)
    seal(directory, clock, INDEXED_EVENTS)
    with trailseal.open(directory, clock=clock) as trail:
        index.refresh(index.connection(trail.store))
        retention = Retention(trail.store, Policies.from_config(POLICY),
                              Archive(DirTarget(root / "indexed-archive"), StaticKeys({"bench": new_key()})),
                              verifier=trail.verifier, clock=clock.moment)
        with cpu_split() as archive_cpu:
            assert retention.apply(clock.now + timedelta(days=31)).count("archive") == INDEXED_EVENTS
        with cpu_split() as restore_cpu:
            assert retention.restore("default") == INDEXED_EVENTS
    print(f"with search indexes, {INDEXED_EVENTS:,} events: archive CPU s {archive_cpu.describe()}; "
          f"restore {restore_cpu.describe()}")
    return [
        report(Result(f"archive events/s with search indexes, {INDEXED_EVENTS:,}, end to end",
                      rate(INDEXED_EVENTS, archive_cpu.wall), None, "events/s", goal=f">= {GOAL:,}",
                      passed=rate(INDEXED_EVENTS, archive_cpu.wall) >= GOAL)),
        report(Result("same, quiet 2 cores (busier thread's CPU)", rate(INDEXED_EVENTS, archive_cpu.busiest), None,
                      "events/s", goal=f">= {GOAL:,}", passed=rate(INDEXED_EVENTS, archive_cpu.busiest) >= GOAL)),
        report(Result(f"restore events/s with search indexes, {INDEXED_EVENTS:,}, end to end",
                      rate(INDEXED_EVENTS, restore_cpu.wall), None, "events/s", goal=f">= {GOAL:,}",
                      passed=rate(INDEXED_EVENTS, restore_cpu.wall) >= GOAL)),
        report(Result("same, quiet 2 cores (busier thread's CPU)", rate(INDEXED_EVENTS, restore_cpu.busiest), None,
                      "events/s", goal=f">= {GOAL:,}", passed=rate(INDEXED_EVENTS, restore_cpu.busiest) >= GOAL)),
    ]


class CpuSplit:
    """Wall clock and CPU seconds of a block: the whole process, and the calling thread (the SQLite writer);
    the rest is retention's background thread (segments). On a quiet machine with two cores the block
    takes about as long as its busier thread, which is what `busiest` estimates."""

    wall = process = main = 0.0

    @property
    def background(self) -> float:
        return max(0.0, self.process - self.main)

    @property
    def busiest(self) -> float:
        return max(self.main, self.background)

    def describe(self) -> str:
        return (f"wall {self.wall:.2f}, process {self.process:.2f} (writer thread {self.main:.2f}, "
                f"background {self.background:.2f})")


@contextmanager
def cpu_split() -> Iterator[CpuSplit]:
    """Measure a block (see CpuSplit)."""
    split = CpuSplit()
    wall, process, main = time.perf_counter(), time.process_time(), time.thread_time()
    yield split
    split.wall = time.perf_counter() - wall
    split.process = time.process_time() - process
    split.main = time.thread_time() - main


def phases(timings: dict[str, float]) -> str:
    """'total 1.2, segments 0.4, ...'."""
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in timings.items())


if __name__ == "__main__":
    main()

"""The sealed core (issue 2): durable ingest vs stdlib logging, verify vs bare SHA-256, prove latency,
and peak memory at growing log sizes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trailseal
from bench.common import QUICK, Result, cli_ingest, percentile, report
from bench.events import events
from trailseal.store.tile_hashing import default_workers

OUT = Path(__file__).parent / "out"


def logging_peer(batch: list[dict], directory: Path) -> float:
    """stdlib logging writing the same events as JSON lines to a file (no integrity), events/s."""

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps(record.msg)

    handler = logging.FileHandler(directory / "peer.log")
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bench.peer")
    logger.handlers[:] = [handler]
    logger.propagate, logger.level = False, logging.INFO
    started = time.perf_counter()
    for event in batch:
        logger.info(event)
    handler.flush()
    os.fsync(handler.stream.fileno())
    elapsed = time.perf_counter() - started
    handler.close()
    return len(batch) / elapsed


def ingest_ours(batch: list[dict], directory: Path, in_flight: int) -> float:
    """trailseal.open(...).append() in batches of 1000, durable; ``in_flight`` > 1 pipelines batches."""
    trailseal.init(directory, origin="bench.trailseal")
    with trailseal.open(directory) as log:
        log.pool.start()  # a long-running appender's prepare workers are up before its first big batch
        started = time.perf_counter()
        if in_flight == 1:
            for start in range(0, len(batch), 1000):
                log.append(batch[start:start + 1000])
        else:
            pending = []
            for start in range(0, len(batch), 1000):
                pending.append(log.sealer.submit(log.prepare(batch[start:start + 1000])))
                if len(pending) >= in_flight:
                    pending.pop(0).result()
            for future in pending:
                future.result()
        return len(batch) / (time.perf_counter() - started)


def bench_ingest(count: int) -> None:
    batch = events(count)
    with tempfile.TemporaryDirectory() as tmp:
        peer = logging_peer(batch, Path(tmp))
        ours = ingest_ours(batch, Path(tmp) / "seq", 1)
        piped = ingest_ours(batch, Path(tmp) / "piped", 4)
        command = cli_ingest(batch, Path(tmp) / "cli")
        command_alone = cli_ingest(batch, Path(tmp) / "cli-alone",
                                   lambda text: text.replace("prepare_workers = -1", "prepare_workers = 0"))
    report(Result(f"library ingest, {count:,} events, append()", ours, peer, "ev/s", "stdlib logging JSON",
                  ">=1.0x", ours >= peer))
    report(Result(f"library ingest, {count:,} events, 4 batches in flight", piped, peer, "ev/s",
                  "stdlib logging JSON", ">=1.0x", piped >= peer))
    report(Result(f"trailseal ingest FILE, {count:,} NDJSON lines", command, peer, "ev/s", "stdlib logging JSON",
                  ">=1.0x", command >= peer))
    report(Result("  the same without prepare workers (prepare_workers = 0)", command_alone, None, "ev/s"))


def run(module: str, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=True)
    return done.stdout.split()


def bench_size(size: int) -> Path:
    directory = OUT / f"log-{size}"
    added, seconds, rss = run("bench.build_log", str(directory), str(size))
    if int(added):
        report(Result(f"build {size:,}-entry log (writer, prebuilt events)", int(added) / float(seconds), None,
                      "ev/s"))
        report(Result(f"peak RSS of the writer at {size:,}", float(rss), None, "MiB", goal="flat in size"))
    entries, seconds, rss, worker_rss = run("bench.run_verify", str(directory))
    rate = int(entries) / float(seconds)
    peer = hashlib_peer(directory) if size <= 1_000_000 else None
    report(Result(f"verify {size:,} entries ({default_workers()} workers)", rate, peer, "entries/s",
                  "bare hashlib leaf hashing", ">=0.5x" if peer else "", rate >= 0.5 * peer if peer else None))
    report(Result(f"peak RSS of verify at {size:,}", float(rss), None, "MiB", goal="flat in size"))
    report(Result(f"peak RSS of one verify worker at {size:,}", float(worker_rss), None, "MiB", goal="flat in size"))
    return directory


def hashlib_peer(directory: Path) -> float:
    """SHA-256 leaf hashing alone over the same entry bytes (reading them is not timed)."""
    sha256, total, elapsed = hashlib.sha256, 0, 0.0
    with trailseal.open(directory) as log:
        size = log.store.tree_size("default")
        for start in range(0, size, 100_000):
            chunk = [data for _, data in log.store.read_entries("default", start, start + 100_000)]
            began = time.perf_counter()
            for data in chunk:
                sha256(b"\x00" + data).digest()
            elapsed += time.perf_counter() - began
            total += len(chunk)
    return total / elapsed


def prove_times(log, size: int, samples: int, seed: int) -> list[float]:
    """Milliseconds per `prove` of random indices."""
    rng, times = random.Random(seed), []
    for _ in range(samples):
        index = rng.randrange(size)
        began = time.perf_counter()
        log.prove(index)
        times.append((time.perf_counter() - began) * 1000)
    return times


def bench_prove(directory: Path, samples: int = 2000) -> None:
    """p99 of `prove` as `serve` answers it (tiles warmed at start, `Trail.warm_tiles`), and before
    the warm-up for reference (random tile reads from wherever the database's pages are)."""
    with trailseal.open(directory) as log:
        size = log.store.tree_size("default")
        cold = prove_times(log, size, samples, seed=3)
        began = time.perf_counter()
        read = log.warm_tiles()
        print(f"  warmed {read >> 20} MiB of tiles in {time.perf_counter() - began:.1f} s (serve does this at start)")
        times = prove_times(log, size, samples, seed=4)
    p99 = percentile(times, 99)
    report(Result(f"prove on a {size:,}-entry log, p99", p99, None, "ms", goal="<=1 ms", passed=p99 <= 1.0))
    report(Result(f"prove on a {size:,}-entry log, p50", percentile(times, 50), None, "ms"))
    report(Result("  before the warm-up (cold pages), p99", percentile(cold, 99), None, "ms"))


def main() -> None:
    bench_ingest(20_000 if QUICK else 200_000)
    sizes = [100_000] if QUICK else [1_000_000, 10_000_000]
    if os.environ.get("TRAILSEAL_BENCH_SIZES"):
        sizes = [int(s) for s in os.environ["TRAILSEAL_BENCH_SIZES"].split(",")]
    for size in sizes:
        bench_prove(bench_size(size))

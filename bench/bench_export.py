"""Export throughput (JSONL, OCSF Parquet) and evidence-bundle verification, beside DuckDB.

Uses two data dirs under bench/out/ (built once, reused): export-<N>/ with ids and addresses in the clear
(1,000,000 events), and the query bench's query-<N>/ (10,000,000, the size the issue's goals are set at),
sealed through the default privacy policy (actor ids and addresses are commitments, whose values every
export joins from the vault). TRAILSEAL_BENCH_QUICK=1: 200,000 each; `python -m bench.bench_export N`: N each. For each it measures in one run: our JSONL and OCSF Parquet exports of every
event (events/s, through the query engine, streaming), DuckDB's COPY of a Parquet file of the same
events to JSON and to Parquet; writing and verifying an evidence bundle of 10,000 events, beside
DuckDB hashing the same 10,000 entries (SHA-256) from the Parquet file; the verification's CPU
seconds, and what `trailseal verify` takes as a command, are printed beside it.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import trailseal
from bench import bench_query
from bench.bench_query import export_parquet
from bench.build_log import build as build_log
from bench.common import QUICK, Result, machine, peak_rss_mb, report, reset_peak_rss
from trailseal.query import index
from trailseal.query.bundle import write_bundle
from trailseal.query.bundle_check import verify_bundle
from trailseal.query.export import export_to

OUT = Path(__file__).resolve().parent / "out"
BUNDLE_EVENTS = 10_000
BUNDLE_QUERY = "since:2026-11-01T00:00:00Z until:2026-11-01T00:01:40Z"  # events are 10 ms apart: 10,000


def prepare(total: int) -> Path:
    """The data dir with ``total`` events, indexed for search, and its Parquet twin for DuckDB."""
    directory = OUT / f"export-{total}"
    directory.parent.mkdir(parents=True, exist_ok=True)
    build_log(directory, total)
    with trailseal.open(directory) as trail:
        index.refresh(index.connection(trail.store))
    parquet = directory / "events.parquet"
    if not parquet.exists():
        export_parquet(directory, parquet)
    return directory


def rate(total: int, seconds: float) -> float:
    return total / seconds if seconds else 0.0


def ours(directory: Path, work: Path, fmt: str) -> tuple[int, float]:
    """(rows, seconds) of one export of every event; prints the rate per CPU-second too (steadier than
    wall-clock rates while other work shares the machine's cores), counting the CPU of the worker
    processes an OCSF Parquet export starts."""
    with trailseal.open(directory) as trail:
        resident = reset_peak_rss()
        started, cpu = time.perf_counter(), cpu_seconds()
        result = export_to(trail, "", fmt, work / f"all.{fmt}")
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    print(f"  {fmt}: {result.rows:,} events in {seconds:.2f} s wall, {cpu:.2f} s CPU"
          f" ({rate(result.rows, cpu):,.0f} events per CPU-second); peak RSS +{peak_rss_mb() - resident:,.0f} MiB"
          f" over the {resident:,.0f} MiB this process held before")
    return result.rows, seconds


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def command(bundle: Path) -> None:
    """Print what `trailseal verify BUNDLE` takes as a command (interpreter start, imports, CLI, verify)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    done = subprocess.run([sys.executable, "-m", "trailseal", "verify", str(bundle)], capture_output=True, check=False)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    print(f"  `trailseal verify` as a command: {seconds:.2f} s wall, {cpu:.2f} s CPU (exit code {done.returncode})")


def duckdb_copy(parquet: Path, target: Path, options: str) -> tuple[int, float]:
    import duckdb

    conn = duckdb.connect()
    conn.execute("SET threads TO 2")
    started = time.perf_counter()
    conn.execute(f"COPY (SELECT * FROM read_parquet('{parquet}')) TO '{target}' ({options})")
    seconds = time.perf_counter() - started
    rows = conn.execute(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchone()[0]
    return rows, seconds


def duckdb_hash(parquet: Path, bundle_query: str) -> float:
    """Seconds DuckDB takes to SHA-256 the bundle's entries (a plain hash check, no proofs)."""
    import duckdb

    since, until = (part.split(":", 1)[1] for part in bundle_query.split())
    conn = duckdb.connect()
    started = time.perf_counter()
    rows = conn.execute(f"SELECT sha256(data) FROM read_parquet('{parquet}') WHERE time >= '{since}'"
                        f" AND time < '{until}'").fetchall()
    seconds = time.perf_counter() - started
    assert len(rows) >= BUNDLE_EVENTS * 0.9, len(rows)
    return seconds


def main(total: int | None = None, stores: tuple[str, ...] = ("plain", "default policy")) -> list[Result]:
    """Two stores: ``plain`` (bench/events.py, sealed directly: ids and addresses in the clear; 1M events) and
    ``default policy`` (the query bench's store of 10M, on which the issue's goals are judged, sealed through
    the default privacy policy: actor ids and addresses are commitments, so every exported event has its
    values joined from the vault; built once for both benches). ``total`` sets both sizes."""
    results = []
    if "plain" in stores:
        plain = total or (200_000 if QUICK else 1_000_000)
        results += measure(prepare(plain), BUNDLE_QUERY, "plain")
    if "default policy" in stores:
        size = total or bench_query.SIZE
        results += measure(bench_query.prepare(size), default_policy_bundle_query(size), "default policy")
    return results


def default_policy_bundle_query(total: int) -> str:
    """A time window holding about BUNDLE_EVENTS of the query bench's events (spread over its DAYS days)."""
    from datetime import timedelta

    from bench import bench_query

    start = bench_query.END - timedelta(days=10)
    span = timedelta(seconds=BUNDLE_EVENTS * bench_query.DAYS * 86400 / total)
    return f"since:{start:%Y-%m-%dT%H:%M:%SZ} until:{start + span:%Y-%m-%dT%H:%M:%SZ}"


def measure(directory: Path, bundle_query: str, store: str) -> list[Result]:
    """JSONL and OCSF Parquet exports of every event, beside DuckDB; a bundle written and verified."""
    parquet = directory / "events.parquet"
    work = OUT / f"{directory.name}-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    results = []
    rows, seconds = ours(directory, work, "jsonl")
    (work / "all.jsonl").unlink()
    _, duck = duckdb_copy(parquet, work / "duck.json", "FORMAT JSON")
    results.append(report(Result(f"export {rows:,} events to JSONL, {store}", rate(rows, seconds), rate(rows, duck),
                                 "events/s", "DuckDB COPY parquet->JSON", ">= 100k/s", rate(rows, seconds) >= 100_000)))
    rows, seconds = ours(directory, work, "ocsf-parquet")
    _, duck = duckdb_copy(parquet, work / "duck.parquet", "FORMAT PARQUET, COMPRESSION ZSTD")
    results.append(report(Result(f"export {rows:,} events to OCSF Parquet, {store}", rate(rows, seconds),
                                 rate(rows, duck), "events/s", "DuckDB COPY parquet->parquet", ">= 100k/s",
                                 rate(rows, seconds) >= 100_000)))
    bundle = work / "evidence.zip"
    with trailseal.open(directory) as trail:
        started = time.perf_counter()
        made = write_bundle(trail, bundle_query, bundle, by="bench")
        writing = time.perf_counter() - started
    print(f"  bundle of {made.events:,} events written in {writing:.2f} s ({bundle.stat().st_size / 1e6:.1f} MB)")
    started, cpu = time.perf_counter(), cpu_seconds()
    checked = verify_bundle(bundle)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert checked.ok and checked.events == made.events >= BUNDLE_EVENTS * 0.9, checked.problems[:3]
    print(f"  verify in this process: {seconds:.2f} s wall, {cpu:.2f} s CPU")
    command(bundle)
    results.append(report(Result(f"verify a bundle of {checked.events:,} events, {store}", seconds,
                                 duckdb_hash(parquet, bundle_query), "s", "DuckDB sha256 of the same entries",
                                 "<= 2 s", seconds <= 2.0)))
    shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":  # python -m bench.bench_export [N] [plain | "default policy"]
    print(f"# {machine()}")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None, tuple(sys.argv[2:]) or ("plain", "default policy"))

"""Shared helpers for benchmarks: timing, peak memory, and one result line format."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

QUICK = os.environ.get("TRAILSEAL_BENCH_QUICK") == "1"


@dataclass
class Result:
    name: str
    ours: float
    peer: float | None
    unit: str
    peer_name: str = ""
    goal: str = ""
    passed: bool | None = None

    def line(self) -> str:
        peer = f"{self.peer:,.1f} {self.unit} ({self.peer_name})" if self.peer is not None else "-"
        ratio = f"{self.ours / self.peer:.2f}x" if self.peer else ""
        verdict = {True: "MET", False: "NOT MET", None: ""}[self.passed]
        return f"{self.name:<48} ours {self.ours:>14,.1f} {self.unit:<10} peer {peer:<40} {ratio:>7}  goal {self.goal} {verdict}"


def report(result: Result) -> Result:
    print(result.line(), flush=True)
    return result


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of fn takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def reset_peak_rss() -> float:
    """Start counting this process's peak resident set size afresh (Linux: clear_refs 5); the RSS now, in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (VmHWM: Linux keeps ru_maxrss across exec,
    so a benchmark subprocess would report its parent's peak)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pids: list[int] | None = None) -> float:
    """User + system CPU seconds so far of this process and of ``pids`` (its worker processes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in pids or []:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def cli_ingest(batch: list[dict], directory: Path, edit_config: Callable[[str], str] | None = None) -> float:
    """`trailseal ingest FILE` of batch as NDJSON into a new data dir (its trailseal.toml passed through
    edit_config), the command's start-up included: events per second."""
    import trailseal

    source = directory.parent / f"{directory.name}.ndjson"
    source.write_text("".join(json.dumps(event) + "\n" for event in batch))
    trailseal.init(directory, origin="bench.trailseal")
    if edit_config is not None:
        config = directory / "trailseal.toml"
        config.write_text(edit_config(config.read_text()))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trailseal", "ingest", "--data", str(directory), str(source)],
                   check=True, capture_output=True)
    return len(batch) / (time.perf_counter() - started)


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def machine() -> str:
    return (f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()};"
            f" {speed()}")


def speed() -> str:
    """How fast this machine is right now, to set figures from different runs side by side (a shared VM's
    speed has differed 2x between sessions): the interpreter's time per step of a plain loop, and SHA-256
    over 64 MiB (C), each the best of three."""
    import hashlib

    def steps(count: int = 2_000_000) -> int:
        total = 0
        for i in range(count):
            total += i
        return total

    loop = min(timed(steps) for _ in range(3)) / 2_000_000
    data = bytes(64 << 20)
    sha = min(timed(lambda: hashlib.sha256(data).digest()) for _ in range(3))
    return f"speed: {loop * 1e9:.0f} ns per Python loop step, SHA-256 {64 / sha:,.0f} MiB/s"

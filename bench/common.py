"""Shared helpers for benchmarks: timing, peak memory, and one result line format."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

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


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def machine() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"

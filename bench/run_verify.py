"""Verify a data dir in a fresh process and print `entries seconds peak_rss_mb`."""

from __future__ import annotations

import sys
import time

import trailseal
from bench.common import peak_rss_mb

if __name__ == "__main__":
    with trailseal.open(sys.argv[1]) as log:
        started = time.perf_counter()
        (report,) = log.verify("default")
        elapsed = time.perf_counter() - started
    assert report.ok, report.summary()
    print(f"{report.entries} {elapsed:.3f} {peak_rss_mb():.1f}")

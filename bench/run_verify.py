"""Verify a data dir in a fresh process and print `entries seconds peak_rss_mb worker_peak_rss_mb`."""

from __future__ import annotations

import resource
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
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker process
    print(f"{report.entries} {elapsed:.3f} {peak_rss_mb():.1f} {workers:.1f}")

"""Build a data dir with N sealed entries (fast path) and print the writer's peak RSS: `python -m
bench.build_log DIR N`. Reuses DIR if it already holds N entries."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import trailseal
from bench.common import peak_rss_mb
from bench.events import sealables

CHUNK = 20_000


def build(directory: Path, count: int) -> None:
    if not (directory / "trailseal.toml").exists():
        trailseal.init(directory, origin="bench.trailseal")
    with trailseal.open(directory) as log:
        have = log.store.tree_size("default")
        started = time.perf_counter()
        pending = []
        for start in range(have, count, CHUNK):
            pending.append(log.sealer.submit(sealables(min(CHUNK, count - start), start)))
            if len(pending) > 2:
                pending.pop(0).result()
            if start // CHUNK % 25 == 0:
                print(f"  built {start:,}", file=sys.stderr, flush=True)
        for future in pending:
            future.result()
        elapsed = time.perf_counter() - started
    print(f"{count - have} {elapsed:.3f} {peak_rss_mb():.1f}")


if __name__ == "__main__":
    build(Path(sys.argv[1]), int(sys.argv[2]))

"""Run every benchmark: `python -m bench [NAME...]` (NAME filters bench_<NAME>.py)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from bench.common import machine


def main(argv: list[str]) -> int:
    print(f"# trailseal benchmarks on {machine()}")
    names = sorted(m.name for m in pkgutil.iter_modules(["bench"]) if m.name.startswith("bench_"))
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    for name in wanted:
        print(f"\n## {name}", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`make bench` runs every bench/bench_*.py: each must import against the current code and have a main()."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("bench_*.py")))
def test_every_benchmark_imports_and_has_a_main(name):
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.main), f"bench/{name}.py has no main()"


def test_the_benchmarks_are_found():
    assert len(list(BENCH.glob("bench_*.py"))) >= 10

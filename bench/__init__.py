"""trailseal benchmarks: each `bench_*.py` measures us beside a peer, in the same run."""

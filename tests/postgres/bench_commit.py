"""Sealed events/s for the sequencer workload: batches through Sealer into PostgreSQL (and SQLite).

    .venv/bin/python -m tests.postgres.bench_commit [--events 100000] [--batch 1000 5000]

Uses $TRAILSEAL_TEST_PG (or a temporary cluster) and a throwaway database.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.conftest import make_event
from tests.postgres.fixtures import database, new_schema, server
from trailseal.event import from_dict
from trailseal.ledger import Signer, generate
from trailseal.pipeline import Sealer
from trailseal.store.postgres import PostgresStore
from trailseal.store.sqlite import SQLiteStore


class TimedStore:
    """Wraps a store to add up the time spent inside commit()."""

    def __init__(self, store):
        self.store, self.seconds = store, 0.0

    def commit(self, commits) -> None:
        started = time.perf_counter()
        self.store.commit(commits)
        self.seconds += time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self.store, name)


def run(store, items, batch: int) -> tuple[float, float]:
    """(events/s through Sealer, events/s inside store.commit) for ``items`` in batches of ``batch``."""
    skey, _ = generate("bench.trailseal")
    timed = TimedStore(store)
    sealer = Sealer(timed, Signer.from_skey(skey)).start()
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        sealer.seal(items[start:start + batch])
    elapsed = time.perf_counter() - started
    sealer.stop()
    return len(items) / elapsed, len(items) / timed.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args()
    items = [from_dict(make_event(i)) for i in range(args.events)]
    print(f"{args.events} events, {sum(len(i.canonical) for i in items) // args.events} bytes each")
    with server() as url, database(url) as db, tempfile.TemporaryDirectory() as tmp:
        for batch in args.batch:
            for name, store in (("postgresql", PostgresStore(new_schema(db))),
                                ("sqlite", SQLiteStore(Path(tmp) / f"bench-{batch}.db"))):
                sealed, committed = run(store, items, batch)
                store.close()
                print(f"{name:10} batch {batch:5}: {sealed:9,.0f} events/s sealed, "
                      f"{committed:9,.0f} events/s in store.commit()")


if __name__ == "__main__":
    main()

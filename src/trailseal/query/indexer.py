"""The SQLite search index kept current by a child process of `serve`.

Indexing (decoding each sealed entry, finding its words, inserting FTS5 rows) costs about as much CPU as
sealing. In a thread of the server it shares the GIL with ingest; in its own process it runs on the other
core. The child only reads entries and writes the derived tables (query/index.py), and settles the keys of
the vault rows the sealer appended (store/sqlite_vault.py), in short write transactions, and exits when its
parent does. Searches still catch up on their own before they run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

CHILD_BATCH = 250  # entries per write transaction: the sealer waits at most one small batch's inserts
NICENESS = 10  # below the server when both want the CPU: its index is derived data, a search catches up
# what is missing first (bench server, 2 runs each: single-event p99 14.1/14.9 -> 11.9/12.4 ms, ingest level)


class IndexerProcess:
    """Starts the child, restarts it if it died, stops it with the server."""

    def __init__(self, db_path: str, interval: float = 1.0, batch: int = CHILD_BATCH):
        self.db_path, self.interval, self.batch = db_path, interval, batch
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def ensure_running(self) -> None:
        """Start the child if it is not running (a scheduled job calls this every interval)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trailseal.query.indexer", self.db_path, "--interval", str(self.interval),
             "--batch", str(self.batch), "--parent", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.starts += 1

    def stop(self, grace: float = 10.0) -> None:
        """Ask the child to finish its batch and exit (SIGTERM), then kill it after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(db_path: str, interval: float, batch: int, parent: int) -> None:
    """Refresh the index every ``interval`` seconds until the parent process is gone or SIGTERM arrives."""
    import signal
    import sqlite3

    from trailseal.query import index

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def should_stop() -> bool:  # asked between batches too: a long backlog must not hold up a shutdown
        return bool(stopping) or os.getppid() != parent

    os.nice(NICENESS)
    conn = index._open(db_path)
    while not should_stop():
        try:
            index.refresh(conn, batch, stop=should_stop)  # the vault's new keys too, off the sealer's commits
        except sqlite3.OperationalError as exc:  # e.g. the database is locked past the busy timeout
            print(f"trailseal indexer: {exc}; retrying", file=sys.stderr)
        time.sleep(interval)
    conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trailseal.query.indexer",
                                     description="Keep a SQLite data dir's search index current (run by serve).")
    parser.add_argument("db_path")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=CHILD_BATCH)
    parser.add_argument("--parent", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    run(args.db_path, args.interval, args.batch, args.parent)


if __name__ == "__main__":
    main()

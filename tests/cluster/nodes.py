"""`trailseal serve --role ...` processes on loopback, and who leads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from tests.api.server import Process, Server
from trailseal import config


def ingest_node(data_dir: Path, nats: str | None = None) -> Server:
    """An ingest node (HTTP on a free port, publishing to the bus)."""
    return Server(data_dir, "--role", "ingest", *(["--nats", nats] if nats else []))


def start_servers(servers: list[Server], timeout: float = 30.0) -> None:
    """Start every server at once and wait until all of them answer (each waits for its own health)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        for started in [pool.submit(server.start, timeout) for server in servers]:
            started.result()


class Sequencer(Process):
    """A `serve --role sequencer` process named ``node``."""

    grace = 15

    def __init__(self, data_dir: Path, node: str, *args: str):
        self.data_dir, self.node, self.args = data_dir, node, args
        self.log = data_dir.parent / f"{node}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sequencer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "trailseal.cli", "serve", "--data", str(self.data_dir),
                                          "--role", "sequencer", "--node", self.node, *self.args],
                                         env=os.environ.copy(), stdout=log, stderr=log)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def leader(data_dir: Path) -> str | None:
    """The node name of the sequencer holding a leader lock now (from pg_locks), or None."""
    url = config.load(data_dir).store
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'trailseal-sequencer %'"
            " AND a.datname = current_database()").fetchone()
    return row[0].split(" ", 1)[1] if row else None


def wait_for_leader(data_dir: Path, timeout: float, not_: str | None = None) -> tuple[str, float]:
    """Block until some sequencer (other than ``not_``) leads; (its name, seconds waited)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        name = leader(data_dir)
        if name is not None and name != not_:
            return name, time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"no sequencer took the lead within {timeout} s")

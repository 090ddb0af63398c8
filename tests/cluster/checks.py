"""What a cluster run must end with: every acked event sealed once, verify green, checkpoints consistent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import nats
import psycopg

import trailseal
from trailseal import config
from trailseal.cluster.sequencer import consumer_name
from trailseal.ledger import open_checkpoint, verify_consistency


def sealed_ids(data_dir: Path, log: str = "default") -> list[str]:
    with psycopg.connect(config.load(data_dir).store) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM entry_ids WHERE log = %s", (log,))]


def log_size(data_dir: Path, log: str = "default") -> int:
    with psycopg.connect(config.load(data_dir).store) as conn:
        row = conn.execute("SELECT size FROM logs WHERE name = %s", (log,)).fetchone()
    return row[0] if row else 0


def wait_sealed(data_dir: Path, count: int, timeout: float, log: str = "default") -> int:
    """Wait until the log holds ``count`` entries; the size reached."""
    deadline = time.monotonic() + timeout
    while (size := log_size(data_dir, log)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return size


def wait_drained(data_dir: Path, timeout: float, shard: str = "*") -> None:
    """Wait until the shard's sequencer consumer has every stream message delivered and acked: from then
    on nothing more can be sealed, so a log size read now is final (no sleep needed to catch double seals)."""
    bus = config.load(data_dir).bus

    async def pending() -> tuple[int, int]:
        nc = await nats.connect(bus.url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            info = await nc.jetstream().consumer_info(bus.stream, consumer_name(shard))
            return info.num_pending, info.num_ack_pending
        except nats.js.errors.NotFoundError:
            return -1, -1  # between two terms: the new leader recreates it
        finally:
            await nc.close()

    deadline = time.monotonic() + timeout
    while (left := asyncio.run(pending())) != (0, 0):
        if time.monotonic() > deadline:
            raise AssertionError(f"the stream was not drained within {timeout} s: (pending, unacked) = {left}")
        time.sleep(0.1)


def verify_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trailseal.cli", "verify", "--data", str(data_dir), *args],
                          capture_output=True, text=True, timeout=300)


class CheckpointSampler:
    """Polls /tlog/default/checkpoint on the ingest nodes during a run and keeps every distinct note."""

    def __init__(self, urls: list[str], interval: float = 0.3):
        self.urls, self.interval = urls, interval
        self.notes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> CheckpointSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        """One client for the whole run: each new client with CA verification costs ~50 ms CPU."""
        turn = 0
        with httpx.Client(timeout=2, verify=False) as http:  # plain http on loopback
            while not self._stop.wait(self.interval):
                turn += 1
                try:
                    answer = http.get(self.urls[turn % len(self.urls)] + "/tlog/default/checkpoint")
                except httpx.HTTPError:
                    continue
                self._keep(answer)

    def _keep(self, answer: httpx.Response) -> None:
        if answer.status_code == 200 and (not self.notes or answer.text != self.notes[-1]):
            self.notes.append(answer.text)


def check_consistent(data_dir: Path, notes: list[str]) -> int:
    """Every sampled checkpoint is validly signed and each extends the one before (RFC 9162 proofs)."""
    with trailseal.open(data_dir) as trail:
        verifier = trail.verifier("default")
        opened = sorted((open_checkpoint(note, verifier) for note in notes), key=lambda c: c.size)
        for old, new in zip(opened, opened[1:], strict=False):
            if old.size == new.size:
                assert old.root == new.root, f"two different checkpoints at size {old.size}"
                continue
            verify_consistency(old.size, new.size, old.root, new.root,
                               trail.consistency_proof(old.size, new.size))
    return len(opened)

"""The failover scenario, shared by tests/cluster/test_failover.py (60k) and `bench cluster` (200k):
two ingest nodes, two sequencers, a retrying client; the active sequencer SIGKILLed twice and one
ingest node once while the client sends. Every kill is driven by progress (after 1/5, 2/5 and 3/5 of
the events were acked), never by a clock, so it lands mid-stream at any size and machine speed."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.api.server import Server
from tests.cluster.checks import CheckpointSampler, log_size, sealed_ids, wait_drained, wait_sealed
from tests.cluster.client import RetryingClient
from tests.cluster.nodes import Sequencer, ingest_node, start_servers, wait_for_leader


@dataclass
class FailoverRun:
    events: int
    acked: set[str] = field(default_factory=set)
    sealed: list[str] = field(default_factory=list)
    size: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    takeovers: list[float] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    leaders_seen: dict[str, int] = field(default_factory=dict)
    acked_at_kills: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def kill_noted(self, client: RetryingClient) -> None:
        """Remember how many events were acked when a kill happened (each must be mid-stream)."""
        self.acked_at_kills.append(len(client.acked))


def wait_acked(client: RetryingClient, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(client.acked) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(client.acked)} events acked; errors {client.errors[:3]}")
        time.sleep(0.05)


def kill_leader(sequencers: dict[str, Sequencer], data_dir: Path) -> float:
    """SIGKILL the leading sequencer, restart it as a standby; seconds until another one led."""
    name, _ = wait_for_leader(data_dir, 10)
    sequencers[name].kill()
    _, waited = wait_for_leader(data_dir, 15, not_=name)
    sequencers[name].start()
    return waited


def restart_in_background(node: Server) -> Future:
    """Start a killed ingest node again without holding up the next kill; result() re-raises a failed start."""
    pool = ThreadPoolExecutor(1)
    started = pool.submit(node.start, 60)
    pool.shutdown(wait=False)  # its one thread ends with the start
    return started


def run_failover(data_dir: Path, events: int) -> FailoverRun:
    run = FailoverRun(events)
    sequencers = {name: Sequencer(data_dir, name) for name in ("seq-a", "seq-b")}
    nodes = [ingest_node(data_dir), ingest_node(data_dir)]
    client = RetryingClient([n.url for n in nodes], nodes[0].token())
    sampler = CheckpointSampler([n.url for n in nodes]).start()  # it skips nodes not yet answering
    try:
        for sequencer in sequencers.values():
            sequencer.start()
        start_servers(nodes, 60)  # all four processes start at once; whichever sequencer wins leads first
        wait_for_leader(data_dir, 20)
        started = time.monotonic()
        senders = client.start(events)
        wait_acked(client, events // 5)
        run.kill_noted(client)
        run.takeovers.append(kill_leader(sequencers, data_dir))
        wait_acked(client, events * 2 // 5)
        run.kill_noted(client)
        nodes[0].kill()
        wait_acked(client, events * 3 // 5)
        restarting = restart_in_background(nodes[0])
        run.kill_noted(client)
        run.takeovers.append(kill_leader(sequencers, data_dir))
        for sender in senders:
            sender.join(1800)
        restarting.result(90)
        run.size = wait_sealed(data_dir, events, 300)
        run.seconds = time.monotonic() - started
        wait_drained(data_dir, 60)  # every stream message sealed and acked: anything sealed twice shows now
    finally:
        client.cancel()
        sampler.stop()
        for node in nodes:
            node.stop()
        for sequencer in sequencers.values():
            sequencer.stop()
    run.acked, run.retries, run.errors = client.acked, client.retries, client.errors
    run.checkpoints = sampler.notes
    run.sealed, run.size = sealed_ids(data_dir), log_size(data_dir)
    run.leaders_seen = {name: s.output().count("leader of shard") for name, s in sequencers.items()}
    return run

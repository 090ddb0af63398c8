"""The failover scenario, shared by tests/cluster/test_failover.py (bounded) and `bench cluster` (200k):
two ingest nodes, two sequencers, a retrying client; the active sequencer SIGKILLed twice and one
ingest node once while the client sends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.checks import CheckpointSampler, log_size, sealed_ids, wait_sealed
from tests.cluster.client import RetryingClient
from tests.cluster.nodes import Sequencer, ingest_node, wait_for_leader


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
    seconds: float = 0.0


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


def run_failover(data_dir: Path, events: int) -> FailoverRun:
    run = FailoverRun(events)
    sequencers = {name: Sequencer(data_dir, name) for name in ("seq-a", "seq-b")}
    sequencers["seq-a"].start()
    wait_for_leader(data_dir, 20)
    sequencers["seq-b"].start()
    nodes = [ingest_node(data_dir).start(), ingest_node(data_dir).start()]
    client = RetryingClient([n.url for n in nodes], nodes[0].token())
    sampler = CheckpointSampler([n.url for n in nodes]).start()
    started = time.monotonic()
    try:
        senders = client.start(events)
        wait_acked(client, events // 5)
        run.takeovers.append(kill_leader(sequencers, data_dir))
        wait_acked(client, events * 2 // 5)
        nodes[0].kill()
        wait_acked(client, events * 3 // 5)
        nodes[0].start()
        run.takeovers.append(kill_leader(sequencers, data_dir))
        for sender in senders:
            sender.join(1800)
        run.size = wait_sealed(data_dir, events, 300)
        run.seconds = time.monotonic() - started
        time.sleep(1.0)  # anything sealed twice would show up now
    finally:
        sampler.stop()
        for node in nodes:
            node.stop()
        for sequencer in sequencers.values():
            sequencer.stop()
    run.acked, run.retries, run.errors = client.acked, client.retries, client.errors
    run.sealed, run.size = sealed_ids(data_dir), log_size(data_dir)
    run.checkpoints = sampler.notes
    run.leaders_seen = {name: s.output().count("leader of shard") for name, s in sequencers.items()}
    return run

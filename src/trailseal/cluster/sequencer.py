"""`serve --role sequencer`: the one active writer of a shard (one log, or every log).

A standby polls the shard's PostgreSQL advisory lock; the leader (re)creates the shard's durable
JetStream consumer from the oldest unacknowledged message, and loops: fetch a batch in stream
order, hand it to the SAME Sealer the embedded mode uses (index, tiles, signed checkpoint, one
PostgreSQL transaction), and only after that commit ack the batch to JetStream. A crash between
commit and ack redelivers events that are already sealed; the Sealer answers those from the store
by id and seals nothing new, so every acknowledged event is sealed exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from trailseal.bus.message import BusMessageError, decode
from trailseal.bus.nats import connect, subject_for
from trailseal.bus.pull import BatchPuller
from trailseal.cluster.leader import LeaderLock, lock_key
from trailseal.datadir import Trail
from trailseal.pipeline import Sealer

log = logging.getLogger("trailseal.sequencer")
LOCK_CHECK_SECONDS = 1.0
FETCH_WAIT_SECONDS = 0.2


class LostLeadership(RuntimeError):
    """The lock session died: stop sealing at once and stand by again."""


@dataclass
class SequencerStatus:
    """What this sequencer is doing, for logs and tests."""

    shard: str
    state: str = "standby"
    terms: int = 0  # how often it became leader
    leader_since: float | None = None
    sealed_batches: int = 0
    acked: int = 0
    bad_messages: int = 0


def consumer_name(shard: str) -> str:
    """The durable consumer of a shard (consumer names may not contain dots)."""
    return "sequencer-" + ("all" if shard == "*" else hashlib.sha256(shard.encode()).hexdigest()[:16])


class Sequencer:
    """Leader election plus the consume → seal → commit → ack loop for one shard."""

    def __init__(self, trail: Trail, shard: str = "*", node: str = "sequencer"):
        self.trail, self.conf, self.node = trail, trail.config.bus, node
        self.filter = f"{self.conf.subject}.>" if shard == "*" else subject_for(self.conf, shard)
        self.durable = consumer_name(shard)
        self.lock = LeaderLock(trail.config.store, lock_key(self.conf.stream, shard), f"trailseal-sequencer {node}")
        self.status = SequencerStatus(shard)
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Stand by, lead while the lock is ours, stand by again; until stop()."""
        while self.lock.wait(self.conf.leader_poll_seconds, self.stop_event):
            self.status.state, self.status.leader_since = "leader", time.time()
            self.status.terms += 1
            log.warning("%s: leader of shard %s (term %d)", self.node, self.status.shard, self.status.terms)
            try:
                asyncio.run(self._lead())
            except Exception as exc:  # noqa: BLE001 - any failure: give the lock up, let anyone retry
                log.error("%s: leadership ended: %s: %s", self.node, type(exc).__name__, exc)
                self.stop_event.wait(1.0)
            finally:
                self.lock.release()
                self.status.state = "standby"

    def stop(self) -> None:
        self.stop_event.set()

    # -- one term as leader ------------------------------------------------------------------------
    async def _lead(self) -> None:
        sealer = self._sealer()
        nc, js = await connect(self.conf, f"trailseal-sequencer {self.node}")
        try:
            await self._reset_consumer(js)
            puller = await BatchPuller(nc, self.conf.stream, self.durable).start()
            await self._consume(puller, sealer)
        finally:
            sealer.stop()
            await nc.close()

    def _sealer(self) -> Sealer:
        """The embedded writer exactly as `trail.sealer` builds it, minus the data dir's file lock."""
        conf = self.conf
        return self.trail.new_sealer(max_commit_events=max(self.trail.config.max_commit_events, conf.fetch_batch),
                                     max_queue_events=conf.fetch_batch * (conf.commits_in_flight + 1)).start()

    async def _reset_consumer(self, js) -> None:
        """A fresh durable consumer from the oldest unacked message, so nothing waits for a dead
        leader's ack timeout; already sealed redeliveries are answered by id."""
        try:
            await js.delete_consumer(self.conf.stream, self.durable)
        except NotFoundError:
            pass
        pending = self.conf.fetch_batch * (self.conf.commits_in_flight + 2)
        await js.add_consumer(self.conf.stream, ConsumerConfig(
            durable_name=self.durable, filter_subject=self.filter, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL, ack_wait=60, max_ack_pending=pending))

    async def _consume(self, puller: BatchPuller, sealer: Sealer) -> None:
        """Keep up to commits_in_flight batches queued to the writer; ack each after its commit."""
        in_flight: deque = deque()
        checked = time.monotonic()
        while not self.stop_event.is_set():
            if time.monotonic() - checked > LOCK_CHECK_SECONDS:
                await self._check_lock()
                checked = time.monotonic()
            messages = await puller.fetch(self.conf.fetch_batch, FETCH_WAIT_SECONDS)
            if messages:
                items, good = await self._decode(messages)
                in_flight.append((sealer.submit(items), good))
            while in_flight and (not messages or in_flight[0][0].done()
                                 or len(in_flight) >= self.conf.commits_in_flight):
                await self._settle(*in_flight.popleft())
        while in_flight:  # stopping cleanly: finish and ack what the writer already has
            await self._settle(*in_flight.popleft())

    async def _settle(self, future, batch: list) -> None:
        """Wait for a batch's commit, then ack it (a failed commit raises: the term ends, nothing is acked)."""
        await asyncio.wrap_future(future)
        await _ack(batch)
        self.status.sealed_batches += 1
        self.status.acked += len(batch)

    async def _check_lock(self) -> None:
        if not await asyncio.to_thread(self.lock.held):
            raise LostLeadership(f"the leader lock of shard {self.status.shard} is no longer held")

    async def _decode(self, messages: list) -> tuple[list, list]:
        """Sealables of the good messages; foreign ones are terminated (never redelivered) and logged."""
        items, good = [], []
        for message in messages:
            try:
                items.append(decode(message.data))
                good.append(message)
            except BusMessageError as exc:
                self.status.bad_messages += 1
                log.error("%s: dropping stream message %s: %s", self.node, message.metadata.sequence.stream, exc)
                await message.term()
        return items, good


async def _ack(messages: list) -> None:
    for message in messages:
        await message.ack()

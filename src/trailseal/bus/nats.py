"""NATS JetStream as the ingest bus: ingest nodes publish here, sequencers consume (DESIGN §6).

One stream (work-queue retention, file storage) holds `<subject>.<log>` messages, each with
`Nats-Msg-Id` = event id so JetStream drops re-sends inside its duplicate window; the sequencer's
idempotency by id covers the rest. NatsBus answers a submit only after JetStream acknowledged every
event of it; when NATS is down or slow it raises BusUnavailable (503 + Retry-After), never drops.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import msgspec
import nats
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from trailseal.bus.local import BusUnavailable, Queued
from trailseal.bus.message import encode, leaf_of
from trailseal.config import BusConfig
from trailseal.event import Sealable
from trailseal.pipeline import CommitStats

log = logging.getLogger("trailseal.bus")
T = TypeVar("T")
DRAIN_POLL_SECONDS = 0.05  # how often wait_sealed asks the stream for a log's oldest message
FORGET_PER_MESSAGE = 10_000  # search tokens per announcement (66 bytes each: within NATS's 1 MB payload)


def subject_for(conf: BusConfig, log_name: str) -> str:
    """The subject one log's events are published on."""
    return f"{conf.subject}.{log_name}"


def forget_subject(conf: BusConfig) -> str:
    """The core NATS subject (outside the stream's) on which nodes tell each other to forget data subjects."""
    return f"{conf.subject}_forget"


def stream_config(conf: BusConfig) -> StreamConfig:
    """Work-queue retention: a message stays until a sequencer acked it (after the commit); a full
    stream refuses new messages (discard new) instead of dropping old ones."""
    return StreamConfig(name=conf.stream, subjects=[f"{conf.subject}.>"], retention=RetentionPolicy.WORK_QUEUE,
                        storage=StorageType.FILE, num_replicas=conf.replicas, discard=DiscardPolicy.NEW,
                        duplicate_window=conf.duplicate_window_seconds, max_bytes=conf.max_stream_bytes)


async def connect(conf: BusConfig, name: str, **callbacks: Callable[..., Awaitable[None]]):
    """A NATS connection that reconnects forever, with the stream in place."""
    nc = await nats.connect(conf.url, name=name, connect_timeout=2, reconnect_time_wait=0.5,
                            max_reconnect_attempts=-1, allow_reconnect=True, **callbacks)
    js = nc.jetstream(timeout=conf.publish_timeout_seconds, publish_async_max_pending=conf.max_in_flight)
    try:
        await js.stream_info(conf.stream)
    except NotFoundError:
        await js.add_stream(stream_config(conf))
    return nc, js


class LoopThread:
    """An asyncio loop on a daemon thread, for sync callers (routes' threads, receivers, CLI)."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class NatsBus:
    """`trail.sealer` on an ingest/api/detector node: publish, wait for JetStream, answer Queued receipts."""

    def __init__(self, conf: BusConfig, *, max_queue_events: int = 200_000, name: str = "trailseal-ingest"):
        self.conf, self.name = conf, name
        self.max_queue_events = min(max_queue_events, conf.max_in_flight)
        self.heads: dict[str, str] = {}  # nothing is sealed here; routes read checkpoints from the store
        self.stats = CommitStats()
        self.on_commit: list = []
        # Called with the vault rows of the events JetStream stored (not those it held already): the
        # sequencer writes them, re-sent events' too, so their values may be reused as written
        self.on_written: list = []
        # Called with the search tokens of data subjects another node erased or expired: their values must
        # not be reused here either (the node forgets them)
        self.on_forget: list[Callable[[list[str]], None]] = []
        self._node = secrets.token_hex(8)  # this node's own announcements come back to it: skipped
        self.published = self.duplicates = self.unavailable = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._nc = self._js = None
        self._loop = LoopThread("trailseal-bus")
        self._connecting = self._loop.submit(self._connect_forever())

    # -- connection --------------------------------------------------------------------------------
    async def _connect_forever(self) -> None:
        """Connect (retrying every second while NATS is down); later drops reconnect by themselves."""
        while True:
            try:
                nc, js = await connect(self.conf, self.name, error_cb=self._on_error)
                try:
                    await nc.subscribe(forget_subject(self.conf), cb=self._on_forget_message)
                except Exception:
                    await nc.close()
                    raise
                self._nc, self._js = nc, js
                log.info("bus connected to %s", self.conf.url)
                return
            except Exception as exc:  # noqa: BLE001 - keep trying; submits answer 503 meanwhile
                log.warning("bus: cannot reach NATS at %s (%s); retrying", self.conf.url, exc)
                await asyncio.sleep(1.0)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("bus: %s", exc)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def wait_connected(self, timeout: float) -> bool:
        """Block until the first connection is up (for startup and tests)."""
        try:
            self._connecting.result(timeout)
        except TimeoutError:
            return False
        return self.connected

    @property
    def queue_depth(self) -> int:
        return self._in_flight

    # -- publishing --------------------------------------------------------------------------------
    def submit(self, items: Sequence[Sealable]) -> Future:
        """Publish a batch; the future resolves to one Queued receipt per item once JetStream acked all."""
        if not self.connected:
            self.unavailable += len(items)
            raise BusUnavailable(f"the ingest bus (NATS at {self.conf.url}) is unavailable")
        with self._lock:
            if self._in_flight + len(items) > self.max_queue_events:
                raise BusUnavailable(f"{self._in_flight} events are waiting for JetStream acks")
            self._in_flight += len(items)
        future = self._loop.submit(self._publish(list(items)))
        future.add_done_callback(lambda _: self._settle(len(items)))
        return future

    def _settle(self, count: int) -> None:
        with self._lock:
            self._in_flight -= count

    def seal(self, items: Sequence[Sealable], timeout: float | None = None) -> list[Queued]:
        return self.submit(items).result(timeout)

    async def _publish(self, items: list[Sealable]) -> list[Queued]:
        """Publish every item, then wait for all the acks; bounded by publish_timeout_seconds."""
        pending: list[asyncio.Future] = []
        try:
            acks = await asyncio.wait_for(self._publish_all(items, pending), self.conf.publish_timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - any failure here means "not acknowledged": 503
            for waiting in pending:
                waiting.cancel()
            self.unavailable += len(items)
            raise BusUnavailable(f"JetStream did not acknowledge the events ({type(exc).__name__}: "
                                 f"{exc or 'timed out'})") from None
        self.published += len(items)
        self.duplicates += sum(1 for ack in acks if ack.duplicate)
        written = [row for item, ack in zip(items, acks, strict=True) if not ack.duplicate for row in item.vault]
        for observer in self.on_written:
            observer(written)
        return [Queued(item.log, item.id, None if ack.duplicate else leaf_of(item), ack.seq)
                for item, ack in zip(items, acks, strict=True)]

    async def _publish_all(self, items: list[Sealable], pending: list[asyncio.Future]) -> list:
        """Queue every message without yielding (one socket write for the lot), then gather the acks."""
        for item in items:
            pending.append(await self._js.publish_async(subject_for(self.conf, item.log), encode(item),
                                                        headers={"Nats-Msg-Id": item.id}))
        return [await ack for ack in pending]  # in order; cheaper than gather's task per future

    # -- waiting for the sequencers ---------------------------------------------------------------
    def wait_sealed(self, log_name: str | None, timeout: float) -> bool:
        """Whether every event of ``log_name`` (None: of every log) that was in the stream at this call is
        sealed within ``timeout`` seconds: a sequencer acks a message once its commit is durable, and the
        work-queue stream then drops it, so none left at or below the newest sequence seen now means all are
        in the store. Per log, so it holds whichever sequencer (one for all logs, or one per shard) seals it."""
        if not self.connected:
            return False
        try:
            return self._loop.submit(self._all_drained(log_name, timeout)).result(timeout + 10)
        except Exception as exc:  # noqa: BLE001 - NATS gone or slow: not known to be sealed
            log.warning("bus: could not tell whether the stream's %s events are sealed (%s)", log_name or "", exc)
            return False

    async def _all_drained(self, log_name: str | None, timeout: float) -> bool:
        if log_name is not None:
            subjects = [subject_for(self.conf, log_name)]
        else:  # the logs with events in the stream now
            info = await self._js.stream_info(self.conf.stream, subjects_filter=f"{self.conf.subject}.>")
            subjects = sorted(info.state.subjects or {})
        deadline = asyncio.get_running_loop().time() + timeout
        for subject in subjects:
            if not await self._drained(subject, max(0.0, deadline - asyncio.get_running_loop().time())):
                return False
        return True

    async def _drained(self, subject: str, timeout: float) -> bool:
        try:
            newest = (await self._js.get_last_msg(self.conf.stream, subject)).seq
        except NotFoundError:
            return True
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                oldest = (await self._js.get_msg(self.conf.stream, seq=1, subject=subject, next=True)).seq
            except NotFoundError:
                return True
            if oldest > newest:
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    # -- forgetting data subjects across nodes ----------------------------------------------------
    def broadcast_forget(self, tokens: Sequence[str]) -> None:
        """Tell every other node to forget these data subjects (their search tokens, never the subjects):
        core NATS, at most once; a node not connected at that moment keeps its cache until it restarts."""
        if not tokens:
            return
        if not self.connected:
            log.warning("bus: could not tell the other nodes to forget %d subjects (NATS unavailable); their "
                        "caches may reuse those values until they restart", len(tokens))
            return
        for start in range(0, len(tokens), FORGET_PER_MESSAGE):
            payload = msgspec.json.encode((self._node, list(tokens[start:start + FORGET_PER_MESSAGE])))
            try:
                self._loop.submit(self._publish_forget(payload)).result(self.conf.publish_timeout_seconds)
            except Exception as exc:  # noqa: BLE001 - the local forget and the deletion stand; say so
                log.warning("bus: telling the other nodes to forget subjects failed (%s)", exc)
                return

    async def _publish_forget(self, payload: bytes) -> None:
        await self._nc.publish(forget_subject(self.conf), payload)
        await self._nc.flush()

    async def _on_forget_message(self, message) -> None:
        """Another node's announcement: its observers run on a thread of their own (they may wait for the
        prepare workers), never on the bus's loop."""
        try:
            node, tokens = msgspec.json.decode(message.data, type=tuple[str, list[str]])
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("bus: ignored a malformed forget announcement")
            return
        if node != self._node:
            threading.Thread(target=self._tell_forget, args=(tokens,), name="trailseal-forget", daemon=True).start()

    def _tell_forget(self, tokens: list[str]) -> None:
        for observer in self.on_forget:
            try:
                observer(tokens)
            except Exception:  # noqa: BLE001 - one observer's failure must not silence the others
                log.exception("a forget observer failed")

    def stop(self) -> None:
        """Flush and close the connection, then the loop."""
        if self._nc is not None:
            try:
                self._loop.submit(self._nc.drain()).result(5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self._connecting.cancel()
        self._loop.stop()

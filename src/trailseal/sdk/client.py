"""The client: ``log()`` queues an event in a few microseconds; a writer thread validates it with
``trailseal.event`` and appends it to the spool; a sender thread ships spooled events to the server in
gzip'ed NDJSON batches, retrying with jittered backoff (honouring Retry-After) until they are sealed.

Nothing here raises into application code: failures are counted in ``client.stats``, passed to
``on_error`` and logged (rate-limited) on the ``trailseal.sdk`` logger.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from trailseal.event import (
    LOG_PATTERN,
    MAX_EVENT_BYTES,
    Event,
    EventError,
    Source,
    format_time,
    normalize_time,
)
from trailseal.event import _check_value as check_value
from trailseal.sdk.context import actor_dict, current, with_origin
from trailseal.sdk.forwarder import Forwarder
from trailseal.sdk.spool import Batch, MemorySpool, Spool
from trailseal.sdk.transport import Reply, Transport, backoff

logger = logging.getLogger("trailseal.sdk")
EVENT_FIELDS = frozenset(f.name for f in msgspec.structs.fields(Event))
LOG_EVERY = 10.0  # seconds between two log lines about the same kind of failure
IDLE_POLL = 0.25  # seconds an idle writer thread sleeps between looks at its queue (log() wakes it)
_encoder = msgspec.json.Encoder()
_clients: weakref.WeakSet[Client] = weakref.WeakSet()


class Ids:
    """UUIDv7 ids (RFC 9562) like ``trailseal.event.new_id`` — time-ordered, monotonic in this process —
    without its per-id ``os.urandom`` call: that syscall releases the GIL, and from a background thread of a
    busy app every release turns into a thread switch. Here the 62 random bits are a per-process random base
    plus a counter (RFC 9562 §6.2, monotonic random), read from the OS once per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_ms, self.seq = 0, 0
        self.base, self.counter = int.from_bytes(os.urandom(8), "big"), 0
        self.prefix_ms, self.prefix = -1, ""

    def _advance(self, count: int) -> tuple[str, int, int]:
        """(the millisecond's text, seq, counter) of the next id, with ``count`` counter values reserved
        (the caller holds the lock)."""
        ms = time.time_ns() // 1_000_000
        if ms <= self.last_ms:
            ms, self.seq = (self.last_ms, self.seq + 1) if self.seq < 0xFFF else (self.last_ms + 1, 0)
        else:
            self.seq = (self.base >> (ms & 31)) & 0x7FF
        self.last_ms, self.counter = ms, self.counter + count
        if ms != self.prefix_ms:  # "tttttttt-tttt-7"
            text = f"{ms & 0xFFFFFFFFFFFF:012x}"
            self.prefix_ms, self.prefix = ms, f"{text[:8]}-{text[8:]}-7"
        return self.prefix, self.seq, self.counter

    def _random(self, counter: int) -> int:
        return (self.base + counter * 0x9E3779B97F4A7C15) & (2**62 - 1)

    def __call__(self) -> str:
        with self.lock:
            prefix, seq, counter = self._advance(1)
        rest = (seq << 64 | 0b10 << 62 | self._random(counter)).to_bytes(10).hex()
        return f"{prefix}{rest[1:4]}-{rest[4:8]}-{rest[8:]}"

    def many(self, count: int) -> list[str]:
        """``count`` ids in a row, cheaper than one call each: they share the millisecond and sequence, and
        their random parts count up from a random start (RFC 9562 §6.2, method 2)."""
        with self.lock:
            prefix, seq, counter = self._advance(count)
        start = self._random(counter)
        low = start & 0xFFFFFFFFFFFF
        if low + count > 0xFFFFFFFFFFFF:  # the count would carry into the next group: one by one
            return [self() for _ in range(count)]
        head = f"{prefix}{seq:03x}-{0x8000 | start >> 48:04x}-"
        return [f"{head}{value:012x}" for value in range(low, low + count)]


new_id = Ids()


class Clock:
    """Nanosecond timestamps as RFC 3339 UTC with microseconds (the second's text remembered). One per
    thread that uses it."""

    def __init__(self) -> None:
        self.second, self.prefix = -1, ""

    def __call__(self, ns: int) -> str:
        second, rest = divmod(ns, 1_000_000_000)
        if second != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.second = second
        return f"{self.prefix}.{rest // 1000:06d}Z"


@dataclass
class Stats:
    """Counters since the client started; ``pending`` is what is not sealed yet."""

    logged: int = 0  # accepted by log()
    invalid: int = 0  # refused by local validation
    dropped: int = 0  # lost: queue or spool full, or logged after close()
    sent: int = 0  # sealed by the server (a receipt came back)
    rejected: int = 0  # refused by the server for good (kept in the spool's rejected.ndjson)
    retries: int = 0  # failed attempts (unreachable, 429, 5xx, ...), each retried
    batches: int = 0  # requests that the server answered with receipts
    recovered: int = 0  # found in the spool at start and replayed
    pending: int = 0  # queued or spooled, not yet sealed (in this process: not what forwarders hold)
    forwarded: int = 0  # request records handed to the forwarder subprocess (it seals and counts them)
    forwarder_restarts: int = 0  # forwarder subprocesses that died (each restarted, or replaced by this one)


@dataclass
class ClientError:
    """One failure reported to ``on_error``: ``kind`` is invalid, dropped, rejected or send."""

    kind: str
    message: str
    count: int = 1


@dataclass
class _Barrier:
    """A flush() marker travelling through the queue; done when all before it is sealed."""

    done: threading.Event
    position: int = -1


def default_spool_dir(url: str) -> Path:
    """$TRAILSEAL_SPOOL_DIR or ~/.cache/trailseal/spool (a temp dir without a home), one per server URL."""
    base = os.environ.get("TRAILSEAL_SPOOL_DIR")
    if not base:
        try:
            base = Path.home() / ".cache" / "trailseal" / "spool"
        except RuntimeError:
            base = Path(tempfile.gettempdir()) / f"trailseal-spool-{os.getuid()}"
    return Path(base) / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:12]


def forwardable(arguments: dict[str, Any]) -> dict[str, Any]:
    """A client's constructor arguments as a forwarder subprocess rebuilds the client from them."""
    options = {k: v for k, v in arguments.items() if k not in ("self", "on_error", "actor")}
    if isinstance(options["spool_dir"], os.PathLike):
        options["spool_dir"] = os.fspath(options["spool_dir"])
    return options


def checked_source(source: dict[str, Any]) -> Source:
    """The client's ``source``, validated once (every event carries it)."""
    try:
        return msgspec.convert(source, Source)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid source for the client: {exc}") from None


class Client:
    """Log audit events to a trailseal server without blocking or failing the application."""

    def __init__(self, url: str, token: str, *, log: str | None = None, source: str = "app",
                 source_kind: str = "app", actor: Any = None, spool_dir: str | os.PathLike | None | bool = None,
                 spool_max_bytes: int = 256 * 1024 * 1024, segment_bytes: int = 4 * 1024 * 1024,
                 fsync: str = "always", batch_size: int = 2000, max_batch_bytes: int = 4 * 1024 * 1024,
                 flush_interval: float = 0.5, spool_interval: float = 0.01, max_queue: int = 10_000,
                 max_block: float = 0.05,
                 compress: bool = True, timeout: float = 10.0, max_backoff: float = 30.0,
                 verify: bool | str = True, on_error: Callable[[ClientError], None] | None = None):
        self.options = forwardable(locals())
        self.url, self.token, self.verify, self.timeout = url, token, verify, timeout
        self.log_name = log
        self.source = {"component": source, "kind": source_kind, "host": socket.gethostname()}
        self._source = checked_source(self.source)
        if log is not None and not re.fullmatch(LOG_PATTERN, log):
            raise ValueError(f"log {log!r} is not a ledger name (lower-case letters, digits, '.', '_', '-')")
        self.default_actor = actor_dict(actor) or {"id": source, "type": "service"}
        self.spool_dir = default_spool_dir(url) if spool_dir is None or spool_dir is True else spool_dir
        self.spool_options = {"max_bytes": spool_max_bytes, "segment_bytes": segment_bytes, "fsync": fsync}
        self.batch_size, self.max_batch_bytes, self.flush_interval = batch_size, max_batch_bytes, flush_interval
        self.max_queue, self.max_block, self.compress, self.max_backoff = max_queue, max_block, compress, max_backoff
        self.spool_interval = spool_interval
        self._wake_at = max(1, min(batch_size, max_queue // 2))
        self.on_error = on_error
        self._last_logged: dict[str, float] = {}
        self._forwarder: Forwarder | None = None
        self._start()
        _clients.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- lifecycle -------------------------------------------------------------------------------
    def _start(self) -> None:
        """Open the spool and the transport and start the writer and sender threads."""
        self._queue: deque = deque()
        self._wake, self._space, self._stop = threading.Event(), threading.Event(), threading.Event()
        self._cv = threading.Condition()
        self._barriers: list[_Barrier] = []
        self._counts = Stats()
        self._counts_lock = threading.Lock()
        self._closed = False
        self._clock = Clock()  # the writer thread's
        self._retry_after: float | None = None
        self._spool = self._open_spool()
        self._counts.recovered = self._spool.recovered
        self._transport = Transport(self.url, self.token, timeout=self.timeout, verify=self.verify)
        self._writer = threading.Thread(target=self._write_loop, name="trailseal-writer", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="trailseal-sender", daemon=True)
        self._writer.start()
        self._sender.start()

    def _open_spool(self) -> MemorySpool:
        """The on-disk spool, or memory only (asked for, or when the directory is unusable)."""
        if self.spool_dir is not False:
            try:
                return Spool(self.spool_dir, **self.spool_options)
            except OSError as exc:
                self._report("send", f"spool {self.spool_dir} unusable ({exc}); keeping events in memory")
        return MemorySpool(self.spool_options["max_bytes"])

    def forwarder(self) -> Forwarder:
        """This client's forwarder subprocess (started on its first record): the middleware's default."""
        if self._forwarder is None:
            self._forwarder = Forwarder(self.options, self._report, self.submit, max_queue=self.max_queue)
        return self._forwarder

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event logged before this call is sealed (or refused); False on timeout."""
        if self._forwarder is not None:
            started = time.monotonic()
            if not self._forwarder.flush(timeout):
                return False
            timeout = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        if self._closed and not self._writer.is_alive():
            return self._spool.pending == 0
        barrier = _Barrier(threading.Event())
        self._queue.append(barrier)
        self._wake.set()
        return barrier.done.wait(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout`` s, then persist what is left to the spool and stop; True if all sealed."""
        if self._closed:
            return self._spool.pending == 0
        forwarded = self._forwarder is None or self._forwarder.close(timeout)
        sealed = self.flush(timeout) and forwarded
        self._closed = True
        self._stop.set()
        self._wake.set()
        with self._cv:
            self._cv.notify_all()
        self._writer.join(timeout + 5)
        self._transport.close()
        self._sender.join(1.0)
        self._spool.close()
        if isinstance(self._spool, Spool) or not self._spool.pending:
            return sealed
        self._report("dropped", f"{self._spool.pending} events were not delivered and there is no spool",
                     self._spool.pending, counter="dropped")
        return False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _after_fork(self) -> None:
        """In a forked child: a fresh queue, spool slot, connection and threads (the parent keeps its own)."""
        if self._forwarder is not None:
            self._forwarder.after_fork()
        if not self._closed:
            self._start()

    # -- the caller's side -----------------------------------------------------------------------
    def log(self, category: str = "system", action: str | None = None, outcome: str = "success",
            actor: Any = None, **fields: Any) -> str | None:
        """Queue one event; returns its id (None if it was dropped). Never raises, never blocks long."""
        try:
            event_id = fields.pop("id", None) or new_id()
        except Exception:  # noqa: BLE001 - never into application code
            return None
        fields["category"], fields["action"], fields["outcome"], fields["actor"] = category, action, outcome, actor
        return event_id if self._put(event_id, fields) else None

    def emit(self, fields: dict[str, Any]) -> None:
        """Queue an event given as a dict of log()'s arguments (the client keeps the dict); its id is
        assigned off the caller's thread, which makes this the cheapest call (middleware and hooks use it)."""
        self._put(fields.pop("id", None), fields)

    def submit(self, record: Any) -> None:
        """Queue an event that ``record.to_event(id, time, source, log)`` builds on the writer thread, at
        ``record.ns`` (the middleware's raw facts of a request): the caller pays for one append."""
        try:
            queue = self._queue
            if (len(queue) >= self.max_queue or self._closed) and not self._make_room():
                return
            queue.append(record)
            count = len(queue)
            if count == 1 or count >= self._wake_at:
                self._wake.set()
        except Exception as exc:  # noqa: BLE001 - never into application code
            self._report("invalid", f"submit() failed: {exc!r}", counter="invalid")

    def _put(self, event_id: str | None, fields: dict[str, Any]) -> bool:
        """Append to the queue with the time and the request context (its actor as of now) of this moment."""
        try:
            ctx = current.get()
            item = (time.time_ns(), event_id, fields, ctx and (ctx.who(), ctx))
            queue = self._queue
            if (len(queue) >= self.max_queue or self._closed) and not self._make_room():
                return False
            queue.append(item)
            count = len(queue)
            if count == 1 or count >= self._wake_at:
                self._wake.set()
            return True
        except Exception as exc:  # noqa: BLE001 - never into application code
            self._report("invalid", f"log() failed: {exc!r}", counter="invalid")
            return False

    def _make_room(self) -> bool:
        """Wait up to ``max_block`` for the writer to drain a full queue; count a drop if it does not."""
        deadline = time.monotonic() + self.max_block
        while not self._closed and len(self._queue) >= self.max_queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._space.clear()
            self._space.wait(min(remaining, 0.01))
        if not self._closed and len(self._queue) < self.max_queue:
            return True
        reason = "the client is closed" if self._closed else f"the queue is full ({self.max_queue} events)"
        self._report("dropped", f"event dropped: {reason}", counter="dropped")
        return False

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters."""
        with self._counts_lock:
            snapshot = Stats(**{f.name: getattr(self._counts, f.name) for f in fields(Stats)})
        queued = sum(1 for item in list(self._queue) if not isinstance(item, _Barrier))
        snapshot.logged += queued
        snapshot.pending = queued + self._spool.pending
        if self._forwarder is not None:
            snapshot.forwarded, snapshot.forwarder_restarts = self._forwarder.forwarded, self._forwarder.restarts
        return snapshot

    # -- the writer thread: queue -> validated lines -> spool --------------------------------------
    def _write_loop(self) -> None:
        """Woken by the first event queued, write what was queued ``spool_interval`` later (sooner when the
        queue fills, on flush or close). An idle client's thread sleeps: in a busy app every wake-up is a
        GIL hand-over the app's threads pay for."""
        queue = self._queue
        while True:
            self._wake.wait(IDLE_POLL)
            self._wake.clear()
            if queue and len(queue) < self._wake_at and type(queue[-1]) is not _Barrier and not self._stop.is_set():
                self._wake.wait(self.spool_interval)  # let a batch gather
                self._wake.clear()
            try:
                self._write(self._drain())
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                self._report("dropped", f"spool write failed: {exc!r}", counter="dropped")
            if self._stop.is_set() and not self._queue:
                return

    def _drain(self) -> list:
        """Everything queued so far, in order."""
        queue, items = self._queue, []
        while queue:
            items.append(queue.popleft())
        self._space.set()
        return items

    def _write(self, items: list) -> None:
        """Encode items in order and append them; a barrier lands after everything before it."""
        lines: list[bytes] = []
        for item in items:
            if isinstance(item, _Barrier):
                self._append(lines)
                lines = []
                self._post_barrier(item)
                continue
            line = self._encode(item)
            if line is not None:
                lines.append(line)
        self._append(lines)

    def spool_records(self, records: list, rendered: list[bytes | None], fallback: Callable[[Any], Any]) -> None:
        """Spool request records on the caller's thread, in order: ``rendered`` holds their lines, None for
        the ones ``fallback(record)`` (a ``submit``-style record) must build. For a caller that has nothing
        else to do meanwhile (the forwarder's loop): no queue, no thread hand-over. Not to be mixed with
        ``log()``/``submit()`` calls of other threads (their order would not be kept)."""
        lines: list[bytes] = []
        for record, line in zip(records, rendered, strict=True):
            if line is None:
                line = self._encode_record(record, fallback)
            if line is not None:
                lines.append(line)
        self._append(lines)

    def _encode_record(self, record: Any, fallback: Callable[[Any], Any]) -> bytes | None:
        """A record's line by the full path; None (counted, reported) if it makes no event."""
        try:
            item = fallback(record)
        except Exception as exc:  # noqa: BLE001 - a malformed record must not stop the others
            self._count(logged=1)
            self._report("invalid", f"request record is invalid: {exc!r}", counter="invalid")
            return None
        return self._encode(item)

    def _append(self, lines: list[bytes]) -> None:
        """Spool validated lines (counting what did not fit) and tell the sender when it has something to
        do: start lingering over a first event, or send a full batch (waking it for less costs the
        application's threads a GIL hand-over each time)."""
        if not lines:
            return
        kept = self._spool.append(lines)
        self._count(logged=len(lines))
        if kept < len(lines):
            self._report("dropped", f"spool full: {len(lines) - kept} events dropped", len(lines) - kept,
                         counter="dropped")
        pending = self._spool.pending
        if kept and (pending <= kept or pending >= self.batch_size):
            with self._cv:
                self._cv.notify()

    def _post_barrier(self, barrier: _Barrier) -> None:
        """Hand a flush() marker to the sender, due once everything spooled so far is sealed."""
        barrier.position = self._spool.appended
        with self._cv:
            self._barriers.append(barrier)
            self._cv.notify()

    def _encode(self, item: Any) -> bytes | None:
        """One NDJSON line, validated against trailseal.event's schema; None (counted, reported) if invalid.
        (The server makes the canonical form; the client only has to send what it will accept.)"""
        try:
            if type(item) is tuple:  # log() and emit(): (ns, id, fields, request context)
                event = msgspec.convert(self._build(item), Event)
                check_value(event.attributes, "attributes", 1)
            else:  # submit(): a record that builds its event
                event = item.to_event(new_id(), self._clock(item.ns), self._source, self.log_name)
            line = _encoder.encode(event)
            if len(line) > MAX_EVENT_BYTES - 64:  # the server adds `received`
                raise EventError(f"event is {len(line)} bytes; the limit is {MAX_EVENT_BYTES}")
        except Exception as exc:  # noqa: BLE001 - one bad event must not take its group down
            self._count(logged=1)
            event_id = item[1] if type(item) is tuple else None
            self._report("invalid", f"event {event_id or ''} is invalid: {exc}", counter="invalid")
            return None
        return line + b"\n"

    def _build(self, item: tuple) -> dict[str, Any]:
        """The event dict from log()'s arguments (reused in place): known fields stay at the top level,
        the others become attributes."""
        ns, event_id, event, ctx = item
        event["id"] = event_id or new_id()
        event["source"] = self.source
        event["actor"] = self._actor(event.get("actor"), ctx)
        given = event.get("time")
        event["time"] = self._clock(ns) if given is None else self._time(given)
        if "category" not in event:
            event["category"] = "system"
        if "outcome" not in event:
            event["outcome"] = "success"
        if self.log_name:
            event["log"] = self.log_name
        extra = [key for key in event if key not in EVENT_FIELDS]
        if extra:
            attributes = event["attributes"] = dict(event.get("attributes") or {})
            for key in extra:
                attributes[key] = event.pop(key)
        if type(event.get("target")) is str:
            event["target"] = {"id": event["target"]}
        if ctx and "request" not in event and ctx[1].trace_id:
            event["request"] = {"trace_id": ctx[1].trace_id, "span_id": ctx[1].span_id}
        return event

    def _actor(self, actor: Any, ctx: tuple | None) -> dict[str, Any]:
        """A dict as given; a user id or object, else the request's actor — both with the request's IP
        and user agent; else the client's default."""
        if type(actor) is dict:
            return actor
        resolved = actor_dict(actor) if actor is not None else None
        if ctx is None:
            return resolved or self.default_actor
        resolved = resolved or ctx[0]
        return with_origin(resolved, ctx[1]) if resolved else self.default_actor

    def _time(self, given: Any) -> str:
        """A given event time (datetime or RFC 3339), normalized."""
        if isinstance(given, datetime):
            return format_time(given)
        if isinstance(given, str):
            return normalize_time(given)
        raise EventError(f"time must be a datetime or an RFC 3339 string, not {type(given).__name__}", "time")

    # -- the sender thread: spool -> server ------------------------------------------------------
    def _send_loop(self) -> None:
        """Send due batches in order, backing off after each failed attempt."""
        attempt = 0
        while self._wait_for_batch():
            try:
                batch = self._spool.read(self.batch_size, self.max_batch_bytes)
                attempt = 0 if self._deliver(batch) else attempt + 1
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                self._report("send", f"sender failed: {exc!r}")
                attempt += 1
            with self._cv:
                self._release_barriers()
            if attempt:
                self._stop.wait(backoff(attempt, self._retry_after, self.max_backoff))

    def _wait_for_batch(self) -> bool:
        """Block until a batch is due: full, lingered ``flush_interval``, or flushed; False when stopping."""
        first_seen = None
        with self._cv:
            while not self._stop.is_set():
                self._release_barriers()
                pending = self._spool.pending
                if pending >= self.batch_size or (pending and self._barriers):
                    return True
                if pending:
                    first_seen = first_seen or time.monotonic()
                    remaining = self.flush_interval - (time.monotonic() - first_seen)
                    if remaining <= 0:
                        return True
                    self._cv.wait(remaining)
                else:
                    first_seen = None
                    self._cv.wait(1.0)
        return False

    def _deliver(self, batch: Batch) -> bool:
        """Send a batch until the server answers for every event in it; False if it must be retried."""
        if not batch.count:
            return True
        reply = self._transport.attempt(batch.body(), self.compress)
        self._retry_after = reply.retry_after
        if reply.kind == "ok":
            self._settle(batch, reply)
            return True
        if reply.kind == "split":
            return self._split(batch, reply)
        self._count(retries=1)
        self._report("send", self._describe(reply, batch.count))
        return False

    def _split(self, batch: Batch, reply: Reply) -> bool:
        """Halve a batch the server refused as a whole; a single event refused so is rejected for good."""
        if len(batch.lines) == 1:
            self._reject(batch.lines[0], {"status": reply.status, "reason": reply.body.get("error", "")})
            self._spool.ack(batch)
            return True
        half = len(batch.lines) // 2
        start = batch.end - len(batch.data)
        first = Batch(batch.lines[:half], batch.segment, start + sum(map(len, batch.lines[:half])))
        return self._deliver(first) and self._deliver(Batch(batch.lines[half:], batch.segment, batch.end))

    def _settle(self, batch: Batch, reply: Reply) -> None:
        """Count receipts, keep per-event refusals, and acknowledge the batch in the spool."""
        for error in reply.body.get("errors") or []:
            position = error.get("position")
            if isinstance(position, int) and 0 <= position < batch.count:
                self._reject(batch.lines[position], error)
        self._count(sent=len(reply.body.get("receipts") or []), batches=1)
        self._spool.ack(batch)

    def _reject(self, line: bytes, reason: dict) -> None:
        """Keep an event the server refused for good, and report it."""
        self._spool.reject(line, reason)
        self._report("rejected", f"the server refused an event: {reason.get('reason') or reason}",
                     counter="rejected")

    def _release_barriers(self) -> None:
        """Wake flush() callers whose events are all sealed (the caller holds ``_cv``)."""
        acked = self._spool.acked
        while self._barriers and self._barriers[0].position <= acked:
            self._barriers.pop(0).done.set()

    def _describe(self, reply: Reply, count: int) -> str:
        """A one-line account of a failed attempt."""
        what = f"HTTP {reply.status}" if reply.status else "no answer"
        return f"{count} events not sealed yet ({what}: {reply.body.get('error', '')}); retrying"

    # -- accounting ------------------------------------------------------------------------------
    def _count(self, **increments: int) -> None:
        """Add to the stats counters."""
        with self._counts_lock:
            for name, value in increments.items():
                setattr(self._counts, name, getattr(self._counts, name) + value)

    def _report(self, kind: str, message: str, count: int = 1, counter: str | None = None) -> None:
        """Count, call on_error, and log at most every LOG_EVERY seconds per kind."""
        if counter:
            self._count(**{counter: count})
        if self.on_error is not None:
            try:
                self.on_error(ClientError(kind, message, count))
            except Exception:  # noqa: BLE001 - a failing callback must not break the client
                pass
        now = time.monotonic()
        if now - self._last_logged.get(kind, -LOG_EVERY) >= LOG_EVERY:
            self._last_logged[kind] = now
            logger.warning("trailseal: %s", message)


class AsyncClient:
    """The same client for asyncio code: ``log()`` is a plain call (it never waits), ``flush``/``close``
    are awaitable; the writer and sender run on their own threads so a busy event loop delays nothing."""

    def __init__(self, url: str, token: str, **options: Any):
        options.setdefault("max_block", 0.0)
        self._client = Client(url, token, **options)

    def log(self, category: str = "system", action: str | None = None, outcome: str = "success",
            actor: Any = None, **fields: Any) -> str | None:
        """Queue one event; returns its id (None if it was dropped)."""
        return self._client.log(category, action, outcome, actor, **fields)

    def emit(self, fields: dict[str, Any]) -> None:
        """Queue an event given as a dict of log()'s arguments, without waiting for its id."""
        self._client.emit(fields)

    def submit(self, record: Any) -> None:
        """Queue an event built later by ``record.to_event`` (what the middleware uses)."""
        self._client.submit(record)

    def forwarder(self) -> Forwarder:
        """The client's forwarder subprocess (what the middleware uses by default)."""
        return self._client.forwarder()

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters."""
        return self._client.stats

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything logged before is sealed; False on timeout."""
        return await asyncio.to_thread(self._client.flush, timeout)

    async def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout`` s, then spool what is left and stop; True if all sealed."""
        return await asyncio.to_thread(self._client.close, timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _close_at_exit(ref: weakref.ref) -> None:
    """At interpreter exit: a short flush, then everything left goes to the spool."""
    client = ref()
    if client is not None:
        client.close(timeout=2.0)


def _reset_children() -> None:
    """After fork(), in the child: new ids and a fresh start for every client."""
    global new_id
    new_id = Ids()  # a child must not repeat its parent's ids
    for client in list(_clients):
        client._after_fork()


os.register_at_fork(after_in_child=_reset_children)

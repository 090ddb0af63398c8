"""Request records out of the application process: the middleware's raw facts of each request go, in
batches, to a forwarder subprocess that builds, validates, spools and sends the events.

On the request's thread ``Forwarder.put`` appends one tuple to a list. ``interval`` after the first
record of a batch (or once ``batch`` records wait) what waits is encoded as one msgpack frame and
written to the forwarder's stdin: one ``write`` per batch. Under an event loop (ASGI) the loop itself
does that, in a ``call_later`` callback with a non-blocking write — no thread of the app competes with
the loop for the GIL; elsewhere (WSGI threads) a hand-over thread does. That thread also starts and
restarts the forwarder (``trailseal.sdk.forwarder_process``), which runs an ordinary ``Client`` with the
app client's options.

Guarantees: ``put`` never blocks and never raises (past ``max_queue`` waiting records a record is dropped
and counted); records keep their order; ``flush()``/``close()`` (and so the client's, and exit) hand over
everything and wait for the forwarder to seal it; a SIGKILLed app loses only the records not handed over
yet — at most ``interval`` worth or ``batch`` records, more only while the forwarder stalls — since the
forwarder reads to the end of the pipe and then closes its client (sealing or spooling what it holds).
A forwarder that dies is restarted (counted in ``stats.forwarder_restarts``); after ``max_restarts``
the records are built in the app process (``Client.submit``) instead. The frames in the pipe and the
records inside a forwarder that died are lost with it (its spooled events are replayed).

The forwarder starts lazily, on the first record of the process: after a pre-fork server's fork, each
worker starts its own.
"""

from __future__ import annotations

import itertools
import os
import select
import struct
import subprocess
import sys
import threading
import time
from asyncio import _get_running_loop as running_loop
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from trailseal.frames import widen_pipe

RECORDS, FLUSH, AUDITOR, CLOSE, CONFIG = 0, 1, 2, 3, 4
HEADER = struct.Struct(">I")


def frame(encoder: msgspec.msgpack.Encoder, message: list) -> bytes:
    """One length-prefixed msgpack message."""
    body = encoder.encode(message)
    return HEADER.pack(len(body)) + body


def write_all(fd: int, data: bytes, deadline: float | None = None) -> bool:
    """Write all of ``data`` to a (non-blocking) fd, waiting for room until the deadline; False past it."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            select.select([], [fd], [], remaining)
    return True


class FrameReader:
    """Length-prefixed frames from an fd, with a deadline (None: wait for ever). Frames are decoded in
    place from what was read (a read position, not a buffer shifted per frame)."""

    def __init__(self, fd: int):
        self.fd, self.data, self.at = fd, b"", 0
        self.decoder = msgspec.msgpack.Decoder()

    def buffered(self) -> Any:
        """The next message if it has been read in full already, else None (never reads)."""
        data, at = self.data, self.at
        if len(data) - at >= 4:
            end = at + 4 + HEADER.unpack_from(data, at)[0]
            if len(data) >= end:
                self.at = end
                return self.decoder.decode(memoryview(data)[at + 4:end])
        return None

    def read(self, deadline: float | None = None) -> Any:
        """The next message; None at the end of the stream or past the deadline."""
        while True:
            message = self.buffered()
            if message is not None:
                return message
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                    return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.data, self.at = self.data[self.at:] + chunk, 0


def auditor_config(auditor: Any) -> list:
    """What the forwarder needs to render an auditor's events: its login paths and trusted proxies."""
    return [list(auditor.auth_paths), list(auditor.trusted_proxies)]


class Forwarder:
    """One app process's side of a forwarder subprocess (see the module docstring)."""

    def __init__(self, options: dict[str, Any], report: Callable[..., None], fallback: Callable[[Any], None], *,
                 interval: float = 0.005, batch: int = 256, max_queue: int = 10_000, max_restarts: int = 5,
                 poll: float = 0.5):
        self.options, self.report, self.fallback = options, report, fallback
        self.interval, self.batch, self.max_queue, self.max_restarts = interval, batch, max_queue, max_restarts
        self.fill = min(batch, max_queue) - 1  # records a batch holds before its last (put's fast path)
        self.poll = poll  # the hand-over thread's look at the buffer when nothing woke it
        self.auditors: list[Any] = []
        self.encoder = msgspec.msgpack.Encoder(enc_hook=str)  # an odd actor value travels as its text
        self.tokens = itertools.count(1)
        self._fresh()

    def _fresh(self) -> None:
        """No forwarder, thread or waiting records (at start, and in a forked child)."""
        self.buffer: list[tuple] = []
        self.unsent: deque[list] = deque()  # [frame, records in it]: written in order, the first maybe in part
        self.offset = 0  # bytes of the first unsent frame already written
        self.backlog = 0  # records in unsent frames: past max_queue, records wait in the buffer (bounded)
        self.lock, self.reply_lock = threading.Lock(), threading.Lock()
        self.wake, self.stop = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        self.proc: subprocess.Popen | None = None
        self.fd, self.replies = -1, None
        self.closed = self.in_process = False
        self.forwarded = self.restarts = 0

    # -- the request's thread ----------------------------------------------------------------------
    def put(self, record: tuple) -> None:
        """Queue one record. The hot path is an append to a batch under way; a batch's first and last
        records (and any past it: a stalled forwarder) take ``_put_slowly``."""
        buffer = self.buffer
        if 0 < len(buffer) < self.fill:
            buffer.append(record)
        else:
            self._put_slowly(record)

    def _arm(self, count: int) -> None:
        """Have what waits handed over: by the running event loop (in ``interval``, or now for a full batch),
        else by the hand-over thread."""
        try:
            loop = running_loop()
            if loop is None:
                self.wake.set()
            elif count == 1:
                loop.call_later(self.interval, self.from_loop)
            else:
                self.from_loop()
        except Exception as exc:  # noqa: BLE001 - never into application code (the thread's poll takes over)
            self.report("send", f"request events wait for the hand-over thread: {exc!r}")

    def _put_slowly(self, record: tuple) -> None:
        """A batch's first record (starting the hand-over thread on the first of the process) or last, or
        one that does not fit."""
        try:
            if self.thread is None:
                self._start_thread()
            buffer = self.buffer
            if len(buffer) < self.max_queue and not self.closed:
                buffer.append(record)
                count = len(buffer)
                if count == 1 or count == self.batch:  # start the batch's timer, or hand a full one over
                    self._arm(count)
                return
            reason = "the client is closed" if self.closed else f"{self.max_queue} requests wait for the forwarder"
            self.report("dropped", f"request event dropped: {reason}", counter="dropped")
        except Exception as exc:  # noqa: BLE001 - never into application code
            self.report("dropped", f"request event dropped: {exc!r}", counter="dropped")

    def _start_thread(self) -> None:
        with self.lock:
            if self.thread is None and not self.closed:
                self.thread = threading.Thread(target=self._run, name="trailseal-handover", daemon=True)
                self.thread.start()

    def from_loop(self) -> None:
        """On the event loop: hand over what waits without blocking (again later if the pipe is full)."""
        if not self.lock.acquire(blocking=False):  # the thread is at it (or a flush): it takes these too
            self.wake.set()
            return
        try:
            if self.proc is not None:
                self._hand_over()
                self._write(None)
            ready = self.proc is not None and not self.unsent
        except Exception as exc:  # noqa: BLE001 - never into application code
            self.report("dropped", f"request events lost: {exc!r}", counter="dropped")
            ready = True
        finally:
            self.lock.release()
        if not ready:  # not started yet, gone, or a full pipe: the thread waits for it
            self.wake.set()

    def register(self, auditor: Any) -> int:
        """Number a middleware's auditor (records name it); a running forwarder learns it at once."""
        with self.lock:
            self.auditors.append(auditor)
            index = len(self.auditors) - 1
            if self.proc is not None:
                self._queue_frame([AUDITOR, index, *auditor_config(auditor)], 0)
                self._write(time.monotonic() + 1.0)
        return index

    # -- the hand-over thread ----------------------------------------------------------------------
    def _run(self) -> None:
        """Start the forwarder; then, when woken (or every ``poll``), hand over and write what waits."""
        while not self.closed:
            with self.lock:
                try:
                    self._hand_over()
                    self._deliver(time.monotonic() + self.poll)  # a stalled forwarder: let go of the lock now and then
                except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                    self.report("dropped", f"request events lost: {exc!r}", counter="dropped")
            if self.wake.wait(self.poll) and not self.closed:
                self.stop.wait(self.interval)  # let a batch gather
            self.wake.clear()

    def _hand_over(self) -> None:
        """Frame what waits, in order (the caller holds ``lock``)."""
        buffer = self.buffer
        count = len(buffer)
        if not count or (self.backlog >= self.max_queue and not self.in_process):
            return  # a stalled forwarder: what waits stays in the (bounded) buffer
        records = buffer[:count]
        del buffer[:count]  # slicing, not swapping lists: an append racing with this stays in the buffer
        if self.in_process:
            self._build_unsent()
            self._build_here(records)
            return
        try:
            self._queue_frame([RECORDS, records], count)
        except Exception:  # noqa: BLE001 - an unencodable record: sort them out one by one
            good = self._encodable(records)
            self._queue_frame([RECORDS, good], len(good))

    def _queue_frame(self, message: list, count: int) -> None:
        self.unsent.append([frame(self.encoder, message), count])
        self.backlog += count

    def _encodable(self, records: list[tuple]) -> list[tuple]:
        """The records that encode; the others counted as invalid."""
        good = []
        for record in records:
            try:
                self.encoder.encode(record)
                good.append(record)
            except Exception as exc:  # noqa: BLE001
                self.report("invalid", f"request event not encodable: {exc!r}", counter="invalid")
        return good

    def _build_here(self, records: list) -> None:
        """Fallback: the app's own client builds the events (no forwarder can be kept running)."""
        from trailseal.sdk.web import Forwarded

        for record in records:
            self.fallback(Forwarded(self.auditors[record[0]], record))

    def _write(self, deadline: float | None) -> bool:
        """Write unsent frames in order until done, the pipe is full (deadline None) or past the
        deadline; True when all are written. A broken pipe drops the forwarder (the thread restarts it)."""
        unsent = self.unsent
        try:
            while unsent:
                data, count = unsent[0]
                view = memoryview(data)[self.offset:]
                while view:
                    try:
                        written = os.write(self.fd, view)
                    except BlockingIOError:
                        if deadline is None:
                            return False
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        select.select([], [self.fd], [], min(remaining, 1.0))
                        continue
                    self.offset += written
                    view = view[written:]
                unsent.popleft()
                self.offset = 0
                self.forwarded += count
                self.backlog -= count
        except OSError as exc:
            self.offset = 0  # the next forwarder gets the whole frame
            self._lost(f"the forwarder is gone ({exc!r})")
            return False
        return True

    def _deliver(self, deadline: float) -> bool:
        """Write what is unsent, (re)starting the forwarder as needed, waiting for room until the deadline;
        past ``max_restarts``, build what is unsent here. True when all is written."""
        while not self.in_process:
            if (self.proc is None or self.proc.poll() is not None) and not self._spawn():
                continue
            if self._write(deadline):
                return True
            if self.proc is not None:  # alive, but no room before the deadline
                return False
        self._build_unsent()
        return True

    def _build_unsent(self) -> None:
        """Fallback for the frames no forwarder took: their records, in order, built here."""
        while self.unsent:
            message = msgspec.msgpack.decode(self.unsent.popleft()[0][4:])
            if message[0] == RECORDS:
                self._build_here(message[1])
        self.offset = self.backlog = 0

    def _spawn(self) -> bool:
        """Start a forwarder and configure it; False (and counted) if it failed."""
        if self.proc is not None:
            self._lost(f"the forwarder exited with status {self.proc.returncode}")
            if self.in_process:
                return False
        try:
            paths = os.pathsep.join(p for p in sys.path if p)  # it imports trailseal as this process does
            proc = subprocess.Popen([sys.executable, "-m", "trailseal.sdk.forwarder_process"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, start_new_session=True,
                                    env={**os.environ, "PYTHONPATH": paths})
            self.proc, self.fd, self.replies = proc, proc.stdin.fileno(), FrameReader(proc.stdout.fileno())
            widen_pipe(proc.stdin)  # where refused, the default pipe size (64 KiB) does too
            auditors = [auditor_config(a) for a in self.auditors]
            write_all(self.fd, frame(self.encoder, [CONFIG, self.options, auditors]))
            os.set_blocking(self.fd, False)
            return True
        except OSError as exc:
            self._lost(f"the forwarder could not start ({exc!r})")
            return False

    def _lost(self, reason: str) -> None:
        """Count a forwarder that died; past ``max_restarts`` build events in this process."""
        self.restarts += 1
        self._drop_process()
        self.in_process = self.restarts > self.max_restarts
        then = "building request events in the app process" if self.in_process else "restarting it"
        self.report("send", f"{reason}; {then}")

    def _drop_process(self) -> None:
        """Forget the forwarder (closing our ends of its pipes)."""
        proc, self.proc, self.fd, self.replies = self.proc, None, -1, None
        self.offset = 0  # a frame begun for it starts over for the next one
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass

    # -- flush, close, fork ------------------------------------------------------------------------
    def flush(self, timeout: float | None) -> bool:
        """Hand over what waits and wait until the forwarder has sealed all it has; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.reply_lock:
            with self.lock:
                self._hand_over()
                if self.proc is None and not self.unsent:
                    return True
                token = next(self.tokens)
                self._queue_frame([FLUSH, token, timeout], 0)
                if not self._deliver(deadline or float("inf")) or self.replies is None:
                    return self.in_process
                replies = self.replies
            while True:
                reply = replies.read(deadline)
                if reply is None:
                    return False
                if reply[0] == FLUSH and reply[1] == token:
                    return bool(reply[2])

    def close(self, timeout: float) -> bool:
        """Hand everything over, let the forwarder seal (or spool) it and exit; True if all was sealed."""
        self.closed = True
        self.wake.set()
        self.stop.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout + 1)
        with self.lock:
            self._hand_over()
            if self.proc is None and not self.unsent:
                return True
            self._queue_frame([CLOSE, timeout], 0)
            self._deliver(time.monotonic() + timeout)
            proc = self.proc
            self._drop_process()  # the end of its input: it closes its client and exits
        if proc is None:
            return True
        try:
            return proc.wait(timeout + 10) == 0
        except subprocess.TimeoutExpired:
            self.report("send", "the forwarder did not finish in time; it goes on in the background")
            return False

    def after_fork(self) -> None:
        """In a forked child: the parent's forwarder and records are the parent's; start afresh."""
        proc = self.proc
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()  # this process's copies: the parent's forwarder must see its end of input
                except OSError:
                    pass
            proc.returncode = 0  # not our child: never wait for it
        self._fresh()

"""Where alerts go, and how delivery fails safely.

Every network sink retries with exponential backoff; an alert that never gets through (or that
the far end refuses for good, e.g. HTTP 400 or SMTP 550) is appended to the dead-letter file
(`alerts.dead-letter` in the data dir, one JSON object per line: when, which sink, why, the alert).
Each sink runs in its own thread (`Background`), so a slow or unreachable sink never holds up
detection or the other sinks. Nothing is dropped silently: a full queue or a shutdown with alerts
still pending dead-letters them too.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("trailseal.alerts")


class Undeliverable(Exception):
    """The far end refused the alert in a way retrying cannot fix: dead-letter it at once."""


class RetryLater(Exception):
    """A temporary refusal; `after` is the delay the far end asked for (e.g. HTTP Retry-After)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class DeadLetter:
    """An append-only JSON-lines file of alerts that could not be delivered, with the reason."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, sink: str, alert: dict[str, Any], problem: str) -> None:
        record = {"failed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "sink": sink,
                  "error": problem, "alert": alert}
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)

    def read(self) -> list[dict[str, Any]]:
        """Every dead-lettered record, oldest first."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text("utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Retry:
    """Exponential backoff: attempt n waits backoff * 2**n seconds, at most max_backoff."""

    attempts: int = 5
    backoff: float = 0.2
    max_backoff: float = 5.0

    def delay(self, attempt: int, asked: float | None = None) -> float:
        if asked is not None:  # the far end said when: honour it, within reason
            return max(0.0, min(asked, 60.0))
        return min(self.max_backoff, self.backoff * 2**attempt)


class RetryingSink(ABC):
    """A sink whose `deliver` may fail: retried with backoff, then dead-lettered."""

    name = "sink"

    def __init__(self, dead_letter: DeadLetter | Path | None = None, retry: Retry | None = None) -> None:
        self.dead_letter = DeadLetter(dead_letter) if isinstance(dead_letter, Path) else dead_letter
        self.retry = retry or Retry()
        self.delivered = 0
        self.failed = 0
        self.aborted = threading.Event()  # set at shutdown: stop waiting between attempts

    @abstractmethod
    def deliver(self, alert: dict[str, Any]) -> None:
        """Send once; raise Undeliverable (permanent) or anything else (retried)."""

    def send(self, alert: dict[str, Any]) -> None:
        problem = "not attempted"
        for attempt in range(self.retry.attempts):
            try:
                self.deliver(alert)
            except Undeliverable as exc:
                problem = f"refused: {exc}"
                break
            except Exception as exc:  # noqa: BLE001 - any failure of one attempt is retried
                problem = f"{type(exc).__name__}: {exc}"
                asked = exc.after if isinstance(exc, RetryLater) else None
                last = attempt + 1 == self.retry.attempts
                if not last and self.aborted.wait(self.retry.delay(attempt, asked)):
                    problem += " (shut down while retrying)"
                    break
            else:
                self.delivered += 1
                return
        self.reject(alert, problem)

    def reject(self, alert: dict[str, Any], problem: str) -> None:
        """Give up on an alert: count it, log it, dead-letter it."""
        self.failed += 1
        log.error("alert sink %s gave up on an alert: %s", self.name, problem)
        if self.dead_letter is not None:
            self.dead_letter.write(self.name, alert, problem)


_STOP = object()


class Background:
    """Runs one sink in its own thread with a bounded queue; `close()` drains it or dead-letters."""

    def __init__(self, sink: Any, max_queued: int = 10_000) -> None:
        self.sink = sink
        self.name = getattr(sink, "name", type(sink).__name__)
        self._queue: queue.Queue = queue.Queue(max_queued)
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"trailseal-sink-{self.name}", daemon=True)
        self._thread.start()

    def send(self, alert: dict[str, Any]) -> None:
        """Queue the alert (never blocks); a full queue dead-letters it."""
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self._reject(alert, f"{self._queue.maxsize} alerts already waiting for this sink")

    def queued(self) -> int:
        """Alerts waiting for this sink (approximate, as queues are)."""
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is _STOP:
                return
            if self._abandon.is_set():
                self._reject(alert, "trailseal shut down before the alert could be delivered")
                continue
            try:
                self.sink.send(alert)
            except Exception:  # noqa: BLE001 - a broken sink must not kill its thread
                log.exception("alert sink %s crashed", self.name)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued within `timeout` seconds; dead-letter whatever is left."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            aborted = getattr(self.sink, "aborted", None)
            if aborted is not None:
                aborted.set()
            self._thread.join(1.0)
        self._drain()
        release = getattr(self.sink, "close", None)
        if release is not None and not self._thread.is_alive():
            release()

    def _drain(self) -> None:
        """Dead-letter what is still queued after close (the worker is stuck or gone)."""
        while True:
            try:
                alert = self._queue.get_nowait()
            except queue.Empty:
                return
            if alert is not _STOP:
                self._reject(alert, "trailseal shut down before the alert could be delivered")

    def _reject(self, alert: dict[str, Any], problem: str) -> None:
        reject = getattr(self.sink, "reject", None)
        if reject is not None:
            reject(alert, problem)
        else:
            log.error("alert sink %s dropped an alert: %s", self.name, problem)

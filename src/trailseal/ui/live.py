"""Live counters for the console: events and failures per source and per minute, last seen.

Fed from the writer's commits (through a queue, so the writer never waits) after a backfill of
the last ``window`` seconds from the store; the sources page, sparklines and charts read these
counters instead of scanning millions of rows on every page load.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from trailseal.ledger.verify import as_bytes

log = logging.getLogger("trailseal.ui")
WINDOW_SECONDS = 24 * 3600
META_LOG = "trailseal"


class _Source(msgspec.Struct):
    component: str = "?"
    kind: str | None = None


class _Seen(msgspec.Struct):
    received: str = ""
    time: str = ""
    outcome: str = ""
    source: _Source = msgspec.field(default_factory=_Source)


_decode = msgspec.json.Decoder(_Seen).decode


@dataclass
class SourceLive:
    log: str
    component: str
    kind: str | None
    events: int = 0
    failures: int = 0
    last_seen: float = 0.0
    last_received: str = ""
    minutes: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def per_minute(self, now: float, count: int = 60) -> list[int]:
        current = int(now // 60)
        return [self.minutes.get(m, 0) for m in range(current - count + 1, current + 1)]


class LiveStats:
    """Counters over the sealed stream, kept current by a background thread."""

    def __init__(self, trail, window: float = WINDOW_SECONDS):
        self.trail, self.window = trail, window
        self.sources: dict[tuple[str, str], SourceLive] = {}
        self.volume: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # minute -> [events, failures]
        self.backfilled = 0
        self.ready = threading.Event()
        self._floor: dict[str, int] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> LiveStats:
        self.trail.sealer.on_commit.append(self._queue.put)
        self._floor = {info.name: info.size for info in self.trail.logs()}
        threading.Thread(target=self._run, name="trailseal-ui-live", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)

    def _run(self) -> None:
        try:
            self._backfill()
        except Exception:  # noqa: BLE001 - the console shows what it has; the failure is logged
            log.exception("console backfill failed")
        self.ready.set()
        while not self._stop.is_set():
            batch = self._queue.get()
            if batch is None:
                return
            with self._lock:
                for event_log, index, data, _ in batch:
                    if index >= self._floor.get(event_log, 0):
                        self._add(event_log, as_bytes(data))
                self._prune(time.time())

    def _backfill(self) -> None:
        """Newest first, each log back to the start of the window."""
        cutoff = time.time() - self.window
        for name, size in self._floor.items():
            end = size
            while end > 0 and not self._stop.is_set():
                start = max(0, end - 20_000)
                rows = list(self.trail.store.read_entries(name, start, end))
                with self._lock:
                    oldest = min((self._add(name, as_bytes(d)) for _, d in rows), default=0.0)
                    self.backfilled += len(rows)
                if oldest < cutoff:
                    break
                end = start

    def _add(self, event_log: str, data: bytes) -> float:
        """Count one sealed entry; its received time (epoch seconds)."""
        seen = _decode(data)
        moment = _epoch(seen.received or seen.time)
        if event_log == META_LOG and seen.source.kind == "trailseal":
            return moment
        key = (event_log, seen.source.component)
        source = self.sources.get(key)
        if source is None:
            source = self.sources[key] = SourceLive(event_log, seen.source.component, seen.source.kind)
        failed = seen.outcome in ("failure", "error")
        source.events += 1
        source.failures += failed
        if moment > source.last_seen:
            source.last_seen, source.last_received = moment, seen.received
        if moment >= time.time() - self.window:
            minute = int(moment // 60)
            source.minutes[minute] += 1
            bucket = self.volume[minute]
            bucket[0] += 1
            bucket[1] += failed
        return moment

    def _prune(self, now: float) -> None:
        oldest = int((now - self.window) // 60)
        if self.volume and min(self.volume) < oldest:
            for minute in [m for m in self.volume if m < oldest]:
                del self.volume[minute]
            for source in self.sources.values():
                for minute in [m for m in source.minutes if m < oldest]:
                    del source.minutes[minute]

    def snapshot_sources(self) -> list[SourceLive]:
        with self._lock:
            return sorted(self.sources.values(), key=lambda s: (s.log, s.component))

    def series(self, now: float, minutes: int, step: int) -> list[tuple[int, int, int]]:
        """(bucket start minute, events, failures) for the last ``minutes``, ``step`` minutes a bucket."""
        current = int(now // 60)
        first = current - minutes + 1
        buckets = []
        with self._lock:
            for start in range(first, current + 1, step):
                events = sum(self.volume[m][0] for m in range(start, start + step) if m in self.volume)
                failures = sum(self.volume[m][1] for m in range(start, start + step) if m in self.volume)
                buckets.append((start, events, failures))
        return buckets


def _epoch(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def live_stats(svc) -> LiveStats:
    """This server's live counters (started on first use)."""
    with _start_lock:
        found = svc.extras.get("ui_live")
        if found is None:
            found = svc.extras["ui_live"] = LiveStats(svc.trail).start()
    return found


_start_lock = threading.Lock()

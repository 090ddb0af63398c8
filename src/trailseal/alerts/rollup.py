"""Alert storm control: per rule, the first N alerts of a minute are raised one by one; further matches in
that minute are rolled up into one alert that lists them, raised when the minute ends.

A noisy rule (a role granted in a bulk import, an admin script running at night) would otherwise seal
and deliver one finding per matching event. Elastic caps a rule run at `max_signals` and drops the rest;
here nothing a rule matched goes unrecorded: the rollup names the matched events (up to
``LISTED_EVENTS``) and how many alerts it stands for, and is sealed and delivered like any alert.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from trailseal.detect.engine import Alert

WINDOW_SECONDS = 60.0
LISTED_EVENTS = 1000  # a finding lists at most this many (log, index) pairs; the count is exact


@dataclass
class _Window:
    """One rule's current minute: when it began, alerts raised in it, and matches held back."""

    start: float
    raised: int = 0
    held: list[Alert] = field(default_factory=list)


class RollupGate:
    """Decides which alerts are raised now and which wait for their rule's rollup (thread-safe)."""

    def __init__(self, per_minute: int, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.per_minute, self.window, self.clock = per_minute, window, clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self.rolled_up = 0  # alerts folded into rollups so far, for /metrics and tests

    def admit(self, alerts: list[Alert]) -> list[Alert]:
        """The alerts to raise now: those within their rule's budget, then the rollups whose minute ended."""
        if self.per_minute <= 0:
            return alerts
        now = self.clock()
        with self._lock:
            ready = self._ended(now)
            for alert in alerts:
                window = self._windows.get(alert.rule_id)
                if window is None or now - window.start >= self.window:
                    if window is not None and window.held:
                        ready.append(_rollup(window.held))
                    window = self._windows[alert.rule_id] = _Window(now)
                if window.raised < self.per_minute:
                    window.raised += 1
                    ready.append(alert)
                else:
                    window.held.append(alert)
                    self.rolled_up += 1
        return ready

    def due(self) -> list[Alert]:
        """Rollups of minutes that have ended (the watch thread asks every few seconds)."""
        with self._lock:
            return self._ended(self.clock())

    def flush(self) -> list[Alert]:
        """Every held match as rollups now (the service is stopping)."""
        with self._lock:
            ready = [_rollup(w.held) for w in self._windows.values() if w.held]
            self._windows.clear()
        return ready

    def _ended(self, now: float) -> list[Alert]:
        ready = []
        for rule_id, window in list(self._windows.items()):
            if now - window.start >= self.window:
                if window.held:
                    ready.append(_rollup(window.held))
                del self._windows[rule_id]
        return ready


def _rollup(held: list[Alert]) -> Alert:
    """One alert for a rule's held matches: their events in order, the time span, and how many."""
    first = held[0]
    events = [pair for alert in held for pair in alert.events]
    times = [t for alert in held for t in (alert.first_time, alert.last_time) if t]
    return replace(first, title=f"{first.title} ({len(held)} more matches rolled up)", events=events[:LISTED_EVENTS],
                   group=None, first_time=min(times, default=None), last_time=max(times, default=None),
                   rolled_up=len(held))

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
class _Held:
    """A rule's matches held back in one minute, folded as they come (memory bounded by
    ``LISTED_EVENTS``, not by the storm): the first alert, the events listed so far, how many, when."""

    first: Alert
    events: list = field(default_factory=list)
    count: int = 0
    first_time: str | None = None
    last_time: str | None = None

    def add(self, alert: Alert) -> None:
        self.count += 1
        room = LISTED_EVENTS - len(self.events)
        if room > 0:
            self.events.extend(alert.events[:room])
        for moment in (alert.first_time, alert.last_time):
            if moment:
                if self.first_time is None or moment < self.first_time:
                    self.first_time = moment
                if self.last_time is None or moment > self.last_time:
                    self.last_time = moment

    def rollup(self) -> Alert:
        """One alert for the held matches: their events in order, the time span, and how many."""
        first = self.first
        return replace(first, title=f"{first.title} ({self.count} more matches rolled up)", events=self.events,
                       group=None, first_time=self.first_time, last_time=self.last_time, rolled_up=self.count)


@dataclass
class _Window:
    """One rule's current minute: when it began, alerts raised in it, and the matches held back."""

    start: float
    raised: int = 0
    held: _Held | None = None

    def hold(self, alert: Alert) -> None:
        if self.held is None:
            self.held = _Held(alert)
        self.held.add(alert)


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
                        ready.append(window.held.rollup())
                    window = self._windows[alert.rule_id] = _Window(now)
                if window.raised < self.per_minute:
                    window.raised += 1
                    ready.append(alert)
                else:
                    window.hold(alert)
                    self.rolled_up += 1
        return ready

    def due(self) -> list[Alert]:
        """Rollups of minutes that have ended (the watch thread asks every few seconds)."""
        with self._lock:
            return self._ended(self.clock())

    def flush(self) -> list[Alert]:
        """Every held match as rollups now (the service is stopping)."""
        with self._lock:
            ready = [w.held.rollup() for w in self._windows.values() if w.held]
            self._windows.clear()
        return ready

    def _ended(self, now: float) -> list[Alert]:
        ready = []
        for rule_id, window in list(self._windows.items()):
            if now - window.start >= self.window:
                if window.held:
                    ready.append(window.held.rollup())
                del self._windows[rule_id]
        return ready

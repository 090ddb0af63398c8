"""Silent sources: a component that used to send events and has gone quiet."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from trailseal.detect.derived import epoch_seconds
from trailseal.detect.engine import Alert

SILENT_RULE_ID = "trailseal-silent-source"


class SilentSourceWatch:
    """Remembers when each (log, source.component) last sent; ``check(now)`` names the quiet ones.

    Time is the trusted ``received`` clock (``time`` when absent). A source alerts once per
    silence and is re-armed by its next event. At most ``max_sources`` are tracked (LRU).
    """

    def __init__(self, threshold: float | timedelta, max_sources: int = 100_000, level: str = "high") -> None:
        self.threshold = threshold.total_seconds() if isinstance(threshold, timedelta) else float(threshold)
        self.max_sources = max_sources
        self.level = level
        self._last: OrderedDict[tuple[str, str], tuple[float, str, object]] = OrderedDict()
        self._silent: set[tuple[str, str]] = set()

    def observe(self, event: dict) -> None:
        """Note that the event's source is alive."""
        source = event.get("source") or {}
        if source.get("kind") == "trailseal":
            return  # our own meta events come and go with readers; they are not a monitored source
        component = source.get("component")
        stamp = event.get("received") or event.get("time")
        moment = epoch_seconds(stamp)
        if not component or moment is None:
            return
        key = (event.get("log", "default"), component)
        previous = self._last.get(key)
        if previous is not None and previous[0] > moment:
            return
        self._last[key] = (moment, stamp, event.get("index"))
        self._last.move_to_end(key)
        self._silent.discard(key)
        if len(self._last) > self.max_sources:
            evicted, _ = self._last.popitem(last=False)
            self._silent.discard(evicted)

    def check(self, now: float | datetime | str) -> list[Alert]:
        """Alerts for sources quiet longer than the threshold at `now` (once per silence)."""
        moment = _seconds(now)
        alerts = []
        for key, (seen, stamp, index) in self._last.items():
            if moment - seen > self.threshold and key not in self._silent:
                self._silent.add(key)
                alerts.append(self._alert(key, stamp, index))
        return alerts

    def _alert(self, key: tuple[str, str], stamp: str, index: object) -> Alert:
        log, component = key
        return Alert(
            rule_id=SILENT_RULE_ID,
            title=f"Source {component} silent for over {self.threshold:g}s",
            level=self.level,
            author="trailseal",
            tags=["nist.au-5", "pci-dss.10.7"],
            events=[(log, index)],
            group={"log": log, "source.component": component},
            first_time=stamp,
            last_time=stamp,
        )


def _seconds(now: float | datetime | str) -> float:
    if isinstance(now, datetime):
        return now.timestamp()
    if isinstance(now, str):
        value = epoch_seconds(now.replace("Z", "+00:00") if now.endswith("Z") else now)
        if value is None:
            raise ValueError(f"not an RFC 3339 time: {now!r}")
        return value
    return float(now)

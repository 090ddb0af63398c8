"""Detection on the sealed stream: every committed event goes through the Sigma engine in a
background thread; each alert is sealed as a `finding` event in the `trailseal` log (pointing at
the sealed indices that caused it) and then handed to the sinks."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import msgspec

from trailseal.alerts.rollup import RollupGate
from trailseal.alerts.worker import DetectorProcess
from trailseal.detect.engine import BUILTIN_DIR, Alert, Engine
from trailseal.detect.watch import SilentSourceWatch
from trailseal.event import from_dict

log = logging.getLogger("trailseal.alerts")
ALERT_ACTION = "detect.alert"
_decode = msgspec.json.Decoder().decode  # the sealed bytes are canonical JSON
LEVELS = {"informational": "info", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}


class DetectionService:
    """Feeds sealed events to the engine; seals and delivers the alerts."""

    def __init__(self, trail, engine: Engine, sinks: list, silent_after: float = 600.0,
                 per_rule_per_minute: int = 0, child: str | None = None):
        """``child``: a data dir whose config a detector child process loads (alerts/worker.py); the engine,
        the silent-source watch and storm control then run there, and ``engine`` (with this process's own
        storm control) here only if the child is gone."""
        self.trail, self.engine, self.sinks = trail, engine, sinks
        self.child_dir = child
        self.child: DetectorProcess | None = None
        self.silent = SilentSourceWatch(silent_after)
        self.gate = RollupGate(per_rule_per_minute)  # storm control; 0 raises every alert on its own
        self._silent_lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self.delivered = 0
        self._threads = [threading.Thread(target=self._run, name="trailseal-detect", daemon=True),
                         threading.Thread(target=self._watch, name="trailseal-silent", daemon=True)]

    def start(self) -> DetectionService:
        if self.child_dir is not None:
            try:
                self.child = DetectorProcess(self.child_dir, self._raise)  # the child applied storm control
            except OSError:
                log.exception("cannot start the detector process; detecting in this process")
        self.trail.sealer.on_commit.append(self._queue.put)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop detecting, then give each sink `timeout` seconds to deliver what it holds."""
        self._stop.set()
        self._queue.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        if self.child is not None:
            self.child.stop(timeout)  # it answers for what it holds before it exits
        held = self.gate.flush()
        if held:
            self._raise(held)
        deadline = time.monotonic() + timeout
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close(max(0.1, deadline - time.monotonic()))

    def sink_stats(self) -> dict[str, dict[str, int]]:
        """Per sink: alerts delivered, given up on (dead-lettered), and waiting in its queue."""
        stats = {}
        for sink in self.sinks:
            inner = getattr(sink, "sink", sink)
            stats[getattr(sink, "name", type(sink).__name__)] = {
                "delivered": getattr(inner, "delivered", 0), "failed": getattr(inner, "failed", 0),
                "queued": sink.queued() if hasattr(sink, "queued") else 0}
        return stats

    def _run(self) -> None:
        while not self._stop.is_set():
            sealed = self._queue.get()
            if sealed is None:
                return
            try:
                if self.child is None or not self.child.send(sealed):
                    self._detect(sealed)
            except Exception:  # noqa: BLE001 - detection must never stop; the failure is logged
                log.exception("detection failed on a batch")

    def _detect(self, sealed: list[tuple[str, int, bytes, tuple]]) -> None:
        with self._silent_lock:
            alerts = detect_batch(self.engine, self.silent, sealed)
        self._admit(alerts)

    def _admit(self, alerts: list[Alert]) -> None:
        """Raise what storm control lets through now (and rollups whose minute ended)."""
        ready = self.gate.admit(alerts)
        if ready:
            self._raise(ready)

    def _watch(self) -> None:
        """Every few seconds, ask which sources went quiet."""
        while not self._stop.wait(min(5.0, max(0.2, self.silent.threshold / 4))):
            try:
                with self._silent_lock:  # the detect thread updates the same sources
                    alerts = self.silent.check(time.time())
                alerts = self.gate.admit(alerts)
                if alerts:
                    self._raise(alerts)
            except Exception:  # noqa: BLE001 - the watch must keep watching; the failure is logged
                log.exception("silent-source check failed")

    def _raise(self, alerts: list[Alert]) -> None:
        events = [finding(alert, self.trail.clock()) for alert in alerts]
        receipts = self.trail.sealer.seal([from_dict(e, self.trail.clock()) for e in events])
        for event, receipt in zip(events, receipts, strict=True):
            payload = {**event, "sealed": {"log": receipt.log, "index": receipt.index, "leaf_hash": receipt.leaf_hash}}
            for sink in self.sinks:
                try:
                    sink.send(payload)
                except Exception:  # noqa: BLE001 - one broken sink must not starve the others
                    log.exception("alert sink %r failed", sink)
            self.delivered += 1


def engine_for(conf) -> Engine:
    """The Sigma engine an `[alerts]` config asks for: the built-in pack plus its rule files and dirs."""
    return Engine.from_paths([BUILTIN_DIR, *conf.rules]) if conf.rules else Engine.builtin()


def detect_batch(engine: Engine, silent: SilentSourceWatch, sealed) -> list[Alert]:
    """The alerts a commit's sealed (log, index, bytes, vault rows) raise; each source noted alive.
    Alerts are not run through the rules again (an alert about alerts would feed itself)."""
    alerts: list[Alert] = []
    for event_log, index, data, vault in sealed:
        event = _decode(data)
        if event.get("action") == ALERT_ACTION:
            continue
        event = reveal_in_memory(event, vault)
        event["log"], event["index"] = event_log, index
        silent.observe(event)
        alerts.extend(engine.process(event, data))
    return alerts


def finding(alert: Alert, now: str) -> dict[str, Any]:
    """An alert as a sealed `finding` event; keeps the Sigma rule's author, as its licence asks."""
    attributes = {"rule_id": alert.rule_id, "title": alert.title, "level": alert.level, "author": alert.author,
                  "tags": list(alert.tags), "events": [[lg, idx] for lg, idx in alert.events[:1000]],
                  "group": {str(k): str(v) for k, v in (alert.group or {}).items()},
                  "first_time": alert.first_time, "last_time": alert.last_time}
    if alert.rolled_up:
        attributes["rolled_up"] = alert.rolled_up
    return {
        "log": "trailseal", "time": now, "category": "finding", "action": ALERT_ACTION, "outcome": "success",
        "severity": LEVELS.get(alert.level, "medium"), "reason": alert.title[:1000],
        "actor": {"id": "trailseal-detect", "type": "system"},
        "source": {"component": "trailseal-detect", "kind": "trailseal", "format": "sigma"},
        "target": {"type": "rule", "id": alert.rule_id, "name": alert.title[:1000]},
        "attributes": attributes,
    }


def reveal_in_memory(event: dict, vault: tuple) -> dict:
    """Join the event's own vault values back (detection sees who, the ledger never does)."""
    if not vault:
        return event
    from trailseal.privacy import reveal

    return reveal(event, vault)

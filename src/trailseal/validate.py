"""`trailseal validate`: the compliance report's checks on demand, over a recent window.

Checks schema conformance, expected sources, required fields, integrity, retention, clock skew and
silent sources. The result is sealed in the meta log (`trailseal.validate`); each failed check is
also sealed as `trailseal.validate.failed`, which the built-in rule turns into an alert.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from trailseal.event import format_time, from_dict
from trailseal.report.build import gather
from trailseal.report.checks import FAIL, PASS, Finding, run_check
from trailseal.report.measure import Measurements

CHECKS = {"conformance": "conformance", "expected sources": "sources_present", "required fields": "fields",
          "integrity": "integrity", "checkpoints": "signed_checkpoints", "retention": "retention",
          "clock": "clock"}


@dataclass
class CheckResult:
    name: str
    status: str  # pass | fail | gap
    reason: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class Validation:
    started: str
    finished: str
    window: str
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(r.status != FAIL for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAIL]


def window_start(now: datetime, window: str) -> str:
    from trailseal.retention import parse_period

    period = parse_period(window)
    return format_time(now - period.exact - timedelta(days=31 * period.months))


def run_validation(trail, *, now: datetime | None = None, progress: Callable[[int], None] | None = None) -> Validation:
    """Measure the last ``[compliance] validate_window`` and run every check."""
    conf = trail.config.compliance
    moment = now or datetime.now(UTC)
    started = format_time(moment)
    found = gather(trail, window_start(moment, conf.validate_window), format_time(moment + timedelta(days=1)),
                   progress=progress)
    results = [_result(label, run_check(_name(name, conf), found)) for label, name in CHECKS.items()]
    results.append(_result("silent sources", silent_sources(found, moment, trail.config.alerts.silent_after_seconds)))
    return Validation(started, format_time(datetime.now(UTC)), conf.validate_window, results)


def _name(check: str, conf) -> str:
    return f"retention:{conf.min_retention}" if check == "retention" else check


def _result(label: str, finding: Finding) -> CheckResult:
    return CheckResult(label, finding.status, finding.reason, finding.evidence)


def silent_sources(found: Measurements, now: datetime, silent_after: float) -> Finding:
    """Sources that sent in the window but not in the last ``silent_after`` seconds."""
    cutoff = format_time(now - timedelta(seconds=silent_after))
    quiet = [f"{s.log}/{s.component} (last {s.last_received})" for s in found.sources.values()
             if s.last_received and s.last_received < cutoff]
    if quiet:
        return Finding(FAIL, f"silent for over {silent_after:g}s: " + ", ".join(sorted(quiet)[:8]))
    return Finding(PASS, f"{len(found.sources)} source(s), none silent for over {silent_after:g}s")


def record(trail, validation: Validation, by: str = "trailseal-validate",
           still_failing: frozenset[str] | set[str] = frozenset()) -> None:
    """Seal the run, and one `trailseal.validate.failed` event per failed check (each becomes an alert),
    except checks in ``still_failing`` (already alerted by the previous scheduled run)."""
    now = trail.clock()
    source = {"component": "trailseal-validate", "kind": "trailseal", "format": "trailseal"}
    actor = {"id": by, "type": "system"}
    events = [{
        "log": "trailseal", "time": now, "category": "system", "action": "trailseal.validate",
        "outcome": "success" if validation.ok else "failure", "actor": actor, "source": source,
        "attributes": {"window": validation.window, "failed": [r.name for r in validation.failed],
                       "results": {r.name: r.status for r in validation.results}},
    }]
    events += [{
        "log": "trailseal", "time": now, "category": "system", "action": "trailseal.validate.failed",
        "outcome": "failure", "severity": "high", "reason": f"{r.name}: {r.reason}"[:1000], "actor": actor,
        "source": source, "target": {"type": "check", "id": r.name},
    } for r in validation.failed if r.name not in still_failing]
    trail.sealer.seal([from_dict(e, now) for e in events])


class LastValidation:
    """The newest validation run inside `serve` (the console shows it)."""

    def __init__(self) -> None:
        self.result: Validation | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def run(self, trail) -> Validation:
        with self._lock:
            try:
                result = run_validation(trail)
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                raise
            previous = {r.name for r in self.result.failed} if self.result else set()
            record(trail, result, still_failing=previous)
            self.result, self.error = result, None
            return result


_LAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def last_validation(trail) -> LastValidation:
    """The validation state kept for this open data dir."""
    return _LAST.setdefault(trail, LastValidation())

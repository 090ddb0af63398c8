"""A compliance report: measure the data dir over a period, then decide each control of a framework."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from trailseal.event import utc_now
from trailseal.ledger import LedgerError, open_checkpoint
from trailseal.report.checks import FAIL, GAP, PASS, Finding, run_check
from trailseal.report.frameworks import FRAMEWORKS, Control, Framework
from trailseal.report.measure import Measurements, measure

_PERIOD = re.compile(r"(\d{4}-\d\d-\d\d)\.\.(\d{4}-\d\d-\d\d)")
_RANK = {PASS: 0, GAP: 1, FAIL: 2}


class ReportError(ValueError):
    """The report cannot be made as asked; the message says what to change."""


@dataclass
class ControlResult:
    control: Control
    status: str
    findings: dict[str, Finding]

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.findings.values() if f.status != PASS]


@dataclass
class Report:
    framework: Framework
    since: str
    until: str
    generated: str
    origin: str
    measurements: Measurements
    controls: list[ControlResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.controls) for s in (PASS, FAIL, GAP)}

    @property
    def ok(self) -> bool:
        return all(c.status == PASS for c in self.controls)


def parse_period(text: str) -> tuple[str, str]:
    """'2026-01-01..2026-12-31' -> (since, until) as RFC 3339 times; the end day is included."""
    match = _PERIOD.fullmatch(text.strip())
    if not match:
        raise ReportError(f"period {text!r}: write it as YYYY-MM-DD..YYYY-MM-DD (both days included)")
    try:
        first, last = date.fromisoformat(match[1]), date.fromisoformat(match[2])
    except ValueError as exc:
        raise ReportError(f"period {text!r}: {exc}") from None
    if last < first:
        raise ReportError(f"period {text!r} ends before it starts")
    if first.year < 1970 or last.year > 9998:
        raise ReportError(f"period {text!r}: events are dated 1970 to 9998")
    return f"{first.isoformat()}T00:00:00.000000Z", f"{(last + timedelta(days=1)).isoformat()}T00:00:00.000000Z"


def framework(key: str) -> Framework:
    if key not in FRAMEWORKS:
        raise ReportError(f"unknown framework {key!r}: use one of {', '.join(FRAMEWORKS)}")
    return FRAMEWORKS[key]


def build_report(trail, key: str, period: str, *, verify: bool = True,
                 progress: Callable[[int], None] | None = None) -> Report:
    """Measure, then evaluate every control of the framework."""
    chosen = framework(key)
    since, until = parse_period(period)
    found = gather(trail, since, until, verify=verify, progress=progress)
    report = Report(chosen, since, until, found.extra["now"], trail.config.origin, found)
    report.controls = evaluate(chosen, found)
    return report


def gather(trail, since: str, until: str, *, verify: bool = True,
           progress: Callable[[int], None] | None = None) -> Measurements:
    """Measurements plus the configuration and live checks they are judged with."""
    conf = trail.config.compliance
    found = measure(trail, since, until, conf.required_fields, progress)
    found.extra.update(config=conf, now=utc_now(), policies=policies(trail), privacy=trail.protection.enabled,
                       detection=detection_info(trail), checkpoints=checkpoint_states(trail))
    if verify:
        found.extra["verify"] = trail.verify()
    return found


def evaluate(chosen: Framework, found: Measurements) -> list[ControlResult]:
    cache: dict[str, Finding] = {}
    results = []
    for control in chosen.controls:
        findings = {name: cache.get(name) or cache.setdefault(name, run_check(name, found))
                    for name in control.checks}
        status = max((f.status for f in findings.values()), key=_RANK.__getitem__)
        results.append(ControlResult(control, status, findings))
    return results


def policies(trail):
    """The configured retention policies, or the configuration error as text."""
    from trailseal.retention import Policies, RetentionError

    try:
        return Policies.from_config(trail.config.retention)
    except RetentionError as exc:
        return str(exc)


def detection_info(trail) -> dict:
    conf = trail.config.alerts
    return {"enabled": conf.enabled, "rules": rule_count(tuple(conf.rules)) if conf.enabled else 0,
            "silent_after": conf.silent_after_seconds}


@functools.lru_cache(maxsize=8)
def rule_count(extra: tuple[str, ...]) -> int:
    from trailseal.detect.engine import BUILTIN_DIR, Engine

    try:
        return len(Engine.from_paths([BUILTIN_DIR, *extra]).rules)
    except Exception:  # noqa: BLE001 - a broken rule file means no working rules; the check says so
        return 0


def checkpoint_states(trail) -> dict[str, str | None]:
    """Per log: None when its newest checkpoint is signed by the log's key, else the problem."""
    states: dict[str, str | None] = {}
    for info in trail.logs():
        if info.checkpoint is None:
            states[info.name] = "no signed checkpoint yet"
            continue
        try:
            checkpoint = open_checkpoint(info.checkpoint, [trail.verifier(info.name)])
            states[info.name] = None if checkpoint.size == info.size else (
                f"newest checkpoint covers {checkpoint.size} of {info.size} entries")
        except LedgerError as exc:
            states[info.name] = f"checkpoint does not verify: {exc}"
    return states

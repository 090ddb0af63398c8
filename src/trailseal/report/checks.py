"""The measured checks: each looks at Measurements and says pass, fail or gap, with the reason.

``fail`` means the measurement contradicts the control; ``gap`` means nothing measured can show it
either way (for example no expected sources are configured).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from trailseal.report.measure import Measurements, duration

PASS, FAIL, GAP = "pass", "fail", "gap"
COVERAGE = {"data_access": ("data_access",), "admin": ("admin",), "account": ("account",),
            "system": ("system",), "object_change": ("config", "data_change"),
            "authentication": ("authentication",), "authorization": ("authorization",), "session": ("session",)}
INTEGRITY_RULE, VALIDATE_RULE = "483474ef-2968-4be3-b400-47f2adad8b25", "18b9804f-8b1d-498a-b412-675ffd44c0bd"
FAILURE_RULES = ("trailseal-silent-source", INTEGRITY_RULE, VALIDATE_RULE)


@dataclass
class Finding:
    status: str
    reason: str
    evidence: list[str] = field(default_factory=list)


def run_check(name: str, m: Measurements) -> Finding:
    """Run ``name`` or ``name:arg:...``."""
    head, *args = name.split(":")
    return CHECKS[head](m, *args)


def sources_present(m: Measurements) -> Finding:
    expected = m.extra["config"].expected_sources
    seen = m.components()
    if not expected:
        return Finding(GAP, "no expected sources are declared: list them in [compliance] expected_sources",
                       [f"seen: {', '.join(sorted(seen)) or 'none'}"])
    missing = [s for s in expected if s not in seen]
    evidence = [f"{s}: {sum(x.events for x in m.sources.values() if x.component == s)} events" for s in expected]
    if missing:
        return Finding(FAIL, f"expected source(s) sent nothing in the period: {', '.join(missing)}", evidence)
    return Finding(PASS, f"all {len(expected)} expected sources sent events", evidence)


def coverage(m: Measurements, kind: str) -> Finding:
    if kind == "failed_access":
        count, what = m.failed_access, "failed authentication/authorization events"
        by_source = {f"{s.log}/{s.component}": s.failures for s in m.sources.values()
                     if s.failures and (s.categories["authentication"] or s.categories["authorization"])}
    else:
        categories = COVERAGE[kind]
        count = sum(m.categories[c] for c in categories)
        what = f"{'/'.join(categories)} events"
        by_source = {f"{s.log}/{s.component}": n for s in m.sources.values()
                     if (n := sum(s.categories[c] for c in categories))}
    evidence = [f"{source}: {n}" for source, n in sorted(by_source.items())]
    if not count:
        return Finding(FAIL, f"no {what} recorded in the period", evidence)
    return Finding(PASS, f"{count} {what} from {len(by_source)} source(s)", evidence)


def fields(m: Measurements) -> Finding:
    conf = m.extra["config"]
    if not m.sources:
        return Finding(GAP, "no events in the period")
    short = []
    for s in sorted(m.sources.values(), key=lambda s: (s.log, s.component)):
        for name in conf.required_fields:
            rate = s.field_rate(name)
            if rate < conf.min_field_rate:
                short.append(f"{s.log}/{s.component}: {name} present in {rate:.1%} of {s.events} records")
    evidence = [f"{s.log}/{s.component}: {s.complete}/{s.events} records complete" for s in m.sources.values()]
    if short:
        return Finding(FAIL, f"required fields missing (need {conf.min_field_rate:.0%}): " + "; ".join(short[:6]),
                       evidence)
    return Finding(PASS, f"every source carries {', '.join(conf.required_fields)} in at least "
                         f"{conf.min_field_rate:.0%} of records", evidence)


def conformance(m: Measurements) -> Finding:
    total = m.events + m.rejected
    if not total:
        return Finding(GAP, "no events received in the period")
    rate = m.events / total
    evidence = [f"sealed {m.events}, rejected {m.rejected}"]
    evidence += [f"rejected via {path}: {n}" for path, n in m.rejected_by.most_common(10)]
    evidence += [f"{s.log}/{s.component}: {s.events} sealed" for s in m.sources.values()]
    if rate < m.extra["config"].min_conformance_rate:
        return Finding(FAIL, f"only {rate:.2%} of records conformed to the schema "
                             f"(need {m.extra['config'].min_conformance_rate:.0%})", evidence)
    return Finding(PASS, f"{rate:.2%} of records conformed to the schema", evidence)


def reads_recorded(m: Measurements) -> Finding:
    evidence = [f"{reader}: {action} x{n}" for (reader, action), n in sorted(m.reads.items())]
    if not m.extra.get("record_reads", True):
        return Finding(FAIL, "reads are not recorded (record_reads is off)", evidence)
    if not m.reads:
        return Finding(GAP, "no reads of the logs were recorded in the period", evidence)
    return Finding(PASS, f"{sum(m.reads.values())} reads/exports by {len({r for r, _ in m.reads})} reader(s), "
                         "each sealed in the meta log", evidence)


def integrity(m: Measurements) -> Finding:
    reports = m.extra.get("verify")
    if reports is None:
        return Finding(GAP, "integrity was not verified for this report (run without --no-verify)")
    bad = [r.summary() for r in reports if not r.ok]
    evidence = [r.summary() for r in reports]
    if bad:
        return Finding(FAIL, "; ".join(bad), evidence)
    return Finding(PASS, f"{len(reports)} log(s) re-hashed: every entry and checkpoint verifies", evidence)


def signed_checkpoints(m: Measurements) -> Finding:
    states = m.extra["checkpoints"]
    bad = [f"{log}: {problem}" for log, problem in states.items() if problem]
    evidence = [f"{log}: {problem or 'signed checkpoint verifies'}" for log, problem in states.items()]
    if not states:
        return Finding(GAP, "no logs")
    if bad:
        return Finding(FAIL, "; ".join(bad), evidence)
    return Finding(PASS, f"the newest checkpoint of each of {len(states)} log(s) is signed and verifies", evidence)


def integrity_monitored(m: Measurements) -> Finding:
    evidence = [f"{v['time']}: {'ok' if v['ok'] else 'failed ' + ', '.join(v['failed'])}" for v in m.validations]
    evidence += [f"{f['time']}: integrity failed: {f['reason']}" for f in m.integrity_failures]
    if m.integrity_failures:
        return Finding(FAIL, f"{len(m.integrity_failures)} integrity failure(s) detected in the period", evidence)
    if not m.validations:
        return Finding(FAIL, "no integrity validation ran in the period (`trailseal validate`, or `serve`)",
                       evidence)
    return Finding(PASS, f"{len(m.validations)} validation run(s) in the period", evidence[-10:])


def detection(m: Measurements) -> Finding:
    info = m.extra["detection"]
    evidence = [f"{info['rules']} rules loaded", f"silent source after {info['silent_after']:g}s"]
    if not info["enabled"]:
        return Finding(FAIL, "detection is disabled ([alerts] enabled = false)", evidence)
    if not info["rules"]:
        return Finding(FAIL, "no detection rules are loaded", evidence)
    return Finding(PASS, f"detection on: {info['rules']} rules, silent-source watch, integrity watch", evidence)


def _unacked(m: Measurements, rules: tuple[str, ...] | None) -> tuple[list[dict], list[dict]]:
    cutoff = _minus_hours(m.extra["now"], m.extra["config"].ack_within_hours)
    alerts = [a for a in m.alerts if a["in_period"] and (rules is None or a["rule_id"] in rules)]
    late = [a for a in alerts if a["index"] not in m.acks and a["time"] < cutoff]
    return alerts, late


def alerts_reviewed(m: Measurements, rules: tuple[str, ...] | None = None) -> Finding:
    alerts, late = _unacked(m, rules)
    evidence = [f"#{a['index']} {a['time']} {a['title']}: "
                f"{'acknowledged ' + m.acks[a['index']] if a['index'] in m.acks else 'open'}" for a in alerts[-20:]]
    hours = m.extra["config"].ack_within_hours
    if late:
        return Finding(FAIL, f"{len(late)} of {len(alerts)} alert(s) not acknowledged within {hours:g}h", evidence)
    return Finding(PASS, f"{len(alerts)} alert(s) raised, all acknowledged within {hours:g}h (or still recent)",
                   evidence)


def failure_alerts(m: Measurements) -> Finding:
    return alerts_reviewed(m, FAILURE_RULES)


def retention(m: Measurements, keep: str, hot: str | None = None) -> Finding:
    from trailseal.retention import RetentionError, parse_period

    policies = m.extra["policies"]
    if isinstance(policies, str):
        return Finding(FAIL, f"retention is misconfigured: {policies}")
    need_keep, need_hot = parse_period(keep), parse_period(hot) if hot else None
    base = datetime(2000, 1, 1)
    short, evidence = [], []
    for log, category in _held(m):
        policy = policies.for_entry(log, category)
        if policy is None:
            evidence.append(f"{log}/{category}: no policy (kept forever, hot)")
            continue
        evidence.append(f"{log}/{category}: {policy.describe()}")
        try:
            if not policy.keep.forever and policy.keep.after(base) < need_keep.after(base):
                short.append(f"{log}/{category} kept {policy.keep.text} by {policy.name} (need {keep})")
            if need_hot and policy.hot and policy.hot.after(base) < need_hot.after(base):
                short.append(f"{log}/{category} hot only {policy.hot.text} by {policy.name} (need {hot})")
        except RetentionError as exc:
            short.append(str(exc))
    if short:
        return Finding(FAIL, "retention shorter than required: " + "; ".join(short[:6]), evidence)
    return Finding(PASS, f"every log and category is kept at least {keep}" + (f", {hot} hot" if hot else ""),
                   evidence)


def retention_limited(m: Measurements) -> Finding:
    policies = m.extra["policies"]
    if isinstance(policies, str):
        return Finding(FAIL, f"retention is misconfigured: {policies}")
    forever = [f"{log}/{category}" for log, category in _held(m)
               if (p := policies.for_entry(log, category)) is None or p.keep.forever]
    if forever:
        return Finding(FAIL, "kept forever (no retention policy limits them): " + ", ".join(forever[:8]))
    return Finding(PASS, "every log and category with personal data has a retention limit",
                   [p.describe() for p in policies.policies])


def _held(m: Measurements) -> list[tuple[str, str]]:
    return sorted({(s.log, c) for s in m.sources.values() for c in s.categories})


def clock(m: Measurements) -> Finding:
    limit = m.extra["config"].max_clock_skew_seconds
    if not m.sources:
        return Finding(GAP, "no events in the period")
    evidence = [f"{s.log}/{s.component}: p99 {s.skew_text()}, max {duration(max(s.skews, default=0))}"
                for s in m.sources.values()]
    skewed = [f"{s.log}/{s.component} p99 {s.skew_text()}" for s in m.sources.values() if s.skew_p99() > limit]
    if skewed:
        return Finding(FAIL, f"clock skew over {limit:g}s (received vs time): " + ", ".join(skewed[:6]), evidence)
    return Finding(PASS, f"every source within {limit:g}s of trailseal's clock (p99)", evidence)


def erasure(m: Measurements) -> Finding:
    evidence = [f"{m.erasures} erasure(s) in the period",
                f"{m.sealed_actor_ids}/{m.actor_ids} actor ids sealed as commitments"]
    if not m.extra["privacy"]:
        return Finding(FAIL, "privacy protection is off: personal data is sealed as sent and cannot be erased",
                       evidence)
    if m.actor_ids and m.sealed_actor_ids < m.actor_ids:
        return Finding(FAIL, f"{m.actor_ids - m.sealed_actor_ids} actor ids were sealed in plain text", evidence)
    return Finding(PASS, f"personal data is erasable; {m.erasures} erasure(s) done, every proof still verifies",
                   evidence)


def _minus_hours(stamp: str, hours: float) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) - timedelta(hours=hours)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


CHECKS: dict[str, Callable[..., Finding]] = {
    "sources_present": sources_present, "coverage": coverage, "fields": fields, "conformance": conformance,
    "reads_recorded": reads_recorded, "integrity": integrity, "signed_checkpoints": signed_checkpoints,
    "integrity_monitored": integrity_monitored, "detection": detection, "alerts_reviewed": alerts_reviewed,
    "failure_alerts": failure_alerts, "retention": retention, "retention_limited": retention_limited,
    "clock": clock, "erasure": erasure,
}

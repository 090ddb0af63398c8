"""Measured state of a data dir over a period: one pass over the sealed entries, nothing taken on trust.

Each log's entries are read once (store order) and summarized per source: events by category and
outcome, which required fields each record carries, the clock skew between the producer's ``time``
and our trusted ``received``, first and last seen. The `trailseal` meta log is read too: who read or
exported the logs, erasures, validation runs, integrity failures, alerts and their acknowledgements.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from trailseal.ledger.verify import as_bytes

META_LOG = "trailseal"
READ_ACTIONS = ("trailseal.search", "trailseal.event.read", "trailseal.alerts.read", "trailseal.export",
                "trailseal.ui.", "trailseal.report", "trailseal.bundle", "trailseal.verify")
ACK_ACTION = "trailseal.alert.ack"
LOGIN_ACTION = "trailseal.ui.login"  # a console login is not a read
ALERT_ACTION = "detect.alert"
VALIDATE_ACTION = "trailseal.validate"
ORIGIN_FIELDS = ("actor.ip", "source.host", "source.ip")


class _Actor(msgspec.Struct):
    id: str | None = None
    ip: str | None = None
    name: str | None = None
    roles: list[str] | None = None


class _Source(msgspec.Struct):
    component: str = "?"
    kind: str | None = None
    host: str | None = None
    ip: str | None = None


class _Target(msgspec.Struct):
    type: str | None = None
    id: str | None = None
    name: str | None = None


class _Entry(msgspec.Struct):
    """The parts of a sealed event the measurements look at (unknown fields are skipped fast)."""

    time: str
    received: str = ""
    category: str = ""
    action: str = ""
    outcome: str = ""
    actor: _Actor = msgspec.field(default_factory=_Actor)
    source: _Source = msgspec.field(default_factory=_Source)
    target: _Target | None = None
    attributes: dict = {}
    reason: str | None = None


_decode = msgspec.json.Decoder(_Entry).decode


@dataclass
class SourceStats:
    """One source (log, component) over the period."""

    log: str
    component: str
    kind: str | None = None
    events: int = 0
    failures: int = 0
    first_received: str | None = None
    last_received: str | None = None
    categories: Counter = field(default_factory=Counter)
    fields: Counter = field(default_factory=Counter)  # required field -> records that carry it
    complete: int = 0  # records carrying every required field
    skews: list[float] = field(default_factory=list)  # |received - time| in seconds

    def skew_p99(self) -> float:
        if not self.skews:
            return 0.0
        ordered = sorted(self.skews)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def skew_text(self) -> str:
        return duration(self.skew_p99())

    def field_rate(self, name: str) -> float:
        return self.fields[name] / self.events if self.events else 0.0


@dataclass
class Measurements:
    """Everything the checks look at, for one period."""

    since: str
    until: str
    logs: dict[str, int] = field(default_factory=dict)  # log -> tree size
    sources: dict[tuple[str, str], SourceStats] = field(default_factory=dict)
    categories: Counter = field(default_factory=Counter)
    failed_access: int = 0
    reads: Counter = field(default_factory=Counter)  # (reader, action) -> count
    erasures: int = 0
    validations: list[dict] = field(default_factory=list)  # {time, ok, failed}
    integrity_failures: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)  # {index, time, rule_id, title, level}
    acks: dict[int, str] = field(default_factory=dict)  # alert index -> ack time
    rejected: int = 0
    rejected_by: Counter = field(default_factory=Counter)  # receiver (and token) -> records refused
    sealed_actor_ids: int = 0  # actor ids sealed as commitments (pd:...)
    actor_ids: int = 0
    extra: dict = field(default_factory=dict)  # checks' other inputs (config, verify reports ...)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.sources.values())

    def components(self) -> set[str]:
        return {component for _, component in self.sources}


def measure(trail, since: str, until: str, required: list[str],
            progress: Callable[[int], None] | None = None) -> Measurements:
    """One pass over every log's entries with since <= time < until."""
    found = Measurements(since, until)
    tests = [field_test(name) for name in required]
    for info in trail.logs():
        found.logs[info.name] = info.size
        if info.name == META_LOG:
            _meta(trail, found, since, until)
            continue
        tally: dict[tuple, int] = {}
        for data in _entries(trail.store, info.name, info.size, progress):
            entry = _decode(data)
            if since <= entry.time < until:
                _count(found, tally, info.name, entry, tests)
        _fold(found, tally, required)
    return found


def _entries(store, log: str, size: int, progress) -> Iterator[bytes]:
    step = 50_000
    for start in range(0, size, step):
        for _, data in store.read_entries(log, start, min(size, start + step)):
            yield as_bytes(data)
        if progress is not None:
            progress(min(size, start + step) - start)


def _count(found: Measurements, tally: dict, log: str, entry: _Entry, tests: list) -> None:
    """Per entry only what differs between entries; the rest is tallied by shape and folded once."""
    source = entry.source
    key = (log, source.component)
    stats = found.sources.get(key)
    if stats is None:
        stats = found.sources[key] = SourceStats(log, source.component, source.kind)
    received = entry.received
    if received:
        if stats.first_received is None or received < stats.first_received:
            stats.first_received = received
        if stats.last_received is None or received > stats.last_received:
            stats.last_received = received
        stats.skews.append(abs(_seconds(received) - _seconds(entry.time)))
    actor = entry.actor.id
    shape = (key, entry.category, entry.outcome in ("failure", "error"),
             tuple(test(entry) for test in tests), 2 if actor and actor.startswith("pd:") else 1 if actor else 0)
    tally[shape] = tally.get(shape, 0) + 1


def _fold(found: Measurements, tally: dict, required: list[str]) -> None:
    """Add tallied shapes to the per-source and overall counters."""
    for (key, category, failed, present, actor), n in tally.items():
        stats = found.sources[key]
        stats.events += n
        stats.categories[category] += n
        found.categories[category] += n
        if failed:
            stats.failures += n
            if category in ("authentication", "authorization"):
                found.failed_access += n
        for name, here in zip(required, present, strict=True):
            stats.fields[name] += n * here
        stats.complete += n * all(present)
        found.actor_ids += n * (actor > 0)
        found.sealed_actor_ids += n * (actor == 2)


def field_test(name: str) -> Callable[[_Entry], bool]:
    """Whether a record carries a required field ("origin" = actor.ip, source.host or source.ip)."""
    if name == "origin":
        return lambda e: bool(e.actor.ip or e.source.host or e.source.ip)
    if name == "target":
        return lambda e: e.target is not None and bool(e.target.id or e.target.name)
    head, _, tail = name.partition(".")
    if tail:
        return lambda e: bool(getattr(getattr(e, head, None), tail, None))
    return lambda e: bool(getattr(e, head, None))


def has_field(entry: _Entry, name: str) -> bool:
    return field_test(name)(entry)


def _meta(trail, found: Measurements, since: str, until: str) -> None:
    """Reads, erasures, validations, integrity failures, alerts and acknowledgements."""
    size = found.logs[META_LOG]
    rows = [(META_LOG, index, as_bytes(data)) for index, data in trail.store.read_entries(META_LOG, 0, size)]
    for row in trail.read_events(rows):
        index, entry = row["index"], msgspec.convert(row["event"], _Entry)
        if entry.action == ALERT_ACTION:
            found.alerts.append({"index": index, "time": entry.received or entry.time,
                                 "rule_id": entry.attributes.get("rule_id"), "title": entry.reason,
                                 "level": entry.attributes.get("level"), "in_period": since <= entry.time < until})
        elif entry.action == ACK_ACTION and entry.target is not None and (entry.target.id or "").isdecimal():
            found.acks.setdefault(int(entry.target.id), entry.time)
        if not since <= entry.time < until:
            continue
        if entry.action.startswith(READ_ACTIONS) and entry.action != LOGIN_ACTION:
            found.reads[(reader_name(entry), entry.action)] += 1
        elif entry.action == "privacy.erase":
            found.erasures += 1
        elif entry.action == VALIDATE_ACTION:
            found.validations.append({"time": entry.time, "ok": entry.outcome == "success",
                                      "failed": entry.attributes.get("failed", [])})
        elif entry.action == "trailseal.integrity.failed":
            found.integrity_failures.append({"time": entry.time, "reason": entry.reason,
                                             "log": entry.target.id if entry.target else None})
        elif entry.action == "trailseal.ingest.rejected":
            count = int(entry.attributes.get("rejected") or 1)
            found.rejected += count
            found.rejected_by[f"{entry.attributes.get('receiver') or 'http'} ({reader_name(entry)})"] += count


def reader_name(entry: _Entry) -> str:
    """Who read: the token's label and role (the token id itself is sealed as a commitment)."""
    name = entry.actor.name or entry.actor.id or "?"
    return f"{name} ({', '.join(entry.actor.roles)})" if entry.actor.roles else name


def duration(seconds: float) -> str:
    """'0.4s', '95s', '3.2h', '26.7d'."""
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h" if seconds < 172_800 else f"{seconds / 86400:.1f}d"


def _seconds(stamp: str) -> float:
    """Epoch seconds of a sealed timestamp; the minute is parsed once and cached."""
    if len(stamp) == 27 and stamp[16] == ":":
        return _minute(stamp[:16]) + float(stamp[17:26])
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@functools.lru_cache(maxsize=65_536)
def _minute(prefix: str) -> float:
    return datetime.fromisoformat(prefix + ":00+00:00").timestamp()

"""``trailseal rules test RULE.yml EVENTS.ndjson``: run rules over a file of events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trailseal.detect.engine import Alert, Engine
from trailseal.event import EventError, from_dict, to_dict


@dataclass
class RulesTestReport:
    """What a rules test saw: rules loaded, events read, alerts raised (in order)."""

    rules: list[str]
    events: int
    alerts: list[Alert] = field(default_factory=list)

    def fired(self) -> dict[str, int]:
        """Alert count per rule id."""
        counts: dict[str, int] = {}
        for alert in self.alerts:
            counts[alert.rule_id] = counts.get(alert.rule_id, 0) + 1
        return counts


def sealed_view(record: dict, index: int) -> dict:
    """A trailseal event dict as detection sees it once sealed (defaults, log, index)."""
    received = record.get("received") or record.get("time")
    event = to_dict(from_dict({k: v for k, v in record.items() if k != "index"}, received).event)
    event["index"] = record.get("index", index)
    return event


def read_events(path: str | Path) -> list[dict]:
    """NDJSON events, validated against schema v1; errors name the line."""
    events = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(sealed_view(json.loads(line), len(events)))
        except (ValueError, EventError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    return events


def rules_test(
    rule_path: str | Path,
    events_path: str | Path,
    placeholders: Mapping[str, list] | str | Path | None = None,
) -> RulesTestReport:
    """Load rules from rule_path, run them over events_path, flush windows, report alerts."""
    engine = Engine.from_paths([rule_path], placeholders)
    events = read_events(events_path)
    report = RulesTestReport([rule.id for rule in engine.rules], len(events))
    for event in events:
        report.alerts.extend(engine.process(event))
    report.alerts.extend(engine.flush())
    return report

"""Small helpers for format tests: parse one record and validate every event against schema v1."""

from __future__ import annotations

from typing import Any

from trailseal import formats
from trailseal.event import from_dict


def parse_one(fmt: str, raw: bytes | str, **ctx: Any) -> dict[str, Any]:
    """Parse a record that must yield exactly one event, and check it passes the schema."""
    events = parse_all(fmt, raw, **ctx)
    assert len(events) == 1, events
    return events[0]


def parse_all(fmt: str, raw: bytes | str, **ctx: Any) -> list[dict[str, Any]]:
    data = raw.encode() if isinstance(raw, str) else raw
    events = formats.get(fmt).parse(data, **ctx)
    for event in events:
        from_dict(event)
        assert "received" not in event
        assert len(event["raw_hash"]) == 64
        assert event["source"]["format"] == fmt
    return events

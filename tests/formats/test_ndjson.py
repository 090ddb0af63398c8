from __future__ import annotations

import json

import pytest

from trailseal.formats import FormatError, ndjson

from .helpers import parse_one

EVENT = {
    "time": "2024-01-01T01:00:00+01:00",
    "category": "admin",
    "action": "tenant.delete",
    "outcome": "success",
    "actor": {"id": "ann"},
    "source": {"component": "api", "kind": "app"},
    "id": "e-1",
}


def test_native_event_passes_through_normalized():
    event = parse_one("ndjson", json.dumps({**EVENT, "received": "2030-01-01T00:00:00Z"}))
    assert event["time"] == "2024-01-01T00:00:00.000000Z" and event["id"] == "e-1"
    assert "received" not in event and event["source"]["format"] == "ndjson"


def test_producer_raw_hash_is_kept():
    given = "a" * 64
    assert parse_one("ndjson", json.dumps({**EVENT, "raw_hash": given}))["raw_hash"] == given


@pytest.mark.parametrize(
    "line",
    [
        b"{",
        b"[]",
        json.dumps({**EVENT, "category": "nope"}).encode(),
        json.dumps({**EVENT, "extra": 1}).encode(),
        b"\xff",
    ],
)
def test_invalid_events_are_rejected_with_the_schema_reason(line):
    with pytest.raises(FormatError):
        ndjson.parse(line)

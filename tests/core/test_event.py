"""Event schema v1: strict validation, normalization, and the canonical (RFC 8785) byte form."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_event
from trailseal.event import (
    MAX_EVENT_BYTES,
    EventError,
    from_dict,
    json_schema,
    new_id,
    normalize_time,
    parse_json,
)


def test_a_valid_event_is_normalized():
    sealed = from_dict(make_event(1, time="2026-03-01T12:00:00+02:00", log=None), received="R")
    event = sealed.event
    assert event.time == "2026-03-01T10:00:00.000000Z"
    assert event.received == "R"
    assert event.log == "default" and event.severity == "info"
    assert json.loads(sealed.canonical)["actor"]["type"] == "user"


def test_received_is_always_ours():
    sealed = from_dict(make_event(1, received="1999-01-01T00:00:00Z"), received="2026-11-27T00:00:00.000000Z")
    assert sealed.event.received == "2026-11-27T00:00:00.000000Z"


def test_missing_id_gets_a_uuid7():
    event = make_event(1)
    del event["id"]
    first, second = from_dict(event).id, from_dict(event).id
    assert first != second and first[14] == "7" and len(first) == 36
    assert new_id() > first  # time-ordered


@pytest.mark.parametrize("change, field, words", [
    ({"outcome": "maybe"}, "outcome", "Invalid enum value"),
    ({"category": 7}, "category", "Expected `str`"),
    ({"action": "User.Login"}, "action", "dotted lower-case"),
    ({"log": "Bad Log"}, "log", "a-z 0-9"),
    ({"time": "yesterday"}, "time", "RFC 3339"),
    ({"time": "2026-01-01T00:00:00"}, "time", "offset"),
    ({"time": "1900-01-01T00:00:00Z"}, "time", "out of range"),
    ({"actor": {"id": "a", "type": "robot"}}, "actor.type", "Invalid enum value"),
    ({"actor": {"type": "user"}}, "actor", "missing required field `id`"),
    ({"request": {"status": 1000}}, "request.status", "<= 999"),
    ({"attributes": {"n": float("nan")}}, "attributes.n", "not finite"),
    ({"attributes": {"n": -(2**60)}}, "attributes.n", "2^53"),
    ({"surprise": 1}, None, "unknown field `surprise`"),
    ({"raw_hash": "xyz"}, "raw_hash", "SHA-256"),
])
def test_invalid_events_name_the_field_and_the_problem(change, field, words):
    with pytest.raises(EventError) as info:
        from_dict(make_event(1, **change))
    assert info.value.field == field or (field is None and "surprise" in str(info.value))
    assert words in info.value.reason


def test_oversized_event_is_rejected_with_the_limit():
    with pytest.raises(EventError, match=str(MAX_EVENT_BYTES)):
        from_dict(make_event(1, attributes={"blob": "x" * 8000, **{f"k{i}": "y" * 8000 for i in range(9)}}))


def test_malformed_json_and_bad_utf8():
    with pytest.raises(EventError, match="malformed JSON"):
        parse_json(b'{"time": ')
    with pytest.raises(EventError, match="UTF-8"):
        parse_json(json.dumps(make_event(1)).encode().replace(b"\"ok\"", b"\"o\xffk\""))


def test_timestamps_normalize_to_utc_microseconds():
    assert normalize_time("2026-11-27T10:00:00.5-05:00") == "2026-11-27T15:00:00.500000Z"
    assert normalize_time("2026-11-27T10:00:00.123456789Z".replace("789", "")) == "2026-11-27T10:00:00.123456Z"


def test_schema_names_every_field():
    schema = json_schema()
    event = schema["$defs"]["Event"]
    assert set(event["required"]) == {"time", "category", "action", "outcome", "actor", "source"}
    assert {"id", "received", "log", "reason", "severity", "target", "request", "attributes",
            "raw_hash"} <= set(event["properties"])


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)


def test_whole_floats_past_2_53_are_sealed_as_rfc8785_writes_them():
    """Left floats (not exact as integers), msgspec would write 2^53 as 9007199254740992.0."""
    event = make_event(3, attributes={"a": 9007199254740992.0, "b": [-9.5e15, 2.0**60], "c": {"d": 1e15 + 0.5}})
    sealed = from_dict(event).canonical
    assert sealed == rfc8785.dumps(json.loads(sealed, parse_int=float))
    assert b'"a":9007199254740992,' in sealed and b"9007199254740992.0" not in sealed


@settings(max_examples=300, deadline=None)
@given(attributes=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
       name=st.text(max_size=30), reason=st.text(max_size=30))
def test_canonical_bytes_are_rfc8785(attributes, name, reason):
    event = make_event(3, attributes=attributes, reason=reason)
    event["actor"]["name"] = name
    try:
        sealed = from_dict(event)
    except EventError:
        return  # e.g. too deep; rejection is tested elsewhere
    assert sealed.canonical == rfc8785.dumps(json.loads(sealed.canonical, parse_int=float))
    as_floats = json.loads(sealed.canonical, parse_int=float).get("attributes", {})
    assert as_floats == json.loads(json.dumps(attributes), parse_int=float)


def test_new_ids_are_uuid7_strictly_increasing_even_past_4096_in_one_millisecond(monkeypatch):
    import time
    import uuid
    from types import SimpleNamespace

    from trailseal import event as event_module

    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in ids[::97]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert abs((uuid.UUID(ids[-1]).int >> 80) - time.time_ns() // 1_000_000) < 60_000
    frozen = time.time_ns()
    monkeypatch.setattr(event_module, "_time", SimpleNamespace(time_ns=lambda: frozen))  # the clock stands still
    burst = [new_id() for _ in range(5_000)]  # more than the 12-bit sequence holds: the next ms is taken
    assert burst == sorted(burst) and len(set(burst)) == len(burst) and burst[0] > ids[-1]
    assert len({text[:13] for text in burst}) >= 2

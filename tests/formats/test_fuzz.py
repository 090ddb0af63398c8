"""Property tests: no input, random or a damaged real record, makes a parser raise anything but FormatError,
and whatever a parser returns passes the event schema."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.formats.cases import CASES, LOGS, records
from trailseal import formats
from trailseal.event import from_dict
from trailseal.formats import FormatError, syslog

MAPPING = """
[fields]
time = "t"
action = "a"
"actor.id" = "u"
"request.status" = "s"
[constants]
category = "data_access"
"source.component" = "x"
"source.kind" = "app"
[time]
format = "unix"
"""
EXTRA_SAMPLES = {
    "ndjson": [
        json.dumps(
            {
                "time": "2024-01-01T00:00:00Z",
                "category": "system",
                "action": "a.b",
                "outcome": "success",
                "actor": {"id": "x"},
                "source": {"component": "c", "kind": "app"},
            }
        ).encode()
    ],
    "mapping": [b'[{"t": 1700000000, "a": "x.y", "u": "bob", "s": 200}, {"t": 1, "a": "q", "u": "z"}]'],
    "sarif": [
        json.dumps(
            {
                "version": "2.1.0",
                "runs": [
                    {
                        "tool": {"driver": {"name": "t", "rules": [{"id": "r"}]}},
                        "results": [{"ruleIndex": 0, "level": "error", "properties": {"trace_id": "abc"}}],
                    }
                ],
            }
        ).encode()
    ],
    "iast": [
        json.dumps(
            {
                "time": "2024-01-01T00:00:00Z",
                "rule": "sqli",
                "agent": "a",
                "request": {"trace_id": "t"},
                "location": {"file": "f", "line": 1},
            }
        ).encode()
    ],
}
SAMPLES: dict[str, list[bytes]] = {name: list(samples) for name, samples in EXTRA_SAMPLES.items()}
if LOGS.is_dir():
    for _file, (_fmt, _) in CASES.items():
        SAMPLES.setdefault(_fmt, []).extend(records(_file))
CTX = {"mapping": {"mapping": MAPPING}}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(fmt: str, raw: bytes) -> None:
    """parse either raises FormatError or returns events that all pass the schema."""
    try:
        events = formats.get(fmt).parse(raw, year=2020, **CTX.get(fmt, {}))
    except FormatError as exc:
        assert exc.reason
        return
    for event in events:
        from_dict(event)


@st.composite
def damaged(draw, fmt: str) -> bytes:
    """A real record of the format, truncated and with a few bytes replaced, dropped or inserted."""
    data = bytearray(draw(st.sampled_from(SAMPLES[fmt])))
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["replace", "drop", "insert"]))
        byte = draw(st.sampled_from(list(b'"\\{}[],:0 \n\t<>-.9\xff\xc3')))
        if op == "replace":
            data[at] = byte
        elif op == "drop":
            del data[at]
        else:
            data.insert(at, byte)
    return bytes(data)


@pytest.mark.parametrize("fmt", formats.NAMES)
@FUZZ
@given(raw=st.binary(max_size=400))
def test_random_bytes_raise_only_format_error(fmt, raw):
    check(fmt, raw)


@pytest.mark.parametrize("fmt", formats.NAMES)
@FUZZ
@given(data=st.data())
def test_damaged_real_records_raise_only_format_error(fmt, data):
    check(fmt, data.draw(damaged(fmt)))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_octet_counting_on_random_bytes_raises_only_format_error(raw):
    try:
        frames, rest = syslog.split_octet_counted(raw)
    except FormatError:
        return
    assert sum(len(f) for f in frames) <= len(raw) and raw.endswith(rest)


@FUZZ
@given(frames=st.lists(st.binary(min_size=1, max_size=50), max_size=8), cut=st.integers(0, 500))
def test_octet_counting_round_trips_across_any_chunk_boundary(frames, cut):
    stream = b"".join(str(len(f)).encode() + b" " + f for f in frames)
    first, rest = syslog.split_octet_counted(stream[:cut])
    second, tail = syslog.split_octet_counted(rest + stream[cut:])
    assert first + second == frames and tail == b""

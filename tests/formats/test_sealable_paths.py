"""A parser that keeps a sealable document's values without the json_safe walk gives the same events
(or the same rejection) as the walking path, on realistic records with hostile values put anywhere."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from bench.bench_parsers import CONTEXT, MAPPING, samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailseal import formats
from trailseal.formats import FormatError
from trailseal.formats._common import load_json

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEALABLE_FORMATS = ["k8s_audit", "cloudtrail", "iast", "sarif", "mapping"]
HOSTILE = st.sampled_from(
    [
        2**53,
        -(2**53),
        2**53 - 1,
        2**70,
        1.5,
        0,
        None,
        "x",
        [],
        {},
        {"n": 2**60},
        [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]],
    ]
)


@contextlib.contextmanager
def walking(module: Any) -> Iterator[None]:
    """The module with every document treated as not known to be sealable (json_safe walks all)."""
    fast = module.load_sealable_json
    module.load_sealable_json = lambda raw, depth: (load_json(raw), False)
    try:
        yield
    finally:
        module.load_sealable_json = fast


def outcome(fmt: str, raw: bytes) -> Any:
    """parse_batch's (events, rejected), or the reason the whole record is refused."""
    ctx = {"mapping": MAPPING} if fmt == "mapping" else dict(CONTEXT.get(fmt, {}))
    ctx["time"] = "2024-05-01T10:00:00Z"  # a SARIF run without its own time takes this, not now
    try:
        return formats.get(fmt).parse_batch(raw, **ctx)
    except FormatError as exc:
        return exc.reason


def planted(doc: Any, data: st.DataObject) -> Any:
    """doc with one value somewhere in it (a random path down) replaced by a hostile value."""
    if isinstance(doc, dict) and doc and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(doc)))
        return {**doc, key: planted(doc[key], data)}
    if isinstance(doc, list) and doc and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(doc) - 1))
        return [*doc[:index], planted(doc[index], data), *doc[index + 1 :]]
    return data.draw(HOSTILE)


@pytest.mark.parametrize("fmt", SEALABLE_FORMATS)
def test_the_samples_take_the_sealable_path(fmt: str):
    module = formats.get(fmt)
    assert all(module.load_sealable_json(raw, 1)[1] for raw in samples(fmt))


@pytest.mark.parametrize("fmt", SEALABLE_FORMATS)
@FUZZ
@given(data=st.data())
def test_sealable_path_equals_the_walking_path(fmt: str, data: st.DataObject):
    module = formats.get(fmt)
    base = data.draw(st.sampled_from(samples(fmt)))
    raw = json.dumps(planted(json.loads(base), data)).encode()
    fast = outcome(fmt, raw)
    with walking(module):
        assert outcome(fmt, raw) == fast


def nested_any(levels: int) -> dict[str, Any]:
    """An AnyValue of kvlists and arrays nested `levels` deep."""
    value: dict[str, Any] = {"stringValue": "leaf"}
    for level in range(levels):
        value = (
            {"arrayValue": {"values": [value]}}
            if level % 2
            else {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        )
    return value


ANY_VALUES = st.sampled_from(
    [
        {"intValue": v}
        for v in ("9007199254740991", "9007199254740992", "-9007199254740992", "--5", "٣", 2**60)
    ]
    + [{"doubleValue": v} for v in (1e300, 2**70, 0.5)]
    + [nested_any(n) for n in (10, 11, 12, 13, 14, 16, 20)]
)


@FUZZ
@given(data=st.data())
def test_typed_otlp_path_equals_the_generic_path(data: st.DataObject):
    base = json.loads(data.draw(st.sampled_from(samples("otlp"))))
    attributes = base["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"]
    attributes.append({"key": "planted", "value": data.draw(ANY_VALUES)})
    raw = json.dumps(planted(base, data) if data.draw(st.booleans()) else base).encode()
    typed = outcome("otlp", raw)
    fast, formats.otlp._typed_records = formats.otlp._typed_records, lambda body: None
    try:
        assert outcome("otlp", raw) == typed
    finally:
        formats.otlp._typed_records = fast

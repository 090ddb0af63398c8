"""json_safe gives back a value that needs no change as it is, and otherwise the same copy as before."""

from __future__ import annotations

import json
import math
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.event import MAX_DEPTH, MAX_SAFE_INT
from trailseal.formats import FormatError
from trailseal.formats._common import (
    CHECKED_FROM,
    _made_safe,
    _sealable,
    _sealable_decoder,
    json_safe,
    load_json,
    load_sealable_json,
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.text(max_size=4)
    | st.floats()
    | st.integers(-(2**60), 2**60)
    | st.sampled_from([MAX_SAFE_INT, MAX_SAFE_INT + 1, -MAX_SAFE_INT - 1])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=12,
)


def sealable(value) -> bool:
    """No big int, no non-finite float, only string keys (what a sealed event may hold)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_SAFE_INT
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and sealable(v) for k, v in value.items())
    return all(sealable(v) for v in value)


def deepest(value) -> int:
    """The nesting level of the deepest container (0: the value itself; -1: no container)."""
    if isinstance(value, dict):
        return 1 + max((deepest(v) for v in value.values()), default=-1)
    if isinstance(value, list):
        return 1 + max((deepest(v) for v in value), default=-1)
    return -1


@given(VALUES, st.integers(1, MAX_DEPTH + 1))
def test_json_safe_equals_the_copy_and_shares_what_needs_no_change(value, depth):
    made = json_safe(value, depth)
    assert made == _made_safe(value, depth)
    assert sealable(made)
    if sealable(value) and depth + deepest(value) < MAX_DEPTH:  # nothing to change: no copy
        assert made is value


def test_nesting_past_the_limit_becomes_json_text():
    deep = {"a": {"b": {"c": [1, 2]}}}
    assert json_safe(deep, MAX_DEPTH - 1) == {"a": '{"b":{"c":[1,2]}}'}
    assert json_safe({"n": 2**60, "f": float("nan")}) == {"n": str(2**60), "f": "nan"}
    same = {"a": [1, "x", {"b": None}]}
    assert json_safe(same) is same


def decoded_or_reason(raw: bytes):
    """load_json's value, or the reason it refuses the bytes."""
    try:
        return ("value", load_json(raw))
    except FormatError as exc:
        return ("rejected", exc.reason)


def typed(value):
    """A value with each scalar's type beside it (1 == 1.0 == True must not hide a difference)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.text(max_size=3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([MAX_SAFE_INT, MAX_SAFE_INT + 1, -MAX_SAFE_INT - 1]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)
NESTED = st.integers(0, 20).map(lambda n: "[" * n + "1" + "]" * n)
HOSTILE = st.sampled_from([b"", b"{", b'{"a":1e400}', b"[NaN]", b'"\xff"', b'{"a":1,"a":"b"}', b"1 2"])


@settings(deadline=None)  # the first call at a depth builds that depth's decoder
@given(
    st.one_of(JSON_VALUES.map(json.dumps), NESTED).map(str.encode) | HOSTILE,
    st.sampled_from([-2, 0, 1, 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1]),
)
def test_sealable_decode_equals_load_json_and_says_whether_json_safe_would_change_anything(raw, depth):
    try:
        doc, sealable = load_sealable_json(raw, depth)
    except FormatError as exc:
        assert decoded_or_reason(raw) == ("rejected", exc.reason)
        return
    assert typed(doc) == typed(load_json(raw))
    assert sealable == _sealable(doc, max(depth, CHECKED_FROM))  # exact from CHECKED_FROM, stricter above
    if sealable:
        assert json_safe(doc, depth) is doc


def test_the_sealable_decoder_builds_quickly():
    _sealable_decoder.cache_clear()
    start = time.perf_counter()
    load_sealable_json(b"{}", -2)
    assert time.perf_counter() - start < 0.5  # an unrolled type per level doubles: 15 levels took 1 s

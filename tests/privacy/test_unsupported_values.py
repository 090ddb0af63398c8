"""Attribute values JSON has no type for (and keys that are not text, and nesting past any limit) are
refused by name whether privacy is on or off, appended one at a time or through the prepare workers;
protection never turns them into text first, and nothing raises anything but EventError."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

import trailseal
from tests.conftest import make_event
from trailseal.event import EventError
from trailseal.prepare_pool import MIN_POOL_BATCH

ODD = [("datetime", datetime(2026, 1, 1, tzinfo=UTC)), ("Decimal", Decimal("1.5")), ("set", {1, 2}),
       ("bytes", b"x"), ("tuple", (1, 2)), ("builtin_function_or_method", len),  # pickled for the workers
       ("function", lambda: None)]  # pickle cannot carry it: prepared in the caller's process


def open_log(data_dir, privacy: bool):
    if not privacy:
        config = data_dir / "trailseal.toml"
        config.write_text(re.sub(r"(\[privacy\][^\[]*?)enabled = true", r"\1enabled = false", config.read_text()))
    return trailseal.open(data_dir)


@pytest.mark.parametrize("privacy", [True, False])
@pytest.mark.parametrize("count", [1, 2 * MIN_POOL_BATCH])
def test_a_value_json_cannot_carry_is_refused_by_name(data_dir, privacy, count):
    with open_log(data_dir, privacy) as log:
        log.pool.start()
        for kind, value in ODD:
            events = [make_event(i) for i in range(count)]
            events[-1]["attributes"] = {"ok": 1, "odd": value}
            with pytest.raises(EventError) as refused:
                log.append(events)
            assert str(refused.value) == f"[{count - 1}].attributes.odd: unsupported type {kind}"
        assert log.store.tree_size("default") == 0


def nested(levels: int) -> dict:
    top = current = {}
    for _ in range(levels):
        current["x"] = current = {}
    return top


@pytest.mark.parametrize("privacy", [True, False])
@pytest.mark.parametrize("count", [1, 2 * MIN_POOL_BATCH])
def test_keys_that_are_not_text_and_runaway_nesting_are_refused(data_dir, privacy, count):
    cases = [({"m": {1: "a"}}, "attributes.m: key 1 is not a string"),
             ({"m": {"a": {2.5: 1}}}, "attributes.m.a: key 2.5 is not a string"),
             ({"deep": nested(3000)}, "nested deeper than 16 levels")]  # past Python's recursion limit
    with open_log(data_dir, privacy) as log:
        log.pool.start()
        for attributes, reason in cases:
            events = [make_event(i) for i in range(count)]
            events[-1]["attributes"] = attributes
            with pytest.raises(EventError) as refused:
                log.append(events)
            assert str(refused.value).startswith(f"[{count - 1}].attributes")
            assert str(refused.value).endswith(reason)
        assert log.store.tree_size("default") == 0

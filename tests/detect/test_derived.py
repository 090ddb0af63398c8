"""Derived fields: the same-hour shortcut for clock skew gives exactly what full parsing gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from trailseal.detect.derived import clock_skew_seconds, epoch_seconds
from trailseal.detect.paths import MISSING


def stamp(moment: datetime, fraction: bool) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if fraction else "%Y-%m-%dT%H:%M:%SZ")


def test_clock_skew_shortcut_agrees_with_full_parsing():
    rng = random.Random(7)
    for _ in range(3000):
        sent = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**12))
        spread = rng.choice([10**6, 6 * 10**7, 10**10])  # same second or minute, same hour, hours apart
        got = sent + timedelta(microseconds=rng.randrange(-spread, spread))
        time, received = stamp(sent, rng.random() < 0.7), stamp(got, rng.random() < 0.7)
        expected = round(abs(epoch_seconds(received) - epoch_seconds(time)), 6)
        assert clock_skew_seconds({"time": time, "received": received}) == expected, (time, received)


def test_clock_skew_of_odd_stamps_falls_back_to_full_parsing():
    assert clock_skew_seconds({"time": "2026-01-01T10:00:00+00:00", "received": "2026-01-01T10:05:00Z"}) == 300.0
    assert clock_skew_seconds({"time": "2026-01-01T10:00:0e.000000Z", "received": "2026-01-01T10:05:00.000000Z"}) is MISSING
    assert clock_skew_seconds({"time": "2026-01-01T10:59:59.5Z", "received": "2026-01-01T11:00:00.25Z"}) == 0.75

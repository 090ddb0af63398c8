"""Derived fields: the shortcuts for clock skew give exactly what full parsing gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.detect.derived import (
    SKEW_SURELY_BELOW,
    clock_skew_seconds,
    epoch_micros,
    epoch_seconds,
    parse_time,
    skew_surely_below_a_minute,
)
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


# -- the skipped skew (issue 6): a sure "under a minute" never disagrees with the exact value ------

MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC))
ODD_CHARACTERS = "0123456789:.-TZ_+ ,\u0663x"  # \u0663: an Arabic-Indic digit (str.isdigit() accepts it)


@st.composite
def stamps(draw, near: datetime | None = None) -> str:
    """A sealed stamp, often near another moment, sometimes in another form or with one character changed."""
    if near is not None and draw(st.booleans()):
        moment = near + timedelta(microseconds=draw(st.integers(-(10**8), 10**8)))
    else:
        moment = draw(MOMENTS)
    text = draw(st.sampled_from(["%Y-%m-%dT%H:%M:%S.%fZ"] * 6 + ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f+00:00"]))
    text = moment.strftime(text)
    if draw(st.integers(0, 3)) == 0:
        position = draw(st.integers(0, len(text) - 1))
        text = text[:position] + draw(st.sampled_from(ODD_CHARACTERS)) + text[position + 1:]
    return text


@st.composite
def stamp_pairs(draw) -> tuple[str, str]:
    sent = draw(MOMENTS)
    return draw(stamps(near=sent)), draw(stamps(near=sent))


def exact_skew(sent: str, got: str) -> object:
    """The skew by plain datetime arithmetic (exact microseconds), MISSING if either is unreadable."""
    start, end = parse_time(sent), parse_time(got)
    if start is None or end is None:
        return MISSING
    return abs(end - start) / timedelta(seconds=1)


@settings(max_examples=1500, deadline=None)
@given(stamp_pairs())
def test_sure_under_a_minute_means_the_exact_skew_is_under_a_minute(pair: tuple[str, str]):
    sent, got = pair
    event = {"time": sent, "received": got}
    exact = exact_skew(sent, got)
    if skew_surely_below_a_minute(event):
        assert exact is not MISSING and 0 <= exact < SKEW_SURELY_BELOW, (sent, got, exact)
    assert clock_skew_seconds(event) == exact or clock_skew_seconds(event) is exact is MISSING, (sent, got)


@settings(max_examples=1500, deadline=None)
@given(stamps())
def test_sealed_stamp_shortcut_gives_the_microseconds_datetime_gives(text: str):
    moment = parse_time(text)
    exact = None if moment is None else (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert epoch_micros(text) == exact, text
    assert epoch_micros(text) == exact, text  # again, with its minute remembered


def test_sure_under_a_minute_needs_the_sealed_form_and_the_same_minute():
    assert skew_surely_below_a_minute({"time": "2026-01-01T10:00:00.000000Z", "received": "2026-01-01T10:00:59.999999Z"})
    for sent, got in [
        ("2026-01-01T10:00:59.999999Z", "2026-01-01T10:01:00.000000Z"),  # another minute
        ("2026-01-01T10:00:00.1_0000Z", "2026-01-01T10:00:00.000000Z"),  # int() and float() accept "1_0"
        ("2026-01-01T10:00:00.\u06630000Z", "2026-01-01T10:00:00.000000Z"),  # a non-ASCII digit
        ("2026-01-01T10:00:60.000000Z", "2026-01-01T10:00:00.000000Z"),  # no 60th second
        ("2026-02-30T10:00:00.000000Z", "2026-02-30T10:00:01.000000Z"),  # no such day
        ("2026-01-01T10:00:00.000+01:00", "2026-01-01T10:00:00.000+02:00"),  # 27 characters, not sealed
        ("2026-01-01T10:00:00,000000Z", "2026-01-01T10:00:01,000000Z"),  # fromisoformat reads the comma
    ]:
        assert not skew_surely_below_a_minute({"time": sent, "received": got}), (sent, got)
    assert not skew_surely_below_a_minute({"time": "2026-01-01T10:00:00.000000Z"})


def test_same_hour_shortcut_rejects_what_full_parsing_rejects():
    odd = {"time": "2026-01-01T10:00:00.1_0000Z", "received": "2026-01-01T10:01:00.000000Z"}
    assert clock_skew_seconds(odd) is MISSING  # it once read "1_0000" as 10000 µs
    assert clock_skew_seconds({"time": "2026-02-30T10:00:00.000000Z", "received": "2026-02-30T10:01:00.000000Z"}) \
        is MISSING

"""Correlation windows: sliding, lateness, closing conditions, temporal order, bounded state."""

from __future__ import annotations

import resource

from tests.detect.conftest import engine_for
from trailseal.detect.correlate import CorrelationSpec, Correlator, format_epoch
from trailseal.detect.paths import path_getter

BASE = 1_770_000_000.0


def ev(second: float, key: str = "k", value: str = "v", index: int = 0) -> dict:
    return {
        "time": format_epoch(BASE + second),
        "log": "default",
        "index": index,
        "attributes": {"key": key, "value": value},
    }


def correlator(
    kind: str = "event_count",
    op: str = "gte",
    count: float = 3,
    span: float = 60,
    rules: tuple[str, ...] = ("r",),
    **options,
) -> Correlator:
    get = path_getter("attributes.key")
    spec = CorrelationSpec(
        id="c",
        type=kind,
        rules=list(rules),
        timespan=span,
        op=op,
        count=count,
        group_by={r: [get] for r in rules},
        value={r: path_getter("attributes.value") for r in rules},
    )
    return Correlator(spec, **options)


def feed(corr: Correlator, items: list[tuple[str, dict]]) -> list:
    return [m for rule, item in items for m in corr.observe(rule, item)]


def test_event_count_fires_when_the_window_holds_enough():
    corr = correlator()
    matches = feed(corr, [("r", ev(t, index=i)) for i, t in enumerate((0, 10, 20))])
    assert len(matches) == 1
    assert matches[0].group == ("k",)
    assert matches[0].event_indices == [("default", 0), ("default", 1), ("default", 2)]
    assert matches[0].first_time == format_epoch(BASE) and matches[0].last_time == format_epoch(BASE + 20)


def test_window_slides_old_events_out():
    corr = correlator()
    assert feed(corr, [("r", ev(t)) for t in (0, 50, 100, 150)]) == []  # never 3 within 60 s
    assert len(feed(corr, [("r", ev(155))])) == 1  # 100, 150, 155


def test_window_edges_are_inclusive():
    corr = correlator(count=2, span=60)
    assert len(feed(corr, [("r", ev(0)), ("r", ev(60))])) == 1
    corr = correlator(count=2, span=60)
    assert feed(corr, [("r", ev(0)), ("r", ev(60.001))]) == []


def test_groups_are_separate():
    corr = correlator()
    items = [("r", ev(i, key=f"k{i % 2}")) for i in range(5)]  # k0 x3, k1 x2
    assert [m.group for m in feed(corr, items)] == [("k0",)]


def test_one_alert_per_window_for_a_burst():
    corr = correlator(count=3, span=60)
    matches = feed(corr, [("r", ev(t)) for t in range(0, 150)])  # one event a second for 150 s
    assert len(matches) == 3  # fires at 2 s, then muted for 60 s: again at 62+, then 122+
    assert [m.last_time for m in matches] == [format_epoch(BASE + s) for s in (2, 62, 122)]


def test_late_event_within_lateness_counts():
    corr = correlator(count=3, span=60, lateness=30)
    assert feed(corr, [("r", ev(100)), ("r", ev(110))]) == []
    matches = feed(corr, [("r", ev(85))])  # 25 s late, inside the 30 s lateness
    assert len(matches) == 1
    assert matches[0].first_time == format_epoch(BASE + 85)


def test_event_later_than_lateness_is_dropped_and_counted():
    corr = correlator(count=3, span=60, lateness=30)
    feed(corr, [("r", ev(100)), ("r", ev(110))])
    assert feed(corr, [("r", ev(75))]) == []  # 35 s behind the newest event
    assert corr.late_events == 1


def test_value_count_counts_distinct_values():
    corr = correlator(kind="value_count", count=3)
    same = [("r", ev(i, value="alice")) for i in range(5)]
    assert feed(corr, same) == []
    assert len(feed(corr, [("r", ev(6, value="bob")), ("r", ev(7, value="carol"))])) == 1


def test_value_count_forgets_values_that_left_the_window():
    corr = correlator(kind="value_count", count=3, span=60)
    items = [("r", ev(0, value="a")), ("r", ev(30, value="b")), ("r", ev(70, value="c"))]
    assert feed(corr, items) == []  # a left before c arrived


def test_closing_condition_is_decided_when_the_window_ends():
    corr = correlator(op="lt", count=3, span=60, lateness=0)
    assert (
        feed(
            corr,
            [
                ("r", ev(0, key="quiet")),
                ("r", ev(10, key="busy")),
                ("r", ev(11, key="busy")),
                ("r", ev(12, key="busy")),
            ],
        )
        == []
    )
    matches = feed(corr, [("r", ev(200, key="other"))])  # watermark passes both windows
    assert [m.group for m in matches] == [("quiet",)]
    assert [m.group for m in corr.flush()] == [("other",)]


def test_temporal_needs_every_rule_in_any_order():
    corr = correlator(kind="temporal", rules=("a", "b"), span=60)
    assert feed(corr, [("b", ev(0)), ("b", ev(5))]) == []
    assert len(feed(corr, [("a", ev(10))])) == 1
    corr = correlator(kind="temporal", rules=("a", "b"), span=60)
    assert feed(corr, [("a", ev(0)), ("b", ev(61))]) == []


def test_temporal_ordered_needs_the_order():
    corr = correlator(kind="temporal_ordered", rules=("a", "b"), span=60)
    assert feed(corr, [("b", ev(0)), ("a", ev(5))]) == []
    assert len(feed(corr, [("b", ev(10))])) == 1


def test_state_is_bounded_for_a_million_groups():
    corr = correlator(count=2, span=3600, max_groups=10_000)
    stamps = [format_epoch(BASE + s) for s in range(1000)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(1_000_000):
        corr.observe("r", {"time": stamps[i // 1000], "attributes": {"key": i}})
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(corr.groups) == 10_000
    assert corr.evicted == 990_000
    assert grown_mib < 100, f"peak RSS grew {grown_mib:.0f} MiB"  # unbounded state would need > 1 GiB


def test_expired_groups_are_dropped_by_the_watermark():
    corr = correlator(count=5, span=10, lateness=0)
    for i in range(2000):
        corr.observe("r", ev(i, key=f"k{i}"))
    assert len(corr.groups) < 300  # only groups still inside the last window (plus one sweep's lag)


def test_entries_per_group_are_capped():
    corr = correlator(count=10**9, span=10**6, max_entries=100)
    for i in range(1000):
        corr.observe("r", ev(i))
    assert len(corr.groups[("k",)].times) == 100


CHAIN = """
title: fail
name: fail
status: test
logsource: {product: trailseal}
detection:
    sel: {outcome: failure}
    condition: sel
---
title: many fails
id: 7f0c2b1e-1111-4222-8333-444455556666
name: many
author: tester
correlation:
    type: event_count
    rules: [fail]
    group-by: [actor.id]
    timespan: 1m
    condition: {gte: 3}
level: high
"""


def test_engine_runs_correlations_with_group_by_and_keeps_author():
    from tests.detect.conftest import event

    engine = engine_for(CHAIN)
    alerts = []
    for i in range(4):
        alerts += engine.process(event(outcome="failure", time=f"2026-03-02T10:00:0{i}Z"))
    (alert,) = alerts
    assert alert.group == {"actor.id": "alice"}
    assert alert.author == "tester" and alert.level == "high" and len(alert.events) == 3

"""Legal holds: held events are never pruned; holds by id or by query; release lets policy resume."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.archive.helpers import T0
from tests.conftest import make_event
from trailseal.retention import RetentionError


def utc(*args) -> datetime:
    return datetime(*args, 12, tzinfo=UTC)


def test_hold_by_ids_keeps_events_past_expiry_until_released(trail, retention, clock):
    trail.append([make_event(i) for i in range(20)])
    hold = retention.hold(reason="case 1", ids=["evt-00000000", "evt-00000001"])
    assert (hold.ids, hold.released) == (2, None) and retention.is_held("default", 1)
    retention.apply(utc(2034, 1, 1))
    assert {i for i in range(20) if retention.status("default", i) == "hot"} == {0, 1, 4, 9, 14, 19}
    plan = retention.plan(utc(2034, 1, 1))
    assert [(s.action, s.policy, s.count) for s in plan.due] == [
        ("held", "authentication", 1), ("held", "data_access", 1)]
    released = retention.release(hold.id)
    assert released.released is not None and retention.holds() == []
    assert [h.id for h in retention.holds(active=False)] == [hold.id]
    retention.apply(utc(2034, 1, 1))
    assert retention.status("default", 0) == retention.status("default", 1) == "expired"


def test_query_hold_covers_events_sealed_after_it(trail, retention, clock):
    retention.hold(reason="insider case", query="actor:mallory category:data_access")
    trail.append([make_event(i, actor={"id": "mallory", "type": "user"}) for i in range(10)])
    retention.apply(utc(2027, 6, 1))
    states = {i: retention.status("default", i) for i in range(10)}
    assert [i for i, s in states.items() if s == "hot"] == [1, 2, 3, 4, 6, 7, 8, 9]  # admin, config, held
    assert states[0] == states[5] == "expired"


def test_hold_on_archived_entries_locks_their_segment(trail, retention, clock, archive):
    trail.append([make_event(i) for i in range(10)])
    retention.apply(utc(2026, 3, 2))
    (key,) = archive.target.keys()
    assert retention.status("default", 1) == "archived"
    hold = retention.hold(reason="regulator request", ids=["evt-00000001"])
    assert archive.target.held(key)
    result = retention.apply(utc(2026, 8, 1))
    assert retention.status("default", 1) == "archived" and retention.status("default", 3) == "expired"
    assert result.deleted == [] and key in archive.target.keys()
    assert retention.read("default", 1) == dict(archive.open(key).entries())[1]
    retention.release(hold.id)
    assert not archive.target.held(key)
    result = retention.apply(utc(2026, 8, 1))
    assert result.deleted == [key] and key not in archive.target.keys()
    assert retention.status("default", 1) == "expired"


@pytest.mark.parametrize("kwargs, message", [
    ({"reason": " ", "ids": ["x"]}, "needs a reason"),
    ({"reason": "r"}, "needs --ids or --query"),
    ({"reason": "r", "query": "shoe:size"}, "unknown field"),
])
def test_bad_holds(retention, kwargs, message):
    with pytest.raises(RetentionError, match=message):
        retention.hold(**kwargs)


def test_releasing_twice_or_unknown(retention):
    hold = retention.hold(reason="r", ids=["a"])
    retention.release(hold.id)
    with pytest.raises(RetentionError, match="no active legal hold"):
        retention.release(hold.id)
    with pytest.raises(RetentionError, match="no active legal hold 99"):
        retention.release(99)


def test_held_data_access_event_survives_the_segment_of_its_neighbours(trail, retention, clock):
    clock.now = T0
    trail.append([make_event(i) for i in range(10)])
    retention.hold(reason="r", ids=["evt-00000003"])
    retention.apply(utc(2026, 3, 2))
    assert retention.status("default", 3) == "hot" and retention.status("default", 1) == "archived"

"""Alert storm control: a rule's alerts past its per-minute budget become one rollup alert that lists
every held match; nothing matched goes unrecorded, and a real server seals the rollup."""

from __future__ import annotations

import json

import httpx

import trailseal
from tests.api.server import Server
from tests.conftest import make_event
from trailseal.alerts.rollup import LISTED_EVENTS, RollupGate
from trailseal.alerts.service import finding
from trailseal.detect.engine import Alert

PRIVILEGE_GRANT = "0183c1cc-c4c2-4e44-9e33-954aca7eea93"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alert(rule: str, index: int) -> Alert:
    moment = f"2026-11-27T10:00:{index % 60:02d}.000000Z"
    return Alert(rule, f"rule {rule}", "high", "tester", ["attack.t1098"], [("default", index)],
                 first_time=moment, last_time=moment)


def test_alerts_within_the_budget_pass_and_the_rest_wait_for_the_minute_to_end():
    clock = Clock()
    gate = RollupGate(3, clock=clock)
    raised = gate.admit([alert("a", i) for i in range(10)] + [alert("b", 50), alert("b", 51)])
    assert [(a.rule_id, a.events[0][1]) for a in raised] == [("a", 0), ("a", 1), ("a", 2), ("b", 50), ("b", 51)]
    assert gate.rolled_up == 7
    clock.now += 59.9
    assert gate.due() == []
    clock.now += 0.1
    (rollup,) = gate.due()
    assert rollup.rule_id == "a" and rollup.rolled_up == 7
    assert rollup.events == [("default", i) for i in range(3, 10)]
    assert (rollup.first_time, rollup.last_time) == ("2026-11-27T10:00:03.000000Z", "2026-11-27T10:00:09.000000Z")
    assert "7 more matches rolled up" in rollup.title
    assert gate.due() == []


def test_a_new_minute_has_a_new_budget_and_brings_the_old_rollup_along():
    clock = Clock()
    gate = RollupGate(1, clock=clock)
    assert len(gate.admit([alert("a", 0), alert("a", 1)])) == 1
    clock.now += 61
    raised = gate.admit([alert("a", 2), alert("a", 3)])
    assert [(a.rolled_up, [i for _, i in a.events]) for a in raised] == [(1, [1]), (0, [2])]
    (rest,) = gate.flush()
    assert rest.rolled_up == 1 and rest.events == [("default", 3)]
    assert gate.flush() == []


def test_a_long_storm_is_held_in_bounded_memory_and_its_rollup_counts_every_match():
    """A rule matching thousands of times a minute keeps one running rollup, not every alert: it lists the
    first LISTED_EVENTS events (in order), spans the earliest to the latest time seen, and counts them all."""
    clock = Clock()
    gate = RollupGate(2, clock=clock)
    storm = [Alert("a", "rule a", "high", "tester", [], [("default", i), ("default", i + 100_000)],
                   first_time=f"2026-11-27T10:{i // 60 % 60:02d}:{i % 60:02d}.000000Z",
                   last_time=f"2026-11-27T11:{i // 60 % 60:02d}:{i % 60:02d}.000000Z") for i in range(5000)]
    storm.reverse()  # times arrive out of order: the span is still the earliest to the latest
    for start in range(0, len(storm), 500):
        gate.admit(storm[start:start + 500])
    held = gate._windows["a"].held
    assert held.count == 4998 and len(held.events) == LISTED_EVENTS
    (rollup,) = gate.flush()
    expected = [pair for a in storm[2:] for pair in a.events][:LISTED_EVENTS]
    assert rollup.rolled_up == 4998 and rollup.events == expected
    times = [moment for a in storm[2:] for moment in (a.first_time, a.last_time)]
    assert (rollup.first_time, rollup.last_time) == (min(times), max(times)) == ("2026-11-27T10:00:00.000000Z",
                                                                                 "2026-11-27T11:59:59.000000Z")


def test_a_budget_of_zero_raises_every_alert():
    gate = RollupGate(0)
    alerts = [alert("a", i) for i in range(50)]
    assert gate.admit(alerts) == alerts and gate.rolled_up == 0 and gate.flush() == []


def test_the_sealed_finding_says_how_many_alerts_a_rollup_stands_for():
    gate = RollupGate(1, clock=Clock())
    gate.admit([alert("a", i) for i in range(4)])
    (rollup,) = gate.flush()
    sealed = finding(rollup, "2026-11-27T10:01:00.000000Z")
    assert sealed["attributes"]["rolled_up"] == 3
    assert sealed["attributes"]["events"] == [["default", 1], ["default", 2], ["default", 3]]
    assert "rolled_up" not in finding(alert("a", 9), "2026-11-27T10:01:00.000000Z")["attributes"]


def grant(i: int) -> dict:
    event = make_event(i, action="user.role.grant", category="admin", outcome="success")
    event["target"] = {"type": "user", "id": f"user-{i}"}
    return event


def test_a_server_seals_a_storm_as_budgeted_alerts_plus_one_rollup_listing_the_rest(data_dir):
    env = {"TRAILSEAL_ALERTS__MAX_ALERTS_PER_RULE_PER_MINUTE": "4"}
    server = Server(data_dir, env=env).start()
    try:
        answer = httpx.post(server.url + "/v1/events", json=[grant(i) for i in range(30)],
                            headers={"Authorization": f"Bearer {server.admin}"})
        assert answer.status_code == 200
        sealed = {r["index"] for r in answer.json()["receipts"]}
    finally:
        server.stop()  # stopping seals the rollup the minute has not closed yet
    with trailseal.open(data_dir) as trail:
        meta = [json.loads(data) for _, data in trail.store.read_entries("trailseal", 0, 10_000)]
        findings = [e for e in meta if e["action"] == "detect.alert" and e["attributes"]["rule_id"] == PRIVILEGE_GRANT]
        assert all(r.ok for r in trail.verify())
    single = [f for f in findings if "rolled_up" not in f["attributes"]]
    (rollup,) = [f for f in findings if "rolled_up" in f["attributes"]]
    assert len(single) == 4 and rollup["attributes"]["rolled_up"] == 26
    listed = {index for f in findings for _, index in f["attributes"]["events"]}
    assert listed == sealed  # every matched event is named by exactly the sealed findings

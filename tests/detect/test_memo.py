"""Rules remembered by field value (memo.py): one field read for many rules, and a remembered
result never leaks between values that Sigma tells apart."""

from __future__ import annotations

from sigma.collection import SigmaCollection

from tests.detect.conftest import event, web
from trailseal.detect import Engine
from trailseal.detect.memo import MEMO_SIZE


def rule(name: str, detection: dict, logsource: dict | None = None) -> dict:
    return {"title": name, "id": None, "name": name, "status": "test", "author": "test",
            "logsource": logsource or {"product": "trailseal"}, "detection": {**detection, "condition": "sel"}}


def engine_of(*docs: dict) -> Engine:
    return Engine(SigmaCollection.from_dicts(list(docs)))


def fired(engine: Engine, item: dict) -> list[str]:
    return [a.rule_id for a in engine.process(item)]


def test_rules_on_one_field_share_one_read_and_one_lookup():
    engine = engine_of(*[rule(f"status_{n}", {"sel": {"sc-status|gte": 400 + n}}, {"category": "webserver"})
                         for n in range(5)])
    assert fired(engine, web(status=402)) == ["status_0", "status_1", "status_2"]
    assert fired(engine, web(status=200)) == []
    assert fired(engine, web(status=404)) == [f"status_{n}" for n in range(5)]
    (plan,) = engine._dispatch.values()
    (group,) = plan.groups
    assert len(group.rules) == 5 and len(group.memo) == 3  # three distinct statuses, each decided once


def test_values_equal_in_python_but_not_in_sigma_are_remembered_apart():
    engine = engine_of(rule("one", {"sel": {"attributes.flag": 1}}))
    for value, expected in [(1, True), (True, False), ("1", True), (1.0, True), (True, False), ("true", False),
                            (1, True), ([2, 1], True), ([True], False)]:
        assert fired(engine, event(attributes={"flag": value})) == (["one"] if expected else []), value


def test_a_key_field_missing_from_the_event_is_not_taken_as_constant():
    engine = engine_of(rule("login", {"sel": {"action": "user.login"}}))
    missing = event(attributes={"action": "user.login"})
    del missing["action"]
    other = event(attributes={"action": "user.logout"})
    del other["action"]
    assert fired(engine, missing) == ["login"]
    assert fired(engine, other) == []  # same dispatch key, different attributes.action
    assert fired(engine, event(action="user.login")) == ["login"]


def test_memory_is_bounded():
    engine = engine_of(rule("agent", {"sel": {"cs-user-agent|re": "^sqlmap"}}, {"category": "webserver"}))
    for n in range(MEMO_SIZE + 50):
        engine.process(web(agent=f"agent/{n}"))
    assert fired(engine, web(agent="sqlmap/1.8")) == ["agent"]
    (group,) = [g for plan in engine._dispatch.values() for g in plan.groups]
    assert len(group.memo) <= MEMO_SIZE and group.direct  # every value new: remembering stopped
    assert fired(engine, web(agent="sqlmap/2")) == ["agent"] and fired(engine, web(agent="curl")) == []

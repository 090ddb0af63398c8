"""The fast paths of issue 6 give the answers of the plain code they replace."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.types import SigmaCompareExpression, SigmaNumber

from tests.detect.conftest import event
from tests.detect.test_correlate import BASE, correlator, ev
from tests.detect.test_derived import exact_skew
from tests.detect.test_memo import engine_of, rule
from trailseal.detect.correlate import CorrelationSpec, Correlator, format_epoch
from trailseal.detect.matchers import compare_test
from trailseal.detect.memo import CHECK_EVERY, MemoGroup
from trailseal.detect.paths import MISSING, _looping, _unrolled, first_present, path_getter

KEYS = ["a", "b", "c", "d", "a.b", "b.c", "c.d", "a.b.c", "b.c.d", "a.b.c.d"]
leaves = st.one_of(st.integers(), st.text(max_size=3), st.none())
documents = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), documents, max_size=6))
def test_generated_path_reads_equal_the_loop(event: dict):
    for parts in (("a", "b", "c"), ("a", "b", "c", "d"), ("b", "c", "d"), ("a", "b", "c", "d", "e")):
        assert repr(_unrolled(parts)(event)) == repr(_looping(parts)(event)), parts


def test_generated_path_reads_dotted_keys_and_lists():
    get = path_getter("attributes.aws.user_identity.arn")
    assert get({"attributes": {"aws.user_identity": {"arn": "x"}}}) == "x"
    assert get({"attributes": {"aws": {"user_identity": {"arn": "y"}}}}) == "y"
    assert get({"attributes": {"aws": [{"user_identity.arn": 1}, {"user_identity": {"arn": 2}}]}}) == [1, 2]
    assert get({"attributes": {"aws": "flat"}}) is MISSING


def test_first_present_of_two_and_three():
    a, b, c = path_getter("a"), path_getter("b"), path_getter("c")
    assert first_present([a, b])({"b": 0}) == 0
    assert first_present([a, b, c])({"c": None, "b": MISSING}) is None
    assert first_present([a, b, c])({}) is MISSING


def test_correlations_sharing_group_keys_match_as_if_alone():
    shared: dict = {}
    get = path_getter("attributes.key")

    def spec(name: str, count: int) -> CorrelationSpec:
        return CorrelationSpec(id=name, type="event_count", rules=["r"], timespan=60, op="gte", count=count,
                               group_by={"r": [get]})

    together = [Correlator(spec("a", 2), keyers=shared), Correlator(spec("b", 3), keyers=shared)]
    alone = [correlator(count=2), correlator(count=3)]
    events = [ev(t, key=k, index=i) for i, (t, k) in enumerate([(0, "x"), (1, "y"), (2, "x"), (3, "X"), (4, "y")])]
    for item in events:
        for mine, theirs in zip(together, alone, strict=True):
            assert [m.event_indices for m in mine.observe("r", item)] == \
                   [m.event_indices for m in theirs.observe("r", item)]
    assert len(shared) == 1  # one keyer for both correlations
    assert together[1].groups.keys() == {("x",), ("y",)}  # keys folded: "X" joined "x"


def test_observe_answers_nothing_without_sharing_state():
    corr = correlator(count=2)
    assert corr.observe("r", ev(0)) == []
    assert corr.observe("other", ev(1)) == []
    fired = corr.observe("r", ev(2))
    assert len(fired) == 1 and fired[0].last_time == format_epoch(BASE + 2)
    assert corr.observe("r", ev(3)) == []  # muted for a timespan; the empty answer stayed empty


class _Rule:
    def __init__(self, predicate):
        self.predicate = predicate


def test_memo_group_remembers_then_runs_directly_when_values_do_not_repeat():
    calls = []
    rule = _Rule(lambda event: calls.append(event) or event["v"] > 5)
    group = MemoGroup((rule,), [path_getter("v")])
    assert group.matching({"v": 7}) == (rule,) and group.matching({"v": 7}) == (rule,)
    assert len(calls) == 1 and not group.direct
    for value in range(CHECK_EVERY + 1):
        group.matching({"v": value})
    assert group.direct and group.matching is group.evaluate
    assert group.matching({"v": 3}) == ()


def test_numeric_compare_fast_path_keeps_sigma_semantics():
    test = compare_test(SigmaCompareExpression(SigmaNumber(300), SigmaCompareExpression.CompareOperators.GT))
    assert test(300.5) and test(301) and test("301")
    assert not test(300) and not test(True) and not test("x") and not test(None)


def test_numbers_are_remembered_by_where_they_fall_among_the_bounds():
    from tests.detect.test_memo import engine_of, fired, rule

    engine = engine_of(rule("over", {"sel": {"attributes.skew|gt": 300}}),
                       rule("at_least", {"sel": {"attributes.skew|gte": 300}}),
                       rule("between", {"sel": {"attributes.skew|gt": 10, "attributes.skew|lt": 20}}))
    cases = [(300, ["at_least"]), (300.0001, ["over", "at_least"]), (299.9, []), (15, ["between"]),
             (10, []), (float("nan"), []), (True, []), ("301", ["over", "at_least"]), (float("inf"), ["over", "at_least"])]
    sealed = event(attributes={"skew": 0})

    def with_skew(value: object) -> dict:  # NaN and infinity cannot be sealed, but can reach the engine
        return {**sealed, "attributes": {"skew": value}}

    for _ in range(2):
        for value, expected in cases:
            assert fired(engine, with_skew(value)) == expected, value
    for step in range(CHECK_EVERY * 2):  # every value new, but only a few places among the bounds
        skew = 300 + step % 7 / 1000 - 0.003
        assert fired(engine, with_skew(skew)) == (["over", "at_least"] if skew > 300 else
                                                                   ["at_least"] if skew == 300 else [])
    groups = [g for plan in engine._dispatch.values() for g in plan.groups]
    over = next(g for g in groups if g.rules[0].id == "over")
    assert not over.direct and len(over.memo) <= 8


def test_only_pure_numeric_comparisons_get_bounds():
    from tests.detect.test_memo import engine_of, rule

    engine = engine_of(rule("skew", {"sel": {"attributes.skew|gt": 300}}),
                       rule("two", {"sel": {"attributes.skew|gt": 1, "attributes.other": "x"}}),
                       rule("text", {"sel": {"attributes.skew": "300"}}))
    assert [r.thresholds for r in engine.rules] == [(300,), None, None]
    between = engine_of(rule("between", {"sel": {"attributes.skew|gt": 10, "attributes.skew|lt": 20}}))
    assert between.rules[0].thresholds == (10, 20)


def test_sealed_stamps_give_the_seconds_datetime_gives():
    import random
    from datetime import UTC, datetime, timedelta

    from trailseal.detect.derived import epoch_seconds, parse_time

    rng = random.Random(3)
    start = datetime(1971, 1, 1, tzinfo=UTC)
    for _ in range(3000):
        text = (start + timedelta(microseconds=rng.randrange(4 * 10**15))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert epoch_seconds(text) == parse_time(text).timestamp(), text
    for odd in ("2026-01-01T10:00:00,250000Z", "2026-01-01 10:00:00.250000Z"):  # other forms: the slow path
        assert epoch_seconds(odd) == 1767261600.25
    for bad in ("2026-01-01T10:60:00.000000Z", "2026-01-01T10:00:60.000000Z", "2026-13-01T10:00:00.000000Z",
                "2026-01-01T10:00:0\u00b2.000000Z", "2026-01-01T10:00:00.000_00Z", "2026-01-01T10:00:00.00000+Z"):
        assert epoch_seconds(bad) is None, bad


def test_skew_groups_skip_the_skew_only_when_no_bound_lies_within_a_minute():
    from trailseal.detect.derived import clock_skew_seconds
    from trailseal.detect.memo import _sure_bin

    assert _sure_bin([clock_skew_seconds], [300]) is not None
    assert _sure_bin([clock_skew_seconds], [-5, 61, 300]) is not None
    for bounds in ([0], [30], [60], [59.999, 300], []):
        assert _sure_bin([clock_skew_seconds], bounds) is None, bounds
    assert _sure_bin([path_getter("clock_skew_seconds")], [300]) is None  # another field of that name


SKEW_RULES = {"over_5m": {"clock_skew_seconds|gt": 300}, "at_least_61": {"clock_skew_seconds|gte": 61},
              "under_30": {"clock_skew_seconds|lt": 30}, "at_most_60": {"clock_skew_seconds|lte": 60}}


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(-(10**9), 10**9), st.booleans()), min_size=1, max_size=40))
def test_engine_with_skipped_skews_fires_as_the_exact_skew_says(stream: list[tuple[int, int, bool]]):
    wide = engine_of(*[rule(name, {"sel": sel}) for name, sel in SKEW_RULES.items() if name in ("over_5m", "at_least_61")])
    tight = engine_of(*[rule(name, {"sel": sel}) for name, sel in SKEW_RULES.items()])
    sealed = event()
    for start, lateness, garble in stream:
        sent, got = format_epoch(1_780_000_000 + start / 1000), format_epoch(1_780_000_000 + (start + lateness) / 1e6)
        if garble:
            got = got[:17] + "6" + got[18:]  # second 6x: not a time
        skew = exact_skew(sent, got)
        item = {**sealed, "time": sent, "received": got}
        expected = {"over_5m": lambda s: s > 300, "at_least_61": lambda s: s >= 61,
                    "under_30": lambda s: s < 30, "at_most_60": lambda s: s <= 60}
        fires = sorted(n for n, test in expected.items() if skew is not MISSING and test(skew))
        assert sorted(a.rule_id for a in tight.process(item)) == fires, (sent, got)
        assert sorted(a.rule_id for a in wide.process(item)) == [n for n in fires if n in ("at_least_61", "over_5m")]


# -- correlations: the written-out counting path and the shared per-event reads (issue 6) ---------

observations = st.lists(  # (seconds after the previous event, key, counted value, rule)
    st.tuples(st.integers(-20, 30), st.sampled_from("kKlm"), st.sampled_from(["/a", "/b", "/c", None]),
              st.sampled_from(["r", "s"])),
    max_size=60,
)


def _counting(kind: str, op: str, count: int, keyers: dict | None, inline: bool, max_entries: int) -> Correlator:
    key, value = path_getter("attributes.key"), path_getter("attributes.value")
    spec = CorrelationSpec(id=f"{kind}-{op}-{count}", type=kind, rules=["r", "s"], timespan=60, op=op, count=count,
                           group_by={"r": [key], "s": [key]}, value={"r": value})
    corr = Correlator(spec, lateness=30, max_entries=max_entries, keyers=keyers)
    corr._inline = corr._inline and inline  # off: every newest event through _latest() and _holds()
    return corr


def _answers(matches: list) -> list:
    return [(m.rule, m.group, m.event_indices, m.first_time, m.last_time, m.event.get("index")) for m in matches]


@settings(max_examples=300, deadline=None)
@given(observations, st.sampled_from(["event_count", "value_count"]), st.sampled_from(["gt", "gte"]),
       st.integers(1, 12), st.sampled_from([3, 10_000]))
def test_written_out_counting_path_and_shared_reads_answer_as_the_general_path(
        stream: list, kind: str, op: str, count: int, max_entries: int):
    shared: dict = {}
    fast = [_counting(kind, op, count, shared, True, max_entries), _counting(kind, op, count + 1, shared, True, max_entries)]
    plain = [_counting(kind, op, count, None, False, max_entries), _counting(kind, op, count + 1, None, False, max_entries)]
    assert fast[0]._inline
    seconds = list(itertools.accumulate(step for step, *_ in stream))  # mostly rising, sometimes late
    for index, ((_, key, value, source), second) in enumerate(zip(stream, seconds, strict=True)):
        item = ev(second, key=key, index=index)
        if value is None:
            del item["attributes"]["value"]
        else:
            item["attributes"]["value"] = value
        for mine, theirs in zip(fast, plain, strict=True):
            assert _answers(mine.observe(source, item)) == _answers(theirs.observe(source, item)), (index, item)
    for mine, theirs in zip(fast, plain, strict=True):
        assert list(mine.groups) == list(theirs.groups)
        for key, group in mine.groups.items():
            other = theirs.groups[key]
            assert (group.times, group.refs, group.values, group.start, group.counts, group.muted_until) == \
                   (other.times, other.refs, other.values, other.start, other.counts, other.muted_until)
        assert (mine.late_events, mine.max_time) == (theirs.late_events, theirs.max_time)
        for key, group in mine.groups.items():  # each entry's reference is its own event's
            for moment, (_, index) in zip(group.times, group.refs, strict=True):
                assert (BASE + seconds[index], stream[index][1].lower()) == (moment, key[0]), (index, key)

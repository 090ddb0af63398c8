"""The correlator's incremental bookkeeping (counts kept as the oldest entries are dropped, each
rule's entry numbers for temporal_ordered) gives the alerts that recounting and rescanning the whole
window give, for any stream: late events, capped groups, every correlation type."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.detect.test_correlate import correlator, ev
from trailseal.detect.correlate import Correlator


class Rescanning(Correlator):
    """The straightforward way: recount the window whenever entries inside it are dropped, and scan
    the window for the rules' order."""

    def _drop_front(self, group, count):  # (the entry numbers go stale: this class never reads them)
        for name in ("times", "refs", "values"):
            del getattr(group, name)[:count]
        if count > group.start:
            group.start = 0
            self._recount(group)
        else:
            group.start -= count

    def _holds(self, group, low, high, latest):
        if self.spec.type != "temporal_ordered":
            return super()._holds(group, low, high, latest)
        wanted = len(self.spec.rules) - 1
        for i in range(high, low - 1, -1):
            if group.values[i] == wanted:
                wanted -= 1
                if wanted < 0:
                    return True
        return False


RULES = ("a", "b", "c")
KINDS = st.sampled_from([("temporal_ordered", "gte", 1), ("temporal", "gte", 1), ("value_count", "gte", 3),
                         ("value_count", "lt", 2), ("event_count", "gte", 4)])
STEPS = st.lists(
    st.tuples(st.sampled_from(RULES), st.integers(-40, 30), st.sampled_from("kl"), st.sampled_from("uvwx")),
    min_size=1, max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(KINDS, STEPS, st.integers(3, 12))
def test_incremental_windows_alert_as_recounting_ones(kind, steps, cap):
    """Time moves forward by small steps, sometimes back (late events, some too late to count)."""
    type_, op, count = kind
    made = []
    for rescanning in (False, True):
        corr = correlator(type_, op, count, span=20, rules=RULES, max_entries=cap, lateness=25)
        if rescanning:
            corr.__class__ = Rescanning
        now, alerts = 0.0, []
        for index, (rule, step, key, value) in enumerate(steps):
            now += step if step > 0 else 0
            moment = now + min(step, 0)  # a negative step: an event that arrives late
            found = corr.observe(rule, ev(moment, key, value, index))
            alerts += [(m.rule, m.group, m.event_indices, m.first_time, m.last_time) for m in found]
        alerts += [(m.rule, m.group, m.event_indices, m.first_time, m.last_time) for m in corr.flush()]
        made.append(alerts)
    assert made[0] == made[1]


def test_a_full_hot_group_is_not_recounted_for_each_new_event(monkeypatch):
    """One key's window holds the group's cap of entries: each new event drops the oldest, and the
    window's counts change by it alone (recounting the window for every event made such a stream
    quadratic: an attacker's one key could slow detection for everyone)."""
    recounts = []
    real = Correlator._recount
    monkeypatch.setattr(Correlator, "_recount", lambda self, group: recounts.append(1) or real(self, group))
    corr = correlator("temporal_ordered", span=10**6, rules=RULES, max_entries=100)
    for i in range(1000):
        corr.observe(RULES[i % 2], ev(i * 0.001, "k", "v", i))  # "c" never comes: the order never holds
    group = corr.groups[("k",)]
    assert len(group.times) == 100 and group.start == 0 and recounts == []
    assert group.counts == {0: 50, 1: 50}
    assert [len(numbers) for numbers in group.positions] == [50, 50, 0] and group.base == 900

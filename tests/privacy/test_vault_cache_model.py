"""Protection's memory of held values against a model of the writer: whatever the order of protecting,
committing (with or without the entry: a re-sent event), refusing, forgetting and confirming, an event is
never committed under a commitment whose vault row was not written by then (its own rows included)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_event
from trailseal.event import normalize, to_event
from trailseal.privacy import Keys, Policy
from trailseal.protection import Protection

RECEIVED = "2026-11-27T10:00:00.000000Z"
SUBJECTS = ("alice", "bob")
ADDRESSES = ("10.0.0.1", "10.0.0.2", "10.0.0.3")

operations = st.lists(
    st.one_of(
        st.tuples(st.just("protect"), st.sampled_from(SUBJECTS), st.sampled_from(ADDRESSES)),
        st.tuples(st.just("commit"), st.integers(0, 7)),
        st.tuples(st.just("commit quietly"), st.integers(0, 7)),  # written, but nobody confirms it
        st.tuples(st.just("refuse"), st.integers(0, 7)),
        st.tuples(st.just("forget"), st.sampled_from(SUBJECTS)),
        st.tuples(st.just("forget_all")),
    ),
    max_size=40,
)


def commitments(item) -> set[str]:
    actor = item.event.actor
    return {value for value in (actor.id, actor.ip) if value.startswith("pd:")}


@settings(max_examples=300, deadline=None)
@given(operations)
def test_no_event_is_committed_under_an_unwritten_commitment(steps):
    p = Protection(Policy(), Keys(b"\x07" * 32))
    written: set[str] = set()  # commitments whose vault rows the model writer wrote
    in_flight: list = []
    for n, step in enumerate(steps):
        if step[0] == "protect":
            actor = {"id": step[1], "type": "user", "ip": step[2]}
            in_flight.append(p.seal_form(normalize(to_event(make_event(n, actor=actor)), RECEIVED)))
        elif step[0] in ("commit", "commit quietly", "refuse") and in_flight:
            item = in_flight.pop(step[1] % len(in_flight))
            if step[0] == "refuse":  # an overloaded writer: 503, nothing written
                p.unhold(item.vault)
                continue
            written |= {row.commitment for row in item.vault}  # a re-sent event's rows are written too
            missing = commitments(item) - written
            assert not missing, f"committed under commitments with no vault row: {missing}"
            if step[0] == "commit":
                p.confirm(item.vault)
        elif step[0] == "forget":
            p.forget(step[1])
        elif step[0] == "forget_all":
            p.forget_all()

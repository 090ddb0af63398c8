"""Protection.seal_form skips the vault bookkeeping of an event that brings no new vault row; with the
same salts, it must seal exactly what the straightforward path (every event through `_with_rows`) seals."""

from __future__ import annotations

import hashlib
import random

from bench.events import event_dict
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.event import normalize, to_event
from trailseal.privacy import DEFAULT_POLICY, Keys, Policy, protect, tokens
from trailseal.protection import Protection

RECEIVED = "2026-11-27T10:00:00.000000Z"
KEYS = Keys(bytes(range(32)))
SALTS = [hashlib.sha256(b"salt %d" % i).digest() for i in range(4096)]
POLICIES = [
    DEFAULT_POLICY,
    Policy({"fields": {"attributes.note": "erasable", "request.trace_id": "erasable"}}),
]


class Straightforward(Protection):
    """Every event through the general path: reuse check, swaps, remembered values."""

    def _protected(self, event):
        return self._with_rows(*protect(event, self.policy, self.keys, self._commitments))


def seal_all(protection: Protection, dicts: list[dict]) -> list:
    tokens._salts.clear()
    tokens._salts.extend(SALTS)
    try:
        return [protection.seal_form(normalize(to_event(d), RECEIVED)) for d in dicts]
    finally:
        tokens._salts.clear()


def events_of(seed: int, count: int, users: int, notes: int) -> list[dict]:
    """Bench events from few users and few notes, so values repeat within and across events."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        data = event_dict(i, rng)
        user = rng.randrange(users)
        data["actor"] = {**data["actor"], "id": f"user{user}", "ip": f"10.0.0.{rng.randrange(3)}"}
        data["attributes"]["note"] = f"user{user}" if rng.random() < 0.3 else f"note {rng.randrange(notes)}"
        out.append(data)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32), st.integers(1, 40), st.integers(1, 6), st.integers(1, 4), st.sampled_from([0, 1])
)
def test_fast_path_seals_what_the_straightforward_path_seals(seed, count, users, notes, policy):
    dicts = events_of(seed, count, users, notes)
    fast = seal_all(Protection(POLICIES[policy], KEYS), dicts)
    straight = seal_all(Straightforward(POLICIES[policy], KEYS), dicts)
    assert [(s.event, s.canonical, s.vault) for s in fast] == [
        (s.event, s.canonical, s.vault) for s in straight
    ]
    assert any(s.vault for s in fast) and all(s.protected for s in fast)


def test_an_event_with_only_held_values_brings_no_rows_and_keeps_commitments():
    p = Protection(DEFAULT_POLICY, KEYS)
    (first,) = seal_all(p, events_of(7, 1, 1, 1))
    p.confirm(first.vault)  # the writer committed it
    (again,) = seal_all(p, events_of(7, 1, 1, 1))
    assert first.vault and again.vault == ()
    assert again.event.actor.id == first.event.actor.id and again.event.actor.ip == first.event.actor.ip

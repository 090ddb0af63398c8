"""Time travel on an injected clock: events of several categories go hot -> archived -> expired at
exactly their configured boundaries; held events survive; the log verifies at every step; proofs
issued before pruning still verify after it.

Policies (tests/retention/conftest.py): authentication hot 90d keep 1y; data_access hot 30d keep 180d;
admin keep 7y (never archived); config has no policy (kept, hot, forever). make_event(i) has category
authentication, data_access, admin, data_access, config for i % 5 = 0..4.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.archive.helpers import T0, US, entries
from tests.conftest import make_event
from trailseal.ledger import verify_consistency, verify_proof
from trailseal.ledger.checkpoint import open_checkpoint
from trailseal.retention import PrunedEntry, verify_log_pruned

A = range(0, 100)  # received at T0 = 2026-01-31T12:00Z
B = range(100, 200)  # received at T0 + 20 days = 2026-02-20T12:00Z
C = range(200, 250)  # received mid-way, at 2026-05-10T12:00Z
CATEGORY = ["authentication", "data_access", "admin", "data_access", "config"]


def utc(*args) -> datetime:
    return datetime(*args, 12, tzinfo=UTC)


# The oracle: every boundary written out by hand (calendar years, day counts), not computed by retention.py.
BOUNDARIES = {  # (batch, category): (leaves hot, expires)
    ("A", "data_access"): (utc(2026, 3, 2), utc(2026, 7, 30)),
    ("B", "data_access"): (utc(2026, 3, 22), utc(2026, 8, 19)),
    ("C", "data_access"): (utc(2026, 6, 9), utc(2026, 11, 6)),
    ("A", "authentication"): (utc(2026, 5, 1), utc(2027, 1, 31)),
    ("B", "authentication"): (utc(2026, 5, 21), utc(2027, 2, 20)),
    ("C", "authentication"): (utc(2026, 8, 8), utc(2027, 5, 10)),
    ("A", "admin"): (None, utc(2033, 1, 31)),
    ("B", "admin"): (None, utc(2033, 2, 20)),
    ("C", "admin"): (None, utc(2033, 5, 10)),
}


def batch(i: int) -> str:
    return "A" if i in A else "B" if i in B else "C"


def expected(i: int, now: datetime, held: set[int]) -> str:
    """hot, archived or expired, from the hand-written boundaries."""
    bounds = BOUNDARIES.get((batch(i), CATEGORY[i % 5]))
    if bounds is None or i in held:
        return "hot"
    hot_until, expires = bounds
    if now >= expires:
        return "expired"
    return "archived" if hot_until is not None and now >= hot_until else "hot"


def check(trail, retention, now: datetime, held: set[int], original: dict[int, bytes], proofs: dict):
    """Apply at now; every entry is where the oracle says; everything verifies; reads still work."""
    retention.apply(now)
    count = max(original) + 1
    states = {i: retention.status("default", i) for i in range(count)}
    want = {i: expected(i, now, held) for i in range(count)}
    assert states == want, f"at {now}: {[(i, states[i], want[i]) for i in range(count) if states[i] != want[i]]}"
    assert verify_log_pruned(trail.store, "default", [trail.verifier()]).ok
    assert retention.verify("default", deep=True).ok
    for i, item in retention.read_entries("default", 0, count):
        if want[i] == "expired":
            assert isinstance(item, PrunedEntry) and item.leaf_hash and "pruned by policy" in str(item)
        else:
            assert item == original[i]
    for i, (proof, entry) in proofs.items():
        verify_proof(proof, entry, trail.verifier())
        assert trail.prove(i) == proof or trail.store.tree_size("default") > 200
    return states


def seal_at(trail, clock, when: datetime, indices: range) -> None:
    clock.now = when
    trail.append([make_event(i) for i in indices])


def test_events_age_through_hot_archive_and_expiry_at_exact_boundaries(trail, retention, clock):
    seal_at(trail, clock, T0, A)
    seal_at(trail, clock, utc(2026, 2, 20), B)
    original = entries(trail.store)
    proofs = {i: (trail.prove(i), original[i]) for i in range(0, 200, 7)}
    old_checkpoint = trail.checkpoint()
    hold_ids = retention.hold(reason="case 7: litigation", ids=["evt-00000000", "evt-00000005", "evt-00000105"])
    actor = make_event(3)["actor"]["id"]  # sealed only as privacy commitments; the hold resolves them
    hold_query = retention.hold(reason="case 8", query=f"action:http.request actor:{actor}")
    held = {0, 5, 105} | {i for i in range(200) if i % 5 == 3 and make_event(i)["actor"]["id"] == actor}

    moments = sorted({b for bounds in BOUNDARIES.values() for b in bounds if b is not None})
    for boundary in moments:
        if boundary >= utc(2026, 5, 10) and 200 not in original:
            seal_at(trail, clock, utc(2026, 5, 10), C)
            original.update(entries(trail.store))
            _check_consistency(trail, old_checkpoint)
        for now in (boundary - US, boundary):
            clock.now = now
            check(trail, retention, now, held, original, proofs)

    assert retention.read("default", 1).policy == "data_access"
    assert retention.read("default", 1).date == "2026-07-30T12:00:00.000000Z"
    assert retention.archive.target.keys() == []  # every segment deleted once all its entries expired
    for hold in (hold_ids, hold_query):
        retention.release(hold.id)
    clock.now = utc(2033, 6, 1)
    states = check(trail, retention, clock.now, set(), original, proofs)
    assert {i for i, s in states.items() if s != "expired"} == {i for i in range(250) if i % 5 == 4}


def _check_consistency(trail, old_note: str) -> None:
    """After appending, the old checkpoint is consistent with the new one (tiles kept every hash)."""
    old = open_checkpoint(old_note, trail.verifier())
    new = open_checkpoint(trail.checkpoint(), trail.verifier())
    verify_consistency(old.size, new.size, old.root, new.root, trail.consistency_proof(old.size, new.size))


def test_plan_shows_what_falls_due_when(trail, retention, clock):
    seal_at(trail, clock, T0, A)
    plan = retention.plan(T0 + timedelta(days=10))
    assert plan.due == [] and plan.lines()[1] == "  nothing is due"
    upcoming = {(s.action, s.policy, s.due.date().isoformat()): s.count for s in plan.upcoming}
    assert upcoming == {
        ("archive", "data_access", "2026-03-02"): 40, ("expire", "data_access", "2026-07-30"): 40,
        ("archive", "authentication", "2026-05-01"): 20, ("expire", "authentication", "2027-01-31"): 20,
        ("expire", "admin", "2033-01-31"): 20,
    }
    due = retention.plan(utc(2026, 3, 2)).due
    assert [(s.action, s.policy, s.count, s.first, s.last) for s in due] == [
        ("archive", "data_access", 40, 1, 98)]
    assert "archive 40 data_access [1..98]" in "\n".join(retention.plan(utc(2026, 3, 2)).lines())


def test_apply_is_idempotent_and_restored_entries_are_not_archived_twice(trail, retention, clock):
    seal_at(trail, clock, T0, A)
    first = retention.apply(utc(2026, 3, 2))
    assert first.count("archive") == 40 and retention.apply(utc(2026, 3, 2)).steps == []
    assert retention.restore("default") == 40 and retention.status("default", 1) == "restored"
    again = retention.apply(utc(2026, 3, 3))
    assert again.steps == [] and len(retention.archive.target.keys()) == 1
    assert retention.status("default", 1) == "archived" and 1 not in entries(trail.store)


def test_without_an_archive_payloads_stay_hot_until_they_expire(trail, retention, clock):
    retention.archive = None
    seal_at(trail, clock, T0, A)
    assert retention.apply(utc(2026, 7, 29)).steps == []
    assert retention.apply(utc(2026, 7, 30)).count("expire") == 40


def test_retention_actions_are_sealed_in_the_meta_log(data_dir, trail, clock, archive):
    from trailseal.retention import Retention

    retention = Retention.from_trail(trail, archive=archive, clock=clock.moment)
    retention.policies = type(retention.policies).from_config({"policies": {"admin": {"hot": "1d", "keep": "2d"}}})
    seal_at(trail, clock, T0, A)
    clock.now = T0 + timedelta(days=1)
    retention.hold(reason="audit", ids=["evt-00000002"])
    retention.apply(clock.now)
    clock.now = T0 + timedelta(days=2)
    retention.apply(clock.now)
    actions = [msg for _, msg in trail.store.read_entries("trailseal", 0, 100)]
    assert [a for a in (b"retention.hold.add", b"retention.archive", b"retention.expire",
                        b"retention.segment.delete") if not any(a in m for m in actions)] == []
    assert retention.verify("trailseal").ok and retention.verify("default").ok

"""A value the vault already holds is sealed under its existing commitment, without a new vault row and
without hashing it again; erasure forgets it, so the next one gets a fresh salt."""

from __future__ import annotations

from tests.conftest import make_event
from trailseal.event import decode_sealed, normalize, to_event
from trailseal.privacy import Keys, Policy
from trailseal.protection import Protection

RECEIVED = "2026-11-27T10:00:00.000000Z"


def protection() -> Protection:
    return Protection(Policy({"fields": {"attributes.email": "erasable"}}), Keys(b"\x05" * 32))


def sealed(p: Protection, i: int, **over):
    item = p.seal_form(normalize(to_event(make_event(i, **over)), RECEIVED))
    assert decode_sealed(item.canonical) == item.event, "the sealed bytes and the event must agree"
    return item


def test_held_values_keep_their_commitment_and_add_no_vault_row():
    p = protection()
    actor = {"id": "alice", "type": "user", "ip": "10.1.2.3"}
    first = sealed(p, 1, actor=actor, attributes={"email": "alice@example.com"})
    p.confirm(first.vault)  # the writer committed the first event
    second = sealed(p, 2, actor=actor, attributes={"email": "alice@example.com"})
    assert sorted(row.field for row in first.vault) == ["actor.id", "actor.ip", "attributes.email"]
    assert second.vault == ()
    assert second.event.actor.id == first.event.actor.id and second.event.actor.ip == first.event.actor.ip
    assert second.event.attributes["email"] == first.event.attributes["email"]
    assert first.event.actor.id.startswith("pd:") and b"alice" not in second.canonical


def test_another_subject_with_the_same_value_gets_its_own_commitment():
    p = protection()
    first = sealed(p, 1, actor={"id": "alice", "type": "user", "ip": "10.1.2.3"})
    other = sealed(p, 2, actor={"id": "bob", "type": "user", "ip": "10.1.2.3"})
    assert other.event.actor.ip != first.event.actor.ip
    assert sorted(row.field for row in other.vault) == ["actor.id", "actor.ip"]


def test_forgetting_a_subject_gives_fresh_commitments():
    p = protection()
    actor = {"id": "alice", "type": "user", "ip": "10.1.2.3"}
    first = sealed(p, 1, actor=actor)
    p.forget("alice")
    again = sealed(p, 2, actor=actor)
    assert again.event.actor.id != first.event.actor.id and len(again.vault) == 2


def test_a_failed_commit_forgets_held_values(data_dir):
    """Vault rows of a rolled-back commit were never written: the next event must bring its own."""
    import pytest

    import trailseal

    actor = {"id": "carol", "type": "user", "ip": "10.4.4.4"}
    with trailseal.open(data_dir) as log:
        real_commit = log.store.commit

        def failing(commits):
            raise OSError("disk full")

        log.store.commit = failing
        with pytest.raises(OSError):
            log.append([make_event(1, actor=actor)])
        log.store.commit = real_commit
        log.append([make_event(2, actor=actor)])
        (row,) = log.store.select(["default"], trailseal.store.base.Filters(), None, 1)
        sealed_id = decode_sealed(row[3]).actor.id
        assert log.store.vault_get([sealed_id])[sealed_id].value == "carol"


def test_values_of_an_event_that_cannot_be_sealed_are_not_held():
    """Protection remembers an event's new values as held before it encodes the event; if the event then
    cannot be sealed (its masks grew it past the size limit), the next event with those values must get
    vault rows of its own: reusing the refused event's commitments would seal values no row reveals."""
    from trailseal.event import EventError
    from trailseal.protection import seal_form_or_error

    p = protection()
    actor = {"id": "alice", "type": "user", "ip": "10.1.2.3"}
    grown = make_event(1, actor=actor, attributes={"note": "mail a@b.co " * 5400})
    try:
        seal_form_or_error(p, normalize(to_event(grown), RECEIVED))
    except EventError as exc:
        assert "limit" in exc.reason
    else:
        raise AssertionError("the grown event was sealed")
    after = sealed(p, 2, actor=actor)
    assert sorted(row.field for row in after.vault) == ["actor.id", "actor.ip"]


def test_values_of_a_refused_batch_are_not_held():
    """A batch protected and then refused (an overloaded writer answers 503) gives back its values."""
    p = protection()
    actor = {"id": "alice", "type": "user", "ip": "10.1.2.3"}
    refused = sealed(p, 1, actor=actor)
    p.unhold(refused.vault)
    again = sealed(p, 2, actor=actor)
    assert sorted(row.field for row in again.vault) == ["actor.id", "actor.ip"]

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

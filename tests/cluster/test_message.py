"""The bus wire format: what an ingest node publishes is exactly what the sequencer seals."""

from __future__ import annotations

import msgspec
import pytest

import trailseal
from tests.conftest import make_event
from trailseal.bus.message import BusEvent, BusMessageError, decode, encode, leaf_of
from trailseal.ledger import leaf_hash


def protected(data_dir, i: int = 1):
    with trailseal.open(data_dir) as trail:
        return trail.prepare([make_event(i)])[0]


def test_round_trip_keeps_bytes_and_vault_rows(data_dir):
    item = protected(data_dir)
    assert item.vault, "the default policy makes actor.id erasable: vault rows must travel too"
    back = decode(encode(item))
    assert (back.id, back.log, back.canonical, back.vault) == (item.id, item.log, item.canonical, item.vault)
    event = item.event
    assert back.protected
    assert (back.event.time, back.event.received, back.event.category, back.event.action, back.event.outcome,
            back.event.actor.id) == (event.time, event.received, event.category, event.action, event.outcome,
                                     event.actor.id)
    assert leaf_of(back) == leaf_hash(item.canonical).hex()


def test_foreign_payload_is_refused_with_a_reason():
    with pytest.raises(BusMessageError, match="not a trailseal bus event"):
        decode(b"hello")


def test_header_must_match_the_sealed_event(data_dir):
    item = protected(data_dir)
    forged = msgspec.msgpack.encode(BusEvent("other-id", item.log, item.canonical, list(item.vault)))
    with pytest.raises(BusMessageError, match="does not match"):
        decode(forged)

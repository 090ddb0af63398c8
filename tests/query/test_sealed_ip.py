"""`ip:` finds events whose `actor.ip` is sealed as an erasable commitment (the mutable search index
keys the vault's plaintext), and erasing the subject removes the address from the index."""

from __future__ import annotations

import sqlite3

import trailseal
from tests.conftest import make_event
from trailseal.query.index import ip_key
from trailseal.query.sealed import search_trail


def _seal(directory) -> dict[str, str]:
    events = [make_event(0, actor={"id": "alice", "type": "user", "ip": "10.1.2.3"}),
              make_event(1, actor={"id": "bob", "type": "user", "ip": "10.1.2.3"}),  # same NAT address
              make_event(2, actor={"id": "carol", "type": "user", "ip": "192.168.7.9"})]
    with trailseal.open(directory) as trail:
        trail.append(events)
    return {e["actor"]["id"]: e["id"] for e in events}


def _found(directory, query: str) -> list[str]:
    with trailseal.open(directory) as trail:
        return sorted(e["id"] for e in search_trail(trail, query).events)


def test_cidr_and_exact_ip_find_erasable_addresses(data_dir):
    ids = _seal(data_dir)
    with trailseal.open(data_dir) as trail:
        sealed = trail.entry(0)
        assert b"10.1.2.3" not in sealed  # the sealed entry holds only the commitment
    assert _found(data_dir, "ip:10.0.0.0/8") == sorted([ids["alice"], ids["bob"]])
    assert _found(data_dir, "ip:192.168.7.9") == [ids["carol"]]
    assert _found(data_dir, "ip:172.16.0.0/12") == []


def test_erasure_drops_only_the_erased_subjects_address_rows(data_dir):
    ids = _seal(data_dir)
    assert _found(data_dir, "ip:10.1.2.3") == sorted([ids["alice"], ids["bob"]])  # builds the index
    with trailseal.open(data_dir) as trail:
        trail.erase("alice")
    assert _found(data_dir, "ip:10.1.2.3") == [ids["bob"]]
    with trailseal.open(data_dir) as trail:
        trail.erase("bob")
    assert _found(data_dir, "ip:10.0.0.0/8") == []
    conn = sqlite3.connect(data_dir / "trailseal.db")
    assert conn.execute("SELECT count(*) FROM entries_ip WHERE ip = ?", (ip_key("10.1.2.3"),)).fetchone() == (0,)

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


def test_common_sealed_ranges_fill_their_pages(data_dir, monkeypatch):
    """A range matching more rows than the planner's CAP is tested row by row (a probe) or in seq windows:
    both must go through the IP index too, or sealed addresses give empty pages while count() is right."""
    import importlib

    search_module = importlib.import_module("trailseal.query.search")

    monkeypatch.setattr(search_module, "CAP", 50)
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(200)])  # actor.ip 10.x.y.7, sealed by default
        total = search_module.count(trail.store, "ip:10.0.0.0/8")
        first = search_trail(trail, "ip:10.0.0.0/8", limit=10)
        seen = list(first.events)
        page = first
        while page.next_cursor:
            page = search_trail(trail, "ip:10.0.0.0/8", limit=60, cursor=page.next_cursor)
            seen += page.events
        narrowed = search_trail(trail, "ip:10.0.0.0/8 category:data_access", limit=100).events
    assert total == 200 and len(first.events) == 10
    assert len({e["id"] for e in seen}) == 200
    assert len(narrowed) == 80 and all(e["category"] == "data_access" for e in narrowed)

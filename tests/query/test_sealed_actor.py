"""`actor:<plaintext>` finds erasable actors: the sealed ids are commitments, found through the vault's
keyed HMAC (query/sealed.py), even when one actor was sealed under several commitments."""

from __future__ import annotations

import trailseal
from tests.conftest import make_event
from trailseal.query.sealed import search_trail
from trailseal.query.search import search

ACTORS = ["alice", "bob"]


def _seal_alternating(directory, batches: int = 6) -> dict[str, list[str]]:
    """Seal one event per batch, alternating actors, with a one-entry commitment cache so alice is
    sealed under a fresh commitment each time (as a busy log's evicting cache does); ids per actor."""
    ids: dict[str, list[str]] = {actor: [] for actor in ACTORS}
    with trailseal.open(directory) as trail:
        trail.protection.cache_size = 1
        for i in range(batches):
            actor = ACTORS[i % 2]
            event = make_event(i, actor={"id": actor, "type": "user", "ip": f"10.0.0.{i + 1}"})
            trail.append([event])
            ids[actor].append(event["id"])
    return ids


def test_plaintext_actor_finds_every_commitment_of_an_erasable_actor(data_dir):
    ids = _seal_alternating(data_dir)
    with trailseal.open(data_dir) as trail:
        stored = {e["actor"]["id"] for e in search(trail.store, "id:evt-*", limit=100).events}
        assert all(value.startswith("pd:") for value in stored)  # sealed as commitments, not plaintext
        assert len(trail.protection.actor_commitments(trail.store, "alice", ["default"])) == 3
        assert search(trail.store, "actor:alice", limit=100).events == []  # raw search sees only commitments

        found = search_trail(trail, "actor:alice")
        assert sorted(e["id"] for e in found.events) == sorted(ids["alice"])
        assert {e["actor"]["id"] for e in found.events} == {"alice"}  # the vault value joined back
        since = search_trail(trail, "actor:alice since:2026-11-01T00:00:00.020Z")
        assert sorted(e["id"] for e in since.events) == sorted(ids["alice"])[1:]


def test_negated_and_unknown_plaintext_actors(data_dir):
    ids = _seal_alternating(data_dir)
    with trailseal.open(data_dir) as trail:
        others = search_trail(trail, "log:default NOT actor:alice")
        assert sorted(e["id"] for e in others.events) == sorted(ids["bob"])
        assert search_trail(trail, "actor:zed").events == []
        assert search_trail(trail, "actor:alice OR actor:bob").events != []

"""Searching a data dir whose actor ids are sealed as commitments: `actor:alice` is rewritten to
the commitments the vault knows for alice (found by keyed HMAC, never by plaintext), and results
get their vault values joined back."""

from __future__ import annotations

import dataclasses
from typing import Any

from trailseal.query.language import And, Node, Not, Or, Term, parse
from trailseal.query.search import Page, search, timeline


def resolve_actors(node: Node, trail, logs: list[str]) -> Node:
    """Replace exact `actor.id` terms by every form that actor's id may be sealed in (its commitments, its
    pseudonym, as sent), whichever the policy chose."""
    if isinstance(node, Term) and node.field == "actor.id" and node.op == "=" and len(node.value) == 1:
        found = trail.protection.actor_forms(trail.store, node.value[0], logs)
        return Or(tuple(Term("actor.id", (form,)) for form in found))
    if isinstance(node, Not):
        return Not(resolve_actors(node.item, trail, logs))
    if isinstance(node, And | Or):
        return dataclasses.replace(node, items=tuple(resolve_actors(i, trail, logs) for i in node.items))
    return node


def search_trail(trail, query: str, log: str | None = None, limit: int = 100, cursor: str | None = None) -> Page:
    """query.search over an open data dir, privacy-aware."""
    node = parse(query)
    if trail.protection.enabled:
        node = resolve_actors(node, trail, [log] if log else [i.name for i in trail.logs()])
    page = search(trail.store, node, log, limit, cursor)
    return dataclasses.replace(page, events=reveal(trail, page.events))


def timeline_trail(trail, key: str, value: str, since: str | None = None, log: str | None = None,
                   limit: int = 1000) -> list[dict[str, Any]]:
    """query.timeline, with an actor resolved through the vault."""
    if key == "actor" and trail.protection.enabled:
        node = resolve_actors(Term("actor.id", (value,)), trail, [log] if log else [i.name for i in trail.logs()])
        if since:
            node = And((node, parse(f"since:{since}")))
        events = search(trail.store, node, log, limit).events[::-1]
        return reveal(trail, events)
    return reveal(trail, timeline(trail.store, key, value, since, log=log, limit=limit))


def reveal(trail, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Vault values joined back (each event keeps its `log` and `index`)."""
    return trail.protection.reveal_all(trail.store, events)

"""Searching a data dir whose personal values are sealed as commitments or pseudonyms: `actor:alice`
(or any exact term on a field the policy seals, `session:s-42`, `actor.name:"Alice Doe"`) is rewritten to
every form the value may be sealed in (commitments found by keyed HMAC through the vault, never by
plaintext; its pseudonym; the value as sent), and results get their vault values joined back."""

from __future__ import annotations

import dataclasses
from typing import Any

from trailseal.query.language import IP_FIELDS, And, Node, Not, Or, Term, parse
from trailseal.query.search import TIMELINE_KEYS, Page, search, timeline


def resolve_sealed(node: Node, trail, logs: list[str]) -> Node:
    """Replace exact terms on sealed fields by every form their value may be sealed in (addresses are
    found through the search index's sealed IPs instead)."""
    if isinstance(node, Term) and node.op == "=" and len(node.value) == 1 and sealed_field(trail, node.field, logs):
        found = trail.protection.sealed_forms(trail.store, node.value[0], logs)
        return Or(tuple(Term(node.field, (form,)) for form in found))
    if isinstance(node, Not):
        return Not(resolve_sealed(node.item, trail, logs))
    if isinstance(node, And | Or):
        return dataclasses.replace(node, items=tuple(resolve_sealed(i, trail, logs) for i in node.items))
    return node


def sealed_field(trail, field: str, logs: list[str]) -> bool:
    """Whether the policy seals the field's values as commitments or pseudonyms in any of these logs
    (``actor.id`` always counts: a policy changed since may have sealed older events so)."""
    if field in IP_FIELDS:
        return False
    return field == "actor.id" or any(trail.protection.policy.seals(log, field) for log in logs)


def search_trail(trail, query: str, log: str | None = None, limit: int = 100, cursor: str | None = None) -> Page:
    """query.search over an open data dir, privacy-aware."""
    node = parse(query)
    if trail.protection.enabled:
        node = resolve_sealed(node, trail, [log] if log else [i.name for i in trail.logs()])
    page = search(trail.store, node, log, limit, cursor)
    return dataclasses.replace(page, events=reveal(trail, page.events))


def timeline_trail(trail, key: str, value: str, since: str | None = None, log: str | None = None,
                   limit: int = 1000) -> list[dict[str, Any]]:
    """query.timeline, with a sealed actor or session resolved through its sealed forms."""
    logs = [log] if log else [i.name for i in trail.logs()]
    if trail.protection.enabled and key in TIMELINE_KEYS and sealed_field(trail, TIMELINE_KEYS[key], logs):
        node = resolve_sealed(Term(TIMELINE_KEYS[key], (value,)), trail, logs)
        if since:
            node = And((node, parse(f"since:{since}")))
        events = search(trail.store, node, log, limit).events[::-1]
        return reveal(trail, events)
    return reveal(trail, timeline(trail.store, key, value, since, log=log, limit=limit))


def reveal(trail, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Vault values joined back (each event keeps its `log` and `index`)."""
    return trail.protection.reveal_all(trail.store, events)

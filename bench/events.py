"""Realistic events for benchmarks: time-ordered, thousands of actors, a handful of actions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import msgspec

from trailseal.event import Actor, Event, Request, Sealable, Source, Target

ACTIONS = [("authentication", "user.login"), ("data_access", "db.query"), ("admin", "user.role.grant"),
           ("data_access", "http.request"), ("config", "k8s.configmaps.update")]
BASE = datetime(2026, 11, 1, tzinfo=UTC)
_encode = msgspec.json.Encoder(order="sorted").encode


def _actor(user: int, i: int) -> dict:
    """A user works from one of two addresses, in sessions of ~1,000 events (as in real access logs)."""
    return {"id": f"user{user}", "type": "user", "ip": f"10.{user % 256}.{user // 256}.{7 + i % 2}",
            "session": f"s-{user}-{i // 1000}"}


def event_dict(i: int, rng: random.Random) -> dict:
    """One event as a producer would send it."""
    category, action = ACTIONS[i % len(ACTIONS)]
    return {
        "id": f"bench-{i:010d}",
        "time": (BASE + timedelta(milliseconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "category": category, "action": action,
        "outcome": rng.choice(("success", "success", "success", "failure", "error")),
        "actor": _actor(rng.randrange(5000), i),
        "source": {"component": rng.choice(("web", "api", "db")), "kind": "app", "host": "node-1"},
        "target": {"type": "table", "id": f"orders_{i % 13}"},
        "request": {"method": "POST", "path": f"/api/v1/orders/{i}", "status": 200, "trace_id": f"{i:032x}"},
        "attributes": {"latency_ms": i % 500, "tags": ["pci", "eu"], "note": "ok"},
    }


def events(count: int, start: int = 0, seed: int = 1) -> list[dict]:
    rng = random.Random(seed + start)
    return [event_dict(i, rng) for i in range(start, start + count)]


def sealables(count: int, start: int = 0, received: str = "2026-11-27T00:00:00.000000Z") -> list[Sealable]:
    """Already-validated events, built directly (for building big logs fast)."""
    rng = random.Random(start)
    out = []
    for i in range(start, start + count):
        category, action = ACTIONS[i % len(ACTIONS)]
        event = Event(
            time=(BASE + timedelta(milliseconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            category=category, action=action, outcome="success" if i % 4 else "failure",
            actor=Actor(id=f"user{rng.randrange(5000)}", type="user", ip="10.0.0.7"),
            source=Source(component="web", kind="app", format="json"),
            id=f"bench-{i:010d}", received=received, log="default", severity="info",
            target=Target(type="table", id=f"orders_{i % 13}"),
            request=Request(method="GET", path=f"/orders/{i}", status=200))
        out.append(Sealable(event.id, "default", event, _encode(event)))
    return out

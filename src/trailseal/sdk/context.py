"""Who is acting right now: the current request's actor and trace, in a contextvar set by the middleware
and read by ``Client.log`` (so database hooks and plain ``log()`` calls inside a request name the user)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

ACTOR_KEYS = ("id", "type", "name", "session", "roles", "ip", "user_agent")


@dataclass(slots=True)
class RequestContext:
    """The actor and trace of the request (or job) being served."""

    actor: dict[str, Any] | None = None
    trace_id: str | None = None
    span_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    pinned: bool = False  # set_actor() named the actor: resolvers no longer override it


current: ContextVar[RequestContext | None] = ContextVar("trailseal_request", default=None)


def session_hash(session_key: str) -> str:
    """A stable, non-secret handle for a session key (the key itself is a bearer secret)."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:16]


def actor_dict(value: Any) -> dict[str, Any] | None:
    """An actor from a user id, a dict of actor fields, or a user object (``id``/``pk``, ``username``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"id": value} if value else None
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in ACTOR_KEYS and v is not None} or None
    ident = next((getattr(value, a) for a in ("id", "pk", "identity", "username") if getattr(value, a, None)),
                 None)
    if ident is None:
        return None
    actor = {"id": str(ident)}
    name = getattr(value, "username", None) or getattr(value, "display_name", None)
    if isinstance(name, str) and name != actor["id"]:
        actor["name"] = name
    return actor


def with_origin(actor: dict[str, Any], ctx: RequestContext | None) -> dict[str, Any]:
    """The actor with the request's IP and user agent filled in where it has none."""
    if ctx is None:
        return actor
    if ctx.ip and "ip" not in actor:
        actor["ip"] = ctx.ip
    if ctx.user_agent and "user_agent" not in actor:
        actor["user_agent"] = ctx.user_agent
    return actor


def set_actor(actor: Any) -> bool:
    """Name the actor of the current request (e.g. in a login view); False outside any request."""
    ctx = current.get()
    resolved = actor_dict(actor)
    if ctx is None or resolved is None:
        return False
    ctx.actor = with_origin(resolved, ctx)
    ctx.pinned = True
    return True


def current_actor() -> dict[str, Any] | None:
    ctx = current.get()
    return ctx.actor if ctx is not None else None


@contextmanager
def acting_as(actor: Any, trace_id: str | None = None) -> Iterator[RequestContext]:
    """Attribute every event logged inside the block (a job, a CLI command) to ``actor``."""
    ctx = RequestContext(actor=actor_dict(actor), trace_id=trace_id)
    token = current.set(ctx)
    try:
        yield ctx
    finally:
        current.reset(token)

"""Who is acting right now: the current request's actor and trace, in a contextvar set by the middleware
and read by ``Client.log`` (so database hooks and plain ``log()`` calls inside a request name the user).

A middleware's context holds the request's raw facts (its ASGI scope or WSGI environ) and a reader; the
client IP, user agent and trace are parsed from them only when something asks — normally the client's
writer thread, after the request has been answered."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

ACTOR_KEYS = ("id", "type", "name", "session", "roles", "ip", "user_agent")
Origin = tuple[str | None, str | None, str | None, str | None]  # ip, user agent, trace id, span id


class RequestContext:
    """The actor and trace of the request (or job) being served. ``actor`` is who acts (without the
    request's IP and user agent: ``with_origin`` adds them); ``pinned`` when ``set_actor()`` named it;
    ``raw`` is the framework's request (ASGI scope, WSGI environ, Django request)."""

    __slots__ = ("actor", "pinned", "raw", "_reader", "_origin", "_ask")

    def __init__(self, actor: dict[str, Any] | None = None, trace_id: str | None = None,
                 span_id: str | None = None, ip: str | None = None, user_agent: str | None = None):
        self.actor, self.pinned = actor, False
        self.raw, self._reader, self._ask = None, None, None
        self._origin: Origin | None = (ip, user_agent, trace_id, span_id)

    @classmethod
    def of_request(cls, raw: Any, reader: Callable[[Any], Origin],
                   ask: Callable[[RequestContext], None] | None = None) -> RequestContext:
        """A context whose origin ``reader(raw)`` works out when first needed, and whose actor, while
        unknown, ``ask(ctx)`` looks for when something logged during the request wants it."""
        ctx = cls.__new__(cls)
        ctx.actor, ctx.pinned, ctx.raw, ctx._reader, ctx._origin, ctx._ask = None, False, raw, reader, None, ask
        return ctx

    def who(self) -> dict[str, Any] | None:
        """The actor as of now (asking the middleware's resolver if it is not known yet)."""
        if self.actor is None and self._ask is not None and not self.pinned:
            try:
                self._ask(self)
            except Exception:  # noqa: BLE001 - a resolver that fails leaves the actor unknown
                pass
        return self.actor

    @property
    def origin(self) -> Origin:
        """(ip, user agent, trace id, span id), parsed once."""
        origin = self._origin
        if origin is None:
            origin = self._origin = self._reader(self.raw)
        return origin

    @property
    def ip(self) -> str | None:
        return self.origin[0]

    @property
    def user_agent(self) -> str | None:
        return self.origin[1]

    @property
    def trace_id(self) -> str | None:
        return self.origin[2]

    @property
    def span_id(self) -> str | None:
        return self.origin[3]


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
    """A copy of the actor with the request's IP and user agent filled in where it has none."""
    if ctx is None:
        return actor
    ip, user_agent = ctx.origin[:2]
    if (ip and "ip" not in actor) or (user_agent and "user_agent" not in actor):
        actor = dict(actor)
        if ip:
            actor.setdefault("ip", ip)
        if user_agent:
            actor.setdefault("user_agent", user_agent)
    return actor


def set_actor(actor: Any) -> bool:
    """Name the actor of the current request (e.g. in a login view); False outside any request."""
    ctx = current.get()
    resolved = actor_dict(actor)
    if ctx is None or resolved is None:
        return False
    ctx.actor, ctx.pinned = resolved, True
    return True


def current_actor() -> dict[str, Any] | None:
    """The current request's actor, with its IP and user agent; None outside a request or when unknown."""
    ctx = current.get()
    actor = ctx.who() if ctx is not None else None
    return with_origin(actor, ctx) if actor is not None else None


@contextmanager
def acting_as(actor: Any, trace_id: str | None = None) -> Iterator[RequestContext]:
    """Attribute every event logged inside the block (a job, a CLI command) to ``actor``."""
    ctx = RequestContext(actor=actor_dict(actor), trace_id=trace_id)
    token = current.set(ctx)
    try:
        yield ctx
    finally:
        current.reset(token)

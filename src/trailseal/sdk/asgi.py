"""ASGI middleware (Starlette, FastAPI, any ASGI app): one audit event per HTTP request.

    app.add_middleware(TrailsealMiddleware, client=client)

The path is the route template (``/users/{user_id}``) when the app's router matched one, the actor comes
from ``set_actor()``, the ``actor_resolver(request)`` option, or Starlette's ``request.user``.

Per request the middleware only notes the status and body size as the response passes, and hands the
request's raw facts to the client's forwarder subprocess (``transport="process"``, the default) or its
writer thread (``transport="thread"``); client IP, trace and the event are worked out there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from starlette.requests import Request

from trailseal.sdk.context import Origin, RequestContext, current
from trailseal.sdk.web import Exchange, HttpAuditor, describe, route_template

WANTED_HEADERS = {b"x-forwarded-for": 0, b"user-agent": 1, b"traceparent": 2}


def starlette_user(scope: dict[str, Any]) -> Any:
    """Starlette's AuthenticationMiddleware user, when authenticated."""
    user = scope.get("user")
    return user if getattr(user, "is_authenticated", False) else None


def request_headers(scope: dict[str, Any]) -> list[str | None]:
    """X-Forwarded-For, User-Agent and traceparent, in one pass over the headers."""
    found: list[str | None] = [None, None, None]
    for name, value in scope.get("headers", ()):
        slot = WANTED_HEADERS.get(name)
        if slot is not None:
            found[slot] = value.decode("latin-1")
    return found


def scope_facts(scope: dict[str, Any]) -> tuple:
    """(peer, X-Forwarded-For, User-Agent, traceparent) of a request, raw, from its scope."""
    forwarded_for, user_agent, traceparent = request_headers(scope)
    peer = scope.get("client")
    return peer[0] if peer else None, forwarded_for, user_agent, traceparent


class Watch(RequestContext):
    """One request on its way through the app: its context (for ``set_actor``, ``log()``, the database
    hooks) and the ``send`` the app answers through, noting status and size. One object per request
    rather than closures and cells: fewer objects for the garbage collector to track."""

    __slots__ = ("middleware", "send", "token", "started", "base_root", "status", "size", "done")

    def __init__(self, middleware: TrailsealMiddleware, scope: dict, send: Any):
        self.actor, self.pinned, self.raw, self._origin = None, False, scope, None
        self._reader, self._ask = middleware.reader, middleware.ask
        self.middleware, self.send, self.started = middleware, send, time.perf_counter()
        self.base_root, self.status, self.size, self.done = scope.get("root_path", ""), 0, 0, False
        self.token = current.set(self)

    def __call__(self, message: dict) -> Awaitable[None]:
        """The app's ``send``: note the message, and give back the server's ``send`` of it to await (no
        coroutine of our own per message)."""
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body")
            if body:
                self.size += len(body)
            if not self.done and not message.get("more_body", False):
                self.finish(None)  # before the answer's last bytes go out
        elif kind == "http.response.start":
            self.status = message["status"]
        return self.send(message)

    def finish(self, error: BaseException | None) -> None:
        """Resolve the actor and hand the request's record to the forwarder; leave the request context."""
        self.done = True
        elapsed = time.perf_counter() - self.started
        auditor, scope = self.middleware.auditor, self.raw
        try:
            route = scope.get("route")
            template = None if route is None else route_template(route, scope.get("root_path", "")[len(self.base_root):])
            if auditor.actor_resolver is not None or "user" in scope:
                auditor.resolve(scope, self, starlette_user)
            peer = scope.get("client")
            auditor.forward((auditor.index, time.time_ns(), elapsed, scope["method"], scope["path"], template,
                             self.status, self.size, None if error is None else describe(error), self.actor,
                             peer[0] if peer else None, *request_headers(scope)))
        except Exception as exc:  # noqa: BLE001 - never into application code
            auditor.forwarder.report("invalid", f"request event not recorded: {exc!r}", counter="invalid")
        finally:
            try:
                current.reset(self.token)
            except ValueError:  # finished in another context (a response sent from another task)
                current.set(None)


class TrailsealMiddleware:
    """Pure ASGI middleware; options as for ``HttpAuditor`` (exclude, auth_paths, trusted_proxies,
    actor_resolver — which gets a Starlette ``Request``, transport)."""

    def __init__(self, app: Any, client: Any, **options: Any):
        self.app = app
        self.auditor = HttpAuditor(client, **options)
        resolver = self.auditor.actor_resolver
        self.auditor.actor_resolver = (lambda scope: resolver(Request(scope))) if resolver else None
        self.exclude = self.auditor.exclude
        self.auditor.use_forwarder(scope_facts)
        self.reader, self.ask = self.origin, self.resolve_early  # bound once, not per request

    def origin(self, scope: dict[str, Any]) -> Origin:
        """The request's client IP, user agent and trace, from its scope (asked for after the request)."""
        return self.auditor.origin(*scope_facts(scope))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.exclude(scope["path"]):
            await self.app(scope, receive, send)
        elif self.auditor.forward is not None:
            await self.forwarding(scope, receive, send)
        else:
            await self.queueing(scope, receive, send)

    async def forwarding(self, scope: dict, receive: Any, send: Any) -> None:
        """The request path with a forwarder (the default): one ``Watch`` (the request context, and the
        ``send`` the app gets) notes the raw facts; one tuple is handed over at the end."""
        watch = Watch(self, scope, send)
        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if not watch.done:
                watch.finish(exc)
            raise
        finally:
            if not watch.done:
                watch.finish(None)

    async def queueing(self, scope: dict, receive: Any, send: Any) -> None:
        """The request path with ``transport="thread"``: an ``Exchange`` queued on the app's client."""
        auditor = self.auditor
        exchange, token = auditor.begin(scope, self.reader, scope["method"], scope["path"], self.ask)
        base_root = scope.get("root_path", "")

        async def watch(message: dict) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                body = message.get("body")
                if body:
                    exchange.bytes += len(body)
                if not message.get("more_body", False) and not exchange.queued:
                    self.close(scope, exchange, token, base_root)  # before the answer's last bytes go out
            elif kind == "http.response.start":
                exchange.status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if not exchange.queued:
                exchange.error = exc
            raise
        finally:
            if not exchange.queued:
                self.close(scope, exchange, token, base_root)

    def resolve_early(self, ctx: RequestContext) -> None:
        """Who acts, asked for by something logged during the request (a database hook, ``log()``)."""
        self.auditor.resolve(ctx.raw, ctx, starlette_user)

    def close(self, scope: dict, exchange: Exchange, token: Any, base_root: str) -> None:
        """Note the matched route and the actor, and queue the request's event."""
        exchange.route = scope.get("route")
        exchange.prefix = scope.get("root_path", "")[len(base_root):]
        if self.auditor.actor_resolver is not None or "user" in scope:
            self.auditor.resolve(scope, exchange, starlette_user)
        self.auditor.finish(exchange, token)

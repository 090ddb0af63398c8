"""ASGI middleware (Starlette, FastAPI, any ASGI app): one audit event per HTTP request.

    app.add_middleware(TrailsealMiddleware, client=client)

The path is the route template (``/users/{user_id}``) when the app's router matched one, the actor comes
from ``set_actor()``, the ``actor_resolver(request)`` option, or Starlette's ``request.user``.

Per request the middleware only notes the status and body size as the response passes, and hands the
request's raw facts to the client's forwarder subprocess (``transport="process"``, the default: one flat
tuple of values as the server gave them — header bytes, the client's (host, port) — nothing decoded or
built on the event loop) or its writer thread (``transport="thread"``); client IP, trace and the event
are worked out there.
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter, time_ns
from typing import Any

from starlette.requests import Request

from trailseal.sdk.context import Origin, RequestContext, current
from trailseal.sdk.web import Exchange, HttpAuditor, describe, route_template

new_object = object.__new__
WANTED_HEADERS = frozenset({b"x-forwarded-for", b"user-agent", b"traceparent"})


def starlette_user(scope: dict[str, Any]) -> Any:
    """Starlette's AuthenticationMiddleware user, when authenticated."""
    user = scope.get("user")
    return user if getattr(user, "is_authenticated", False) else None


def raw_headers(scope: dict[str, Any]) -> tuple[bytes | None, bytes | None, bytes | None]:
    """X-Forwarded-For, User-Agent and traceparent as the server gave them (bytes), in one pass over the
    headers (a set test per header; the last of a repeated one wins)."""
    forwarded_for = user_agent = traceparent = None
    for name, value in scope.get("headers", ()):
        if name in WANTED_HEADERS:
            if name == b"user-agent":
                user_agent = value
            elif name == b"traceparent":
                traceparent = value
            else:
                forwarded_for = value
    return forwarded_for, user_agent, traceparent


def scope_facts(scope: dict[str, Any]) -> tuple:
    """(peer, X-Forwarded-For, User-Agent, traceparent) of a request, decoded, from its scope."""
    peer = scope.get("client")
    return (peer[0] if peer else None, *(None if v is None else v.decode("latin-1") for v in raw_headers(scope)))


class Watch(RequestContext):
    """One request on its way through the app: its context (for ``set_actor``, ``log()``, the database
    hooks), and through ``relay`` the ``send`` the app answers with, noting status and size. One object
    per request rather than closures and cells: fewer objects for the garbage collector to track.

    What is the same for every request of a middleware (the middleware, the context's origin reader and
    actor lookup) lives on a subclass made per middleware (``watch_class``), so a request stores only its
    own facts; ``TrailsealMiddleware.__call__`` fills them in (no ``__init__`` call)."""

    __slots__ = ("send", "token", "started", "base_root", "status", "size", "done")
    middleware: TrailsealMiddleware

    def relay(self, message: dict) -> Awaitable[None]:
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
        """Resolve the actor and hand the request's raw facts, as one flat tuple, to the forwarder (which
        decodes, parses and renders them); leave the request context."""
        self.done = True
        elapsed = perf_counter() - self.started
        middleware, scope = self.middleware, self.raw
        try:
            template = route = scope.get("route")
            if route is not None:
                template, root = getattr(route, "path_format", None), scope.get("root_path", "")
                if root is not self.base_root or type(template) is not str:  # under a Mount, or not Starlette's
                    template = route_template(route, root[len(self.base_root):])
            if middleware.resolving or "user" in scope:
                middleware.auditor.resolve(scope, self, starlette_user)
            forwarded_for, user_agent, traceparent = raw_headers(scope)
            middleware.forward((middleware.index, time_ns(), elapsed, scope["method"], scope["path"], template,
                                self.status, self.size, None if error is None else describe(error), self.actor,
                                scope.get("client"), forwarded_for, user_agent, traceparent))
        except Exception as exc:  # noqa: BLE001 - never into application code
            middleware.auditor.forwarder.report("invalid", f"request event not recorded: {exc!r}",
                                                counter="invalid")
        finally:
            try:
                current.reset(self.token)
            except ValueError:  # finished in another context (a response sent from another task)
                current.set(None)


def watch_class(middleware: TrailsealMiddleware) -> type[Watch]:
    """A ``Watch`` subclass whose requests belong to ``middleware``."""
    return type("Watch", (Watch,), {"__slots__": (), "middleware": middleware,
                                    "_reader": staticmethod(middleware.origin),
                                    "_ask": staticmethod(middleware.resolve_early)})


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
        self.forward, self.index = self.auditor.forward, self.auditor.index
        self.resolving = resolver is not None
        self.reader, self.ask = self.origin, self.resolve_early  # bound once, not per request
        self.watch = watch_class(self)

    def origin(self, scope: dict[str, Any]) -> Origin:
        """The request's client IP, user agent and trace, from its scope (asked for after the request)."""
        return self.auditor.origin(*scope_facts(scope))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """With a forwarder (the default): one ``Watch`` (the request context, and the ``send`` the app
        gets) notes the raw facts; one tuple is handed over at the end."""
        if scope["type"] != "http" or self.exclude(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.forward is None:
            await self.queueing(scope, receive, send)
            return
        watch = new_object(self.watch)  # its fields, set here: no __init__ call per request
        watch.actor, watch._origin, watch.pinned, watch.done, watch.status, watch.size = None, None, False, False, 0, 0
        watch.raw, watch.send, watch.base_root, watch.started = scope, send, scope.get("root_path", ""), perf_counter()
        watch.token = current.set(watch)
        try:
            await self.app(scope, receive, watch.relay)
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

"""ASGI middleware (Starlette, FastAPI, any ASGI app): one audit event per HTTP request.

    app.add_middleware(TrailsealMiddleware, client=client)

The path is the route template (``/users/{user_id}``) when the app's router matched one, the actor comes
from ``set_actor()``, the ``actor_resolver(request)`` option, or Starlette's ``request.user``.

Per request the middleware only notes the status and body size as the response passes and queues the
scope; headers, client IP, route template and the event are worked out on the client's writer thread.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from trailseal.sdk.context import Origin, RequestContext
from trailseal.sdk.web import Exchange, HttpAuditor

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


class TrailsealMiddleware:
    """Pure ASGI middleware; options as for ``HttpAuditor`` (exclude, auth_paths, trusted_proxies,
    actor_resolver — which gets a Starlette ``Request``)."""

    def __init__(self, app: Any, client: Any, **options: Any):
        self.app = app
        self.auditor = HttpAuditor(client, **options)
        resolver = self.auditor.actor_resolver
        self.auditor.actor_resolver = (lambda scope: resolver(Request(scope))) if resolver else None
        self.exclude = self.auditor.exclude
        self.reader, self.ask = self.origin, self.resolve_early  # bound once, not per request

    def origin(self, scope: dict[str, Any]) -> Origin:
        """The request's client IP, user agent and trace, from its scope (asked for after the request)."""
        forwarded_for, user_agent, traceparent = request_headers(scope)
        peer = scope.get("client")
        return self.auditor.origin(peer[0] if peer else None, forwarded_for, user_agent, traceparent)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.exclude(scope["path"]):
            await self.app(scope, receive, send)
            return
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

"""ASGI middleware (Starlette, FastAPI, any ASGI app): one audit event per HTTP request.

    app.add_middleware(TrailsealMiddleware, client=client)

The path is the route template (``/users/{user_id}``) when the app's router matched one, the actor comes
from ``set_actor()``, the ``actor_resolver(request)`` option, or Starlette's ``request.user``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from trailseal.sdk.web import Exchange, HttpAuditor

WANTED_HEADERS = {b"x-forwarded-for": "forwarded_for", b"user-agent": "user_agent", b"traceparent": "traceparent"}


def route_template(scope: dict[str, Any], base_root: str) -> str | None:
    """The matched route's template, with the prefixes of any Mounts it sits under."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    mounted = scope.get("root_path", "")[len(base_root):]
    return mounted + template


def starlette_user(scope: dict[str, Any]) -> Any:
    """Starlette's AuthenticationMiddleware user, when authenticated."""
    user = scope.get("user")
    return user if getattr(user, "is_authenticated", False) else None


def request_headers(scope: dict[str, Any]) -> dict[str, str | None]:
    """The few headers the event needs, in one pass."""
    found: dict[str, str | None] = dict.fromkeys(WANTED_HEADERS.values())
    for name, value in scope.get("headers", ()):
        key = WANTED_HEADERS.get(name)
        if key is not None:
            found[key] = value.decode("latin-1")
    return found


class TrailsealMiddleware:
    """Pure ASGI middleware; options as for ``HttpAuditor`` (exclude, auth_paths, trusted_proxies,
    actor_resolver — which gets a Starlette ``Request``)."""

    def __init__(self, app: Any, client: Any, **options: Any):
        self.app = app
        self.auditor = HttpAuditor(client, **options)
        resolver = self.auditor.actor_resolver
        self.auditor.actor_resolver = (lambda scope: resolver(Request(scope))) if resolver else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.auditor.exclude(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = request_headers(scope)
        peer = scope.get("client")
        ctx, token = self.auditor.begin(peer[0] if peer else None, headers["forwarded_for"],
                                        headers["user_agent"], headers["traceparent"])
        self.auditor.resolve(scope, ctx, starlette_user)
        exchange = Exchange(scope["method"], scope["path"])
        base_root = scope.get("root_path", "")

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.body":
                exchange.bytes += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                exchange.status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            exchange.error = exc
            raise
        finally:
            exchange.template = route_template(scope, base_root)
            self.auditor.resolve(scope, ctx, starlette_user)
            self.auditor.finish(exchange, ctx, token, started)

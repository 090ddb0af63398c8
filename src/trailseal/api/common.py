"""What every router shares: JSON errors, the permission decorator, the service object."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from trailseal.api.auth import RateLimiter, Token, TokenStore
from trailseal.api.metrics import Metrics
from trailseal.datadir import Trail
from trailseal.event import from_dict, utc_now
from trailseal.pipeline import Overloaded

_json = msgspec.json.Encoder()


class ApiError(Exception):
    """An error answered as JSON: ``{"error": reason}`` with a 4xx/5xx status."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(reason)
        self.status, self.reason, self.headers, self.extra = status, reason, headers or {}, extra


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status, headers, media_type="application/json")


def error_response(status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return json_response({"error": reason, "status": status, **extra}, status, headers)


@dataclass
class Service:
    """The running server's objects, reachable from every request as ``request.app.state.service``."""

    trail: Trail
    tokens: TokenStore
    metrics: Metrics
    limiter: RateLimiter
    public_tlog: bool = True
    record_reads: bool = True
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self):
        return self.trail.config

    async def seal(self, items) -> list:
        """Seal and wait without blocking the event loop; overload becomes 503 + Retry-After."""
        try:  # a bus (scale-out) can also fail after submit: no JetStream ack means 503, not 500
            return await asyncio.wrap_future(self.trail.sealer.submit(items))
        except Overloaded as exc:
            self.metrics.rejected.labels(reason="overloaded").inc(len(items))
            await asyncio.to_thread(self.trail.unhold_vault, [row for item in items for row in item.vault])
            raise ApiError(503, f"overloaded: {exc}; retry later", {"Retry-After": "1"}) from None

    async def record_read(self, token: Token, request: Request, action: str, **attributes: Any) -> None:
        """Seal who read what into the `trailseal` meta log (PCI DSS 10.2.1.3) before answering."""
        if not self.record_reads:
            return
        client = request.client.host if request.client else None
        event = {
            "log": "trailseal", "time": utc_now(), "category": "data_access", "action": action,
            "outcome": "success",
            "actor": {"id": f"token:{token.id}", "name": token.name, "type": "service", "roles": [token.role],
                      **({"ip": client} if client else {})},
            "source": {"component": "trailseal-api", "kind": "trailseal", "format": "trailseal",
                       "host": os.uname().nodename},
            "request": {"method": request.method, "path": request.url.path[:1024]},
            "attributes": {k: v for k, v in attributes.items() if v is not None},
        }
        await self.seal([from_dict(event, self.trail.clock())])


def service(request: Request) -> Service:
    return request.app.state.service


def requires(permission: str) -> Callable:
    """Mark an endpoint with the permission it needs and enforce it (401 vs 403, rate limits)."""

    def decorate(endpoint: Callable[[Request], Awaitable[Response]]):
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            svc = service(request)
            if permission == "public" or (permission == "tlog" and svc.public_tlog):
                request.state.token = None
                return await endpoint(request)
            token = authenticate(request, svc)
            needed = "read" if permission == "tlog" else permission
            if not token.allows(needed):
                raise ApiError(403, f"role {token.role!r} may not {needed} (this route needs "
                                    f"{_ROLE_FOR[needed]})")
            wait = svc.limiter.take(token.id)
            if wait:
                svc.metrics.rejected.labels(reason="rate_limited").inc()
                raise ApiError(429, "rate limit exceeded for this token", {"Retry-After": f"{max(1, round(wait))}"})
            request.state.token = token
            return await endpoint(request)

        guarded.permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate


_ROLE_FOR = {"ingest": "role ingest or admin", "read": "role reader, auditor or admin",
             "audit": "role auditor or admin", "admin": "role admin"}


def header(request: Request, name: str, default: str | None = "") -> str | None:
    """A request header (the first if repeated), from a dict built once per request: Starlette's
    ``request.headers.get`` scans every header on each call (~2 µs apiece on the ingest path)."""
    headers = request.scope.get("trailseal.headers")
    if headers is None:
        headers = request.scope["trailseal.headers"] = dict(reversed(request.scope["headers"]))
    value = headers.get(name.encode("latin-1"))
    return default if value is None else value.decode("latin-1")


def authenticate(request: Request, svc: Service) -> Token:
    """The bearer token's record; 401 when absent, malformed, unknown or revoked."""
    header_value = header(request, "authorization")
    scheme, _, secret = header_value.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="trailseal"'}
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>' "
                            "(create one with `trailseal token create`)", challenge)
    token = svc.tokens.lookup(secret.strip())
    if token is None or token.revoked:
        raise ApiError(401, "unknown or revoked token", challenge)
    return token


def check_log_scope(token: Token | None, log: str) -> None:
    if token is not None and not token.allows_log(log):
        raise ApiError(403, f"this token is limited to logs {', '.join(token.logs)}; not {log!r}")

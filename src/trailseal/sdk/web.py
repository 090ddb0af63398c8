"""What the ASGI and WSGI middleware share: one ``http.request`` (or ``user.login``) event per request,
built from what the framework saw — method, path template, status, latency, client IP, actor, trace."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from trailseal.sdk.context import RequestContext, actor_dict, current, with_origin

DEFAULT_EXCLUDE = ("/health", "/healthz", "/livez", "/readyz")
DEFAULT_AUTH_PATHS = ("login", "signin", "token")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
ANONYMOUS = {"id": "anonymous", "type": "anonymous"}
MAX_TEXT = 1024  # longer paths and user agents are cut: an oversized one must not make the event invalid


@dataclass(slots=True)
class Exchange:
    """One request and its answer, as a middleware saw them."""

    method: str
    path: str
    template: str | None = None
    status: int = 0
    bytes: int = 0
    error: BaseException | None = None


def normalize_template(template: str) -> str:
    """``/users/<int:id>`` (Flask, Django) and ``/users/{id}`` (Starlette) both become ``/users/{id}``."""
    template = _CONVERTER.sub(r"{\1}", template)
    return template if template.startswith(("/", "^")) else "/" + template


def parse_traceparent(value: str | None) -> tuple[str | None, str | None]:
    """(trace_id, parent span id) from a W3C ``traceparent`` header, or (None, None) if it is not valid."""
    match = TRACEPARENT.fullmatch(value.strip().lower()) if value else None
    if match is None or match.group(1) == "ff" or set(match.group(2)) == {"0"} or set(match.group(3)) == {"0"}:
        return None, None
    return match.group(2), match.group(3)


def outcome_of(status: int, error: BaseException | None) -> str:
    """5xx or an exception: error; 4xx (401, 403, 404...): failure; else success."""
    if error is not None or status >= 500:
        return "error"
    return "failure" if status >= 400 else "success"


def severity_of(outcome: str, status: int, login: bool) -> str:
    """medium for errors, low for refused access and failed logins, else info."""
    if outcome == "error":
        return "medium"
    if status in (401, 403) or (login and outcome == "failure"):
        return "low"
    return "info"


class Networks:
    """A set of trusted proxy networks."""

    def __init__(self, networks: Iterable[str]):
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def client_ip(peer: str | None, forwarded_for: str | None, proxies: Networks) -> str | None:
    """The peer address, or — when the peer is a trusted proxy — the nearest untrusted X-Forwarded-For hop."""
    if not peer or not forwarded_for or not proxies or peer not in proxies:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in proxies:
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class HttpAuditor:
    """The options of a middleware and the event it logs per request."""

    def __init__(self, client: Any, *, exclude: Iterable[str] | Callable[[str], bool] = DEFAULT_EXCLUDE,
                 auth_paths: Iterable[str] = DEFAULT_AUTH_PATHS, trusted_proxies: Iterable[str] = (),
                 actor_resolver: Callable[[Any], Any] | None = None):
        self.client = client
        self.emit = getattr(client, "emit", None) or (lambda fields: client.log(**fields))
        self._routes: dict[tuple[str, str], tuple[str, str, str, bool]] = {}
        self.exclude = exclude if callable(exclude) else self._matcher(tuple(exclude))
        self.auth_paths = tuple(p.lower() for p in auth_paths)
        self.proxies = Networks(trusted_proxies)
        self.actor_resolver = actor_resolver

    @staticmethod
    def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
        """Exact paths, or prefixes when they end with ``*``."""
        exact = frozenset(p for p in patterns if not p.endswith("*"))
        prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
        return lambda path: path in exact or (bool(prefixes) and path.startswith(prefixes))

    def begin(self, peer: str | None, forwarded_for: str | None, user_agent: str | None,
              traceparent: str | None) -> tuple[RequestContext, Any]:
        """Set the request context (actor still anonymous) for everything logged while serving it."""
        trace_id, span_id = parse_traceparent(traceparent)
        ctx = RequestContext(trace_id=trace_id, span_id=span_id, user_agent=user_agent and user_agent[:MAX_TEXT],
                             ip=client_ip(peer, forwarded_for, self.proxies))
        return ctx, current.set(ctx)

    def resolve(self, request: Any, ctx: RequestContext, default: Callable[[Any], Any] | None = None) -> None:
        """Ask the resolver (else the framework's default) who the actor is, unless set_actor() said so."""
        resolver = self.actor_resolver or default
        if resolver is None or (ctx.pinned and self.actor_resolver is None):
            return
        try:
            actor = actor_dict(resolver(request))
        except Exception:  # noqa: BLE001 - a broken resolver must not break the request
            actor = None
        if actor is not None:
            ctx.actor = with_origin(actor, ctx)

    def finish(self, exchange: Exchange, ctx: RequestContext, token: Any, started: float) -> None:
        """Log the request's event and leave the request context."""
        try:
            self.emit(self.event(exchange, ctx, time.perf_counter() - started))
        finally:
            try:
                current.reset(token)
            except ValueError:  # finished in another context (a WSGI body closed elsewhere)
                current.set(None)

    def event(self, exchange: Exchange, ctx: RequestContext, elapsed: float) -> dict[str, Any]:
        """The log() arguments for one request."""
        method = exchange.method.upper()[:32]
        path, category, action, login = self.route(method, exchange.path[:MAX_TEXT], exchange.template)
        status = exchange.status or (500 if exchange.error is not None else 0)
        outcome = outcome_of(status, exchange.error)
        fields: dict[str, Any] = {
            "category": category, "action": action, "outcome": outcome,
            "severity": severity_of(outcome, status, login),
            "actor": ctx.actor or with_origin(dict(ANONYMOUS), ctx),
            "target": {"type": "endpoint", "id": f"{method} {path}"},
            "request": {"method": method, "path": path, "status": status, "bytes": exchange.bytes,
                        "trace_id": ctx.trace_id, "span_id": ctx.span_id},
            "attributes": {"latency_ms": round(elapsed * 1000, 3)},
        }
        if exchange.error is not None:
            fields["reason"] = f"{type(exchange.error).__name__}: {exchange.error}"[:1000]
        elif status >= 400:
            fields["reason"] = f"HTTP {status}"
        return fields

    def route(self, method: str, raw_path: str, template: str | None) -> tuple[str, str, str, bool]:
        """(path, category, action, is_login) of a request; remembered per template (there are few)."""
        known = self._routes.get((method, template)) if template else None
        if known is not None:
            return known
        path = normalize_template(template) if template else raw_path
        login = method not in SAFE_METHODS and any(p in path.lower() for p in self.auth_paths)
        if login:
            found = (path, "authentication", "user.login", True)
        else:
            found = (path, "data_access" if method in SAFE_METHODS else "data_change", "http.request", False)
        if template and len(self._routes) < 10_000:
            self._routes[(method, template)] = found
        return found

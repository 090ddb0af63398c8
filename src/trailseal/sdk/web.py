"""What the ASGI and WSGI middleware share: one ``http.request`` (or ``user.login``) event per request,
built from what the framework saw — method, path template, status, latency, client IP, actor, trace.

The request's own thread only notes raw facts in an ``Exchange``. By default (``transport="process"``)
they go as one tuple to a forwarder subprocess (``trailseal.sdk.forwarder``), which renders the event
(``HttpAuditor.render``); with ``transport="thread"`` the exchange is queued (``Client.submit``) and the
client's writer thread in the app renders it. Either way route template, outcome, client IP, trace and
the event itself cost the request nothing."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from trailseal.event import Actor, Event, Request, Source, Target
from trailseal.sdk.context import Origin, RequestContext, actor_dict, current

DEFAULT_EXCLUDE = ("/health", "/healthz", "/livez", "/readyz")
DEFAULT_AUTH_PATHS = ("login", "signin", "token")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
MAX_TEXT = 1024  # longer paths and user agents are cut: an oversized one must not make the event invalid
_NO_SOURCE = Source(component="-", kind="app")


class Exchange(RequestContext):
    """One request and its answer, as a middleware saw them — also the request's context (one object
    per request, not two): raw facts only, rendered off the request's thread. ``route``/``prefix`` stand
    in for ``template`` when the router's route object is at hand."""

    __slots__ = ("auditor", "method", "path", "started", "template", "route", "prefix", "status", "bytes",
                 "error", "final_actor", "elapsed", "ns", "queued")

    def __init__(self, auditor: HttpAuditor, raw: Any, reader: Callable[[Any], Origin],
                 ask: Callable[[RequestContext], None] | None, method: str, path: str):
        self.actor, self.pinned, self.raw, self._reader, self._origin, self._ask = None, False, raw, reader, None, ask
        self.auditor, self.method, self.path, self.started = auditor, method, path, time.perf_counter()
        self.template = self.route = self.error = self.final_actor = None
        self.prefix = ""
        self.status = self.bytes = self.ns = 0
        self.elapsed = 0.0
        self.queued = False  # handed to the client: from then on only its writer thread reads it

    def to_event(self, event_id: str | None, time: str, source: Source, log: str | None) -> Event:
        """The event (the client's writer calls this with the id, time, source and ledger it assigns)."""
        return self.auditor.render(self, event_id, time, source, log)


def text(value: str | bytes | None) -> str | None:
    """A header value as a record carries it (the ASGI middleware ships the server's bytes) as text."""
    return value.decode("latin-1") if type(value) is bytes else value


def host(peer: str | list | tuple | None) -> str | None:
    """The client's address as a record carries it: a WSGI ``REMOTE_ADDR``, or an ASGI ``client``
    (host, port) pair as the middleware shipped it."""
    if isinstance(peer, (list, tuple)):
        return peer[0] if peer else None
    return peer


class Forwarded:
    """A request record as the forwarder (or the fallback in the app) gets it — the tuple
    ``HttpAuditor.record`` (or the ASGI middleware) made — ready to be rendered like an ``Exchange``."""

    __slots__ = ("auditor", "ns", "elapsed", "method", "path", "template", "status", "bytes", "error",
                 "final_actor", "origin")
    route, prefix = None, ""

    def __init__(self, auditor: HttpAuditor, record: Any):
        (_, self.ns, self.elapsed, self.method, self.path, self.template, self.status, self.bytes, self.error,
         self.final_actor, peer, forwarded_for, user_agent, traceparent) = record
        self.auditor = auditor
        self.origin = auditor.origin(host(peer), text(forwarded_for), text(user_agent), text(traceparent))

    def to_event(self, event_id: str | None, time: str, source: Source, log: str | None) -> Event:
        return self.auditor.render(self, event_id, time, source, log)


def normalize_template(template: str) -> str:
    """``/users/<int:id>`` (Flask, Django) and ``/users/{id}`` (Starlette) both become ``/users/{id}``."""
    template = _CONVERTER.sub(r"{\1}", template)
    return template if template.startswith(("/", "^")) else "/" + template


def route_template(route: Any, prefix: str) -> str | None:
    """A router's route object's template (Starlette ``path_format``), under a Mount ``prefix``."""
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return prefix + template if isinstance(template, str) else None


def parse_traceparent(value: str | None) -> tuple[str | None, str | None]:
    """(trace_id, parent span id) from a W3C ``traceparent`` header, or (None, None) if it is not valid."""
    match = TRACEPARENT.fullmatch(value.strip().lower()) if value else None
    if match is None or match.group(1) == "ff" or set(match.group(2)) == {"0"} or set(match.group(3)) == {"0"}:
        return None, None
    return match.group(2), match.group(3)


def outcome_of(status: int, error: object | None) -> str:
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


def describe(error: BaseException) -> str:
    """An exception as the event's reason: its type and message."""
    try:
        return f"{type(error).__name__}: {error}"[:1000]
    except Exception:  # noqa: BLE001 - an exception whose str() fails still names its type
        return type(error).__name__


def reason_of(status: int, error: str | None) -> str | None:
    """The exception, or the HTTP status of a refused request."""
    if error is not None:
        return error
    return f"HTTP {status}" if status >= 400 else None


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


def actor_struct(actor: dict[str, Any] | None, ip: str | None, user_agent: str | None) -> Actor:
    """The event's actor: the resolved one (validated; one that is not valid keeps only its id) or
    anonymous, with the request's IP and user agent where it names none."""
    if actor is None:
        return Actor(id="anonymous", type="anonymous", ip=ip, user_agent=user_agent)
    try:
        found = msgspec.convert(actor, Actor)
    except msgspec.ValidationError:
        found = Actor(id=str(actor.get("id"))[:MAX_TEXT] or "unknown")
    if found.ip is None:
        found.ip = ip
    if found.user_agent is None:
        found.user_agent = user_agent
    return found


class HttpAuditor:
    """The options of a middleware and the event it logs per request."""

    def __init__(self, client: Any, *, exclude: Iterable[str] | Callable[[str], bool] = DEFAULT_EXCLUDE,
                 auth_paths: Iterable[str] = DEFAULT_AUTH_PATHS, trusted_proxies: Iterable[str] = (),
                 actor_resolver: Callable[[Any], Any] | None = None, transport: str = "process"):
        if transport not in ("process", "thread"):
            raise ValueError(f"transport must be 'process' or 'thread', not {transport!r}")
        self.client = client
        self.submit = getattr(client, "submit", None) or self._log_now
        self.forward: Callable[[tuple], None] | None = None  # see use_forwarder()
        self.index = 0
        self.facts: Callable[[Any], tuple] | None = None
        self.transport = transport
        self._routes: dict[tuple[str, str | None], tuple[str, str, str, bool, Target]] = {}
        self._verdicts: dict[tuple[int, bool], tuple[str, str, str | None]] = {}
        self.exclude = exclude if callable(exclude) else self._matcher(tuple(exclude))
        self.auth_paths = tuple(p.lower() for p in auth_paths)
        self.trusted_proxies = tuple(trusted_proxies)
        self.proxies = Networks(self.trusted_proxies)
        self.actor_resolver = actor_resolver

    def use_forwarder(self, facts: Callable[[Any], tuple]) -> None:
        """Send requests to the client's forwarder subprocess (when the transport is "process" and the client
        has one); ``facts(raw)`` gives a request's (peer, X-Forwarded-For, User-Agent, traceparent)."""
        forwarder = getattr(self.client, "forwarder", None)
        if self.transport == "process" and forwarder is not None:
            self.facts = facts
            self.forwarder = target = forwarder()
            self.index = target.register(self)
            self.forward = target.put

    @staticmethod
    def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
        """Exact paths, or prefixes when they end with ``*``."""
        exact = frozenset(p for p in patterns if not p.endswith("*"))
        prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
        if not prefixes:
            return exact.__contains__  # one C call per request
        return lambda path: path in exact or path.startswith(prefixes)

    # -- on the request's thread -----------------------------------------------------------------
    def begin(self, raw: Any, reader: Callable[[Any], Origin], method: str, path: str,
              ask: Callable[[RequestContext], None] | None = None) -> tuple[Exchange, Any]:
        """Enter the request context: its origin is parsed, and its actor resolved (``ask``), only when
        something asks for them."""
        exchange = Exchange(self, raw, reader, ask, method, path)
        return exchange, current.set(exchange)

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
            ctx.actor = actor

    def finish(self, exchange: Exchange, token: Any) -> None:
        """Queue the request's event and leave the request context."""
        exchange.elapsed = time.perf_counter() - exchange.started
        exchange.ns = time.time_ns()
        exchange.final_actor = exchange.actor
        if exchange.error is not None and not isinstance(exchange.error, str):
            exchange.error = describe(exchange.error)  # keep the text: the traceback holds the request's frames
        exchange.queued = True
        try:
            if self.forward is None or not self._forwarded(exchange):
                self.submit(exchange)
        finally:
            try:
                current.reset(token)
            except ValueError:  # finished in another context (a WSGI body closed elsewhere)
                current.set(None)

    def _forwarded(self, exchange: Exchange) -> bool:
        """Hand the request to the forwarder; False if its facts would not make a record."""
        try:
            record = self.record(exchange)
        except Exception:  # noqa: BLE001 - the in-process path renders it instead
            return False
        self.forward(record)
        return True

    def record(self, x: Exchange) -> tuple:
        """The raw facts of a finished request as one tuple (what travels to the forwarder)."""
        template = x.template or (route_template(x.route, x.prefix) if x.route is not None else None)
        return (self.index, x.ns, x.elapsed, x.method, x.path, template, x.status, x.bytes, x.error,
                x.final_actor, *self.facts(x.raw))

    def _log_now(self, exchange: Exchange) -> None:
        """For a client without ``submit`` (anything with ``log(**fields)``): the fields, right away."""
        fields = msgspec.to_builtins(self.render(exchange, None, "-", _NO_SOURCE, None))
        del fields["time"], fields["source"]
        self.client.log(**fields)

    # -- on the client's writer thread -----------------------------------------------------------
    def origin(self, peer: str | None, forwarded_for: str | None, user_agent: str | None,
               traceparent: str | None) -> Origin:
        """(client IP, user agent, trace id, span id) of a request from its raw header values."""
        trace_id, span_id = parse_traceparent(traceparent)
        return client_ip(peer, forwarded_for, self.proxies), user_agent and user_agent[:MAX_TEXT], trace_id, span_id

    def render(self, x: Exchange, event_id: str | None, time: str, source: Source, log: str | None) -> Event:
        """The event of one request. Every field is built to fit the schema (cut, checked or looked up),
        so only the resolver's actor needs validating."""
        method = x.method.upper()[:32]
        template = x.template or (route_template(x.route, x.prefix) if x.route is not None else None)
        path, category, action, login, target = self.route(method, x.path[:MAX_TEXT], template)
        status = (x.status if 0 <= x.status <= 999 else 0) or (500 if x.error is not None else 0)
        outcome, severity, reason = self.verdict(status, x.error, login)
        ip, user_agent, trace_id, span_id = x.origin
        return Event(time=time, category=category, action=action, outcome=outcome,
                     actor=actor_struct(x.final_actor, ip, user_agent), source=source, id=event_id, log=log,
                     reason=reason, severity=severity, target=target,
                     request=Request(method=method, path=path, status=status, bytes=x.bytes, trace_id=trace_id,
                                     span_id=span_id),
                     attributes={"latency_ms": round(x.elapsed * 1000, 3)})

    def verdict(self, status: int, error: str | None, login: bool) -> tuple[str, str, str | None]:
        """(outcome, severity, reason) of an answer; remembered per status when there was no exception."""
        known = self._verdicts.get((status, login)) if error is None else None
        if known is None:
            outcome = outcome_of(status, error)
            known = (outcome, severity_of(outcome, status, login), reason_of(status, error))
            if error is None:
                self._verdicts[(status, login)] = known
        return known

    def route(self, method: str, raw_path: str, template: str | None) -> tuple[str, str, str, bool, Target]:
        """(path, category, action, is_login, target) of a request; remembered per template (there are few)."""
        known = self._routes.get((method, template)) if template else None
        if known is not None:
            return known
        path = normalize_template(template)[:MAX_TEXT] if template else raw_path
        login = method not in SAFE_METHODS and any(p in path.lower() for p in self.auth_paths)
        category = "authentication" if login else "data_access" if method in SAFE_METHODS else "data_change"
        found = (path, category, "user.login" if login else "http.request", login,
                 Target(type="endpoint", id=f"{method} {path}"))
        if template and len(self._routes) < 10_000:
            self._routes[(method, template)] = found
        return found

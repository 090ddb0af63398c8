"""WSGI middleware (any WSGI app, Flask) and Django middleware: one audit event per HTTP request.

    instrument_flask(app, client)                          # Flask: url_rule templates, g.user
    MIDDLEWARE = ["trailseal.sdk.wsgi.DjangoMiddleware", ...]   # Django: resolver_match.route, request.user
    app = TrailsealMiddleware(app, client)                 # any WSGI app (raw paths)

Frameworks hand the route template and a swallowed exception to the WSGI layer through the environ keys
``trailseal.route`` and ``trailseal.error``, and the actor through ``set_actor()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from trailseal.sdk.context import Origin, RequestContext, current, session_hash
from trailseal.sdk.web import Exchange, HttpAuditor

ROUTE, ERROR = "trailseal.route", "trailseal.error"


def environ_facts(environ: dict) -> tuple:
    """(peer, X-Forwarded-For, User-Agent, traceparent) of a request, raw, from its WSGI environ."""
    return (environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"), environ.get("HTTP_USER_AGENT"),
            environ.get("HTTP_TRACEPARENT"))


def environ_reader(auditor: HttpAuditor):
    """A function giving a request's origin from its WSGI environ (Django's request.META is one)."""
    def origin(environ: dict) -> Origin:
        return auditor.origin(*environ_facts(environ))
    return origin


def content_length(headers: list) -> int | None:
    """The Content-Length a response declares, if any."""
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class TrailsealMiddleware:
    """Wrap a WSGI app; options as for ``HttpAuditor``. The resolver gets the WSGI environ."""

    def __init__(self, app: Any, client: Any, **options: Any):
        self.app = app
        self.auditor = HttpAuditor(client, **options)
        self.auditor.use_forwarder(environ_facts)
        self.origin = environ_reader(self.auditor)
        self.ask = self.resolve_early if self.auditor.actor_resolver is not None else None

    def resolve_early(self, ctx: RequestContext) -> None:
        """Who acts, asked for by something logged during the request (a database hook, ``log()``)."""
        self.auditor.resolve(ctx.raw, ctx)

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.auditor.exclude(path):
            return self.app(environ, start_response)
        exchange, token = self.auditor.begin(environ, self.origin, environ.get("REQUEST_METHOD", "GET"),
                                             path or "/", self.ask)
        response = _Response(self, environ, exchange, token, start_response)
        try:
            response.body = self.app(environ, response.start_response)
        except Exception as exc:
            exchange.error = exc
            response.done()
            raise
        return response

    def finish(self, environ: dict, exchange: Exchange, token: Any) -> None:
        """Take what the framework noted in the environ, resolve the actor, queue the event."""
        exchange.template = exchange.template or environ.get(ROUTE)
        exchange.error = exchange.error or environ.get(ERROR)
        self.auditor.resolve(environ, exchange)
        self.auditor.finish(exchange, token)


class _Response:
    """The response on its way out: its status and size are noted as the server takes it, and the event
    is queued as soon as the answer is complete — before its last byte reaches the server, so a client
    that sends its next request on seeing this answer finds this request's event queued before that
    one's (with threaded servers, whose close() of the body can come well after the client has it)."""

    __slots__ = ("middleware", "environ", "exchange", "token", "server_start", "body", "expected", "logged")

    def __init__(self, middleware: TrailsealMiddleware, environ: dict, exchange: Exchange, token: Any,
                 start_response: Any):
        self.middleware, self.environ, self.exchange, self.token = middleware, environ, exchange, token
        self.server_start, self.body, self.expected, self.logged = start_response, (), None, False

    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Any:
        self.exchange.status = int(status[:3]) if status[:3].isdecimal() else 0
        self.expected = content_length(headers)
        return self.server_start(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        exchange = self.exchange
        try:
            for chunk in self.body:
                if not self.logged:  # once queued, the record is the writer thread's: hands off
                    exchange.bytes += len(chunk)
                    if self.expected is not None and exchange.bytes >= self.expected:
                        self.done()  # the declared length is reached: queue before the last bytes go out
                yield chunk
        except Exception as exc:
            if not self.logged:
                exchange.error = exc
            self.done()
            raise
        self.done()  # before the server writes a chunked body's terminator or closes the connection

    def close(self) -> None:
        """The server is done with the body (PEP 3333): close the app's, then log if not yet done."""
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done()

    def done(self) -> None:
        """Queue the event once, whichever comes first."""
        if not self.logged:
            self.logged = True
            self.middleware.finish(self.environ, self.exchange, self.token)


# -- Flask ---------------------------------------------------------------------------------------------
def instrument_flask(app: Any, client: Any, **options: Any) -> TrailsealMiddleware:
    """Audit every request of a Flask app; the resolver (``actor_resolver``) gets ``flask.request``; by
    default the actor is ``flask.g.user``, if the app set one."""
    from flask import g, request

    resolver = options.pop("actor_resolver", None) or (lambda req: g.get("user"))
    middleware = TrailsealMiddleware(app.wsgi_app, client, **options)
    app.wsgi_app = middleware
    auditor = middleware.auditor

    def resolve_early(ctx: RequestContext) -> None:
        """Who acts, asked for by something logged while a view runs (a database hook, ``log()``)."""
        auditor.resolve(request._get_current_object(), ctx, resolver)

    def note(exc: BaseException | None = None) -> None:
        """At the request's teardown: hand the url_rule, the actor and an unhandled exception over."""
        ctx = current.get()
        if ctx is None:  # not audited (an excluded path)
            return
        req = request._get_current_object()  # one look-up, not one per attribute through the proxy
        if req.url_rule is not None:
            req.environ[ROUTE] = req.url_rule.rule
        if exc is not None:
            req.environ[ERROR] = exc
        auditor.resolve(req, ctx, resolver)

    middleware.ask = resolve_early
    app.teardown_request(note)
    return middleware


# -- Django --------------------------------------------------------------------------------------------
def django_user(request: Any) -> dict | None:
    """``request.user`` when authenticated, with a hash of the session key."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    actor = {"id": str(user.pk), "name": user.get_username()}
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        actor["session"] = session_hash(key)
    return actor


class DjangoMiddleware:
    """Django middleware; settings: ``TRAILSEAL_CLIENT`` (a Client, or a dotted path to one) and
    ``TRAILSEAL_MIDDLEWARE`` (a dict of HttpAuditor options). The resolver gets the HttpRequest."""

    def __init__(self, get_response: Any):
        from django.conf import settings
        from django.utils.module_loading import import_string

        client = settings.TRAILSEAL_CLIENT
        self.client = import_string(client) if isinstance(client, str) else client
        self.auditor = HttpAuditor(self.client, **getattr(settings, "TRAILSEAL_MIDDLEWARE", {}))
        self.auditor.use_forwarder(lambda request: environ_facts(request.META))
        read_environ = environ_reader(self.auditor)
        self.origin = lambda request: read_environ(request.META)
        self.ask = self.resolve_early  # bound once, not per request
        self.get_response = get_response

    def resolve_early(self, ctx: RequestContext) -> None:
        """Who acts, asked for by something logged while a view runs (a database hook, ``log()``)."""
        self.auditor.resolve(ctx.raw, ctx, django_user)

    def __call__(self, request: Any) -> Any:
        if self.auditor.exclude(request.path_info):
            return self.get_response(request)
        exchange, token = self.auditor.begin(request, self.origin, request.method, request.path_info, self.ask)
        try:
            response = self.get_response(request)
        except Exception as exc:
            exchange.error = exc
            raise
        else:
            exchange.status = response.status_code
            exchange.bytes = 0 if response.streaming else len(response.content)
            exchange.error = getattr(request, "_trailseal_error", None)
            return response
        finally:
            match = getattr(request, "resolver_match", None)
            exchange.template = getattr(match, "route", None) or None
            self.auditor.resolve(request, exchange, django_user)
            self.auditor.finish(exchange, token)

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Remember a view's exception (Django turns it into a 500 after this)."""
        request._trailseal_error = exception

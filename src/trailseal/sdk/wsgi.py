"""WSGI middleware (any WSGI app, Flask) and Django middleware: one audit event per HTTP request.

    instrument_flask(app, client)                          # Flask: url_rule templates, g.user
    MIDDLEWARE = ["trailseal.sdk.wsgi.DjangoMiddleware", ...]   # Django: resolver_match.route, request.user
    app = TrailsealMiddleware(app, client)                 # any WSGI app (raw paths)

Frameworks hand the route template and a swallowed exception to the WSGI layer through the environ keys
``trailseal.route`` and ``trailseal.error``, and the actor through ``set_actor()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from trailseal.sdk.context import RequestContext, current, session_hash
from trailseal.sdk.web import Exchange, HttpAuditor

ROUTE, ERROR = "trailseal.route", "trailseal.error"


def begin_environ(auditor: HttpAuditor, environ: dict) -> tuple[RequestContext, Any]:
    """Enter the request context from a WSGI environ (Django's request.META is one)."""
    return auditor.begin(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"),
                         environ.get("HTTP_USER_AGENT"), environ.get("HTTP_TRACEPARENT"))


class TrailsealMiddleware:
    """Wrap a WSGI app; options as for ``HttpAuditor``. The resolver gets the WSGI environ."""

    def __init__(self, app: Any, client: Any, **options: Any):
        self.app = app
        self.auditor = HttpAuditor(client, **options)

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        if self.auditor.exclude(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        started = time.perf_counter()
        ctx, token = begin_environ(self.auditor, environ)
        self.auditor.resolve(environ, ctx)
        exchange = Exchange(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "") or "/")

        def watch(status: str, headers: list, exc_info: Any = None) -> Any:
            exchange.status = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, watch)
        except Exception as exc:
            exchange.error = exc
            self._finish(environ, exchange, ctx, token, started)
            raise
        return _Body(body, lambda: self._finish(environ, exchange, ctx, token, started), exchange)

    def _finish(self, environ: dict, exchange: Exchange, ctx: RequestContext, token: Any, started: float) -> None:
        """Take what the framework noted in the environ, resolve the actor, log."""
        exchange.template = exchange.template or environ.get(ROUTE)
        exchange.error = exchange.error or environ.get(ERROR)
        self.auditor.resolve(environ, ctx)
        self.auditor.finish(exchange, ctx, token, started)


class _Body:
    """The response body, counted as it is sent; the event is logged when it ends or is closed."""

    def __init__(self, body: Iterable[bytes], on_done: Any, exchange: Exchange):
        self.body, self.on_done, self.exchange = body, on_done, exchange
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.body:
                self.exchange.bytes += len(chunk)
                yield chunk
        except Exception as exc:
            self.exchange.error = exc
            self._done()
            raise
        self._done()

    def close(self) -> None:
        """The server is done with the body (PEP 3333): close the app's, then log."""
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self._done()

    def _done(self) -> None:
        """Log once, whichever comes first: the body's end or close()."""
        if not self.done:
            self.done = True
            self.on_done()


# -- Flask ---------------------------------------------------------------------------------------------
def flask_user(request: Any) -> Any:
    """``flask.g.user`` if the app set one."""
    from flask import g

    return g.get("user")


def instrument_flask(app: Any, client: Any, **options: Any) -> TrailsealMiddleware:
    """Audit every request of a Flask app; the resolver (``actor_resolver``) gets ``flask.request``."""
    from flask import request

    resolver = options.pop("actor_resolver", None) or flask_user
    middleware = TrailsealMiddleware(app.wsgi_app, client, **options)
    app.wsgi_app = middleware

    def note(exc: BaseException | None = None) -> None:
        """Hand the url_rule, the actor and an unhandled exception to the WSGI layer."""
        environ = request.environ
        if request.url_rule is not None:
            environ[ROUTE] = request.url_rule.rule
        if exc is not None:
            environ[ERROR] = exc
        ctx = current.get()
        if ctx is not None:
            middleware.auditor.resolve(request, ctx, resolver)

    app.before_request(note)
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
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if self.auditor.exclude(request.path_info):
            return self.get_response(request)
        started = time.perf_counter()
        ctx, token = begin_environ(self.auditor, request.META)
        self.auditor.resolve(request, ctx, django_user)
        exchange = Exchange(request.method, request.path_info)
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
            self.auditor.resolve(request, ctx, django_user)
            self.auditor.finish(exchange, ctx, token, started)

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Remember a view's exception (Django turns it into a 500 after this)."""
        request._trailseal_error = exception

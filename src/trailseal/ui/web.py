"""What every console page shares: the session guard, CSRF on forms, HTML responses with strict
security headers, error pages instead of JSON, and recording each read in the meta log."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from trailseal.api.common import ApiError, service
from trailseal.ui.session import COOKIE, csrf_ok, sessions
from trailseal.ui.templating import render

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
MAX_FORM_BYTES = 64 * 1024
NAV = [("stream", "Live stream"), ("search", "Search"), ("timeline", "Timeline"), ("sources", "Sources"),
       ("alerts", "Alerts"), ("integrity", "Integrity"), ("charts", "Charts"), ("report", "Report"),
       ("validate", "Validate")]


def html(request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> HTMLResponse:
    session = getattr(request.state, "session", None)
    token = getattr(request.state, "token", None)
    body = render(template, request=request, token=token, csrf=session.csrf if session else "", nav=NAV, **context)
    return HTMLResponse(body, status, {**HEADERS, **(headers or {})})


def error_page(request: Request, status: int, reason: str) -> HTMLResponse:
    return html(request, "error.html", status, title=f"Error {status}", code=status, reason=reason)


def is_fragment(request: Request) -> bool:
    return request.headers.get("x-requested-with") == "trailseal-ui"


def page(permission: str = "read") -> Callable:
    """Guard a console endpoint: a live session whose token has ``permission``; CSRF on POST."""

    def decorate(endpoint: Callable[[Request], Awaitable[Response]]):
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            svc = service(request)
            found = sessions(svc).find(request.cookies.get(COOKIE))
            if found is None:
                if is_fragment(request):
                    return Response("session ended: log in again", 401, HEADERS)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/ui/login?next={quote(target)}", 303, HEADERS)
            request.state.session, request.state.token = found
            token = found[1]
            if not token.allows(permission):
                needed = {"read": "reader, auditor or admin", "audit": "auditor or admin"}.get(permission, permission)
                return error_page(request, 403, f"role {token.role!r} may not see this page (needs {needed})")
            if request.method == "POST":
                try:
                    form = await read_form(request)
                except ApiError as exc:
                    return error_page(request, exc.status, exc.reason)
                if not csrf_ok(found[0], form.get("csrf")):
                    return error_page(request, 403, "this form has expired or did not come from the console: "
                                                    "reload the page and try again")
            try:
                return await endpoint(request)
            except ApiError as exc:
                return error_page(request, exc.status, exc.reason)

        return guarded

    return decorate


async def read_form(request: Request) -> dict[str, str]:
    """The console's forms: application/x-www-form-urlencoded, at most MAX_FORM_BYTES (parsed once)."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise ApiError(415, "console forms are sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ApiError(413, f"form larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(400, "form is not UTF-8") from None
    request.state.form = dict(pairs)
    return request.state.form


async def record(request: Request, what: str, **attributes: Any) -> None:
    """Seal this read in the `trailseal` meta log, as the API does (action `trailseal.ui.<what>`)."""
    await service(request).record_read(request.state.token, request, f"trailseal.ui.{what}", **attributes)


async def record_changed(request: Request, what: str, body: str, **attributes: Any) -> None:
    """For live fragments polled every few seconds: record only when the content read has changed."""
    digest = hashlib.sha256(body.encode()).hexdigest()
    session = request.state.session
    if session.digests.get(what) != digest:
        session.digests[what] = digest
        await record(request, what, **attributes)

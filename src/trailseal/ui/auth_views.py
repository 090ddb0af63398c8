"""Log in with an API token, log out. Both are sealed in the meta log (who opened the console, when)."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from trailseal.api.common import service
from trailseal.event import from_dict
from trailseal.ui.session import COOKIE, MAX_AGE_SECONDS, sessions
from trailseal.ui.web import HEADERS, html, page, read_form


def safe_next(target: str | None) -> str:
    """Only a console path may follow a login (no open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/stream"


async def login_form(request: Request) -> Response:
    return html(request, "login.html", title="Log in", next=safe_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    svc = service(request)
    store = sessions(svc)
    client = request.client.host if request.client else "?"
    form = await read_form(request)
    target = safe_next(str(form.get("next") or ""))
    if store.throttled(client):
        return html(request, "login.html", 429, {"Retry-After": "300"}, title="Log in", next=target,
                    error="too many failed logins from this address: wait 5 minutes")
    opened = store.open(str(form.get("token") or "").strip())
    if opened is None or not opened[1].allows("read"):
        store.failed(client)
        await _seal_login(svc, request, None, "unknown or revoked token" if opened is None else "role may not read")
        reason = ("unknown or revoked token" if opened is None else
                  f"role {opened[1].role!r} cannot use the console: it needs reader, auditor or admin")
        if opened is not None:
            store.close(opened[0].id)
        return html(request, "login.html", 401, title="Log in", next=target, error=reason)
    session, token = opened
    await _seal_login(svc, request, token, None)
    response = RedirectResponse(target, 303, HEADERS)
    response.set_cookie(COOKIE, session.id, max_age=int(MAX_AGE_SECONDS), path="/ui", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@page("read")
async def logout(request: Request) -> Response:
    sessions(service(request)).close(request.state.session.id)
    response = RedirectResponse("/ui/login", 303, HEADERS)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


async def _seal_login(svc, request: Request, token, problem: str | None) -> None:
    client = request.client.host if request.client else None
    actor = ({"id": f"token:{token.id}", "name": token.name, "type": "service", "roles": [token.role]}
             if token else {"id": "anonymous", "type": "anonymous"})
    if client:
        actor["ip"] = client
    event = {"log": "trailseal", "time": svc.trail.clock(), "category": "authentication",
             "action": "trailseal.ui.login", "outcome": "failure" if problem else "success",
             "actor": actor, "source": {"component": "trailseal-ui", "kind": "trailseal", "format": "trailseal",
                                        "host": os.uname().nodename}}
    if problem:
        event["reason"] = problem
    await svc.seal([from_dict(event, svc.trail.clock())])

"""Console pages over events: the live stream, search (with saved searches), one event with its
proof, and timelines."""

from __future__ import annotations

import asyncio
import base64

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from trailseal.api.common import ApiError, check_log_scope, service
from trailseal.api.read import proof_body
from trailseal.ledger import LedgerError, leaf_hash
from trailseal.ledger.proof import verify_proof
from trailseal.query import QueryError
from trailseal.ui.reading import decode_cursor, newest, visible_logs
from trailseal.ui.saved import SavedSearchError, saved_searches
from trailseal.ui.templating import render
from trailseal.ui.web import HEADERS, html, page, read_form, record

STREAM_ROWS = 50
SEARCH_ROWS = 50


def all_logs(request: Request) -> list[str]:
    token = request.state.token
    return [i.name for i in service(request).trail.logs() if not token.logs or token.allows_log(i.name)]


@page("read")
async def stream(request: Request) -> Response:
    svc, wanted = service(request), request.query_params.get("log") or None
    logs = visible_logs(svc.trail, request.state.token, wanted)
    events, cursor = await asyncio.to_thread(newest, svc.trail, logs, STREAM_ROWS)
    await record(request, "stream", log=wanted, rows=len(events))
    return html(request, "stream.html", title="Live stream", current="stream", events=events, cursor=cursor,
                log=wanted or "", logs=all_logs(request))


@page("read")
async def stream_rows(request: Request) -> Response:
    """New rows since ``after`` (an HTML fragment); the new cursor rides in the X-Cursor header."""
    svc, wanted = service(request), request.query_params.get("log") or None
    logs = visible_logs(svc.trail, request.state.token, wanted)
    since = decode_cursor(request.query_params.get("after", ""))
    events, cursor = await asyncio.to_thread(newest, svc.trail, logs, 200, since)
    if events:
        await record(request, "stream", log=wanted, rows=len(events))
    body = render("_rows.html", events=events, new=True)
    return HTMLResponse(body, 200, {**HEADERS, "X-Cursor": cursor})


@page("read")
async def search(request: Request) -> Response:
    from trailseal.query.sealed import search_trail

    svc, params = service(request), request.query_params
    text, wanted = params.get("q", "").strip(), params.get("log") or None
    token = request.state.token
    owner = token.id
    context = {"q": text, "log": wanted or "", "logs": all_logs(request), "events": [], "next_cursor": None,
               "saved": saved_searches(svc).list(owner), "error": None, "title": "Search", "current": "search"}
    if text:
        if wanted:
            check_log_scope(token, wanted)
        elif token.logs and len(token.logs) != 1:
            raise ApiError(400, "this token reads several logs: choose one")
        log = wanted or (token.logs[0] if token.logs else None)
        try:
            found = await asyncio.to_thread(search_trail, svc.trail, text, log, SEARCH_ROWS, params.get("cursor"))
        except QueryError as exc:
            context["error"] = f"query: {exc}"
            return html(request, "search.html", 400, **context)
        context.update(events=[{"log": e.pop("log"), "index": e.pop("index"), "event": e} for e in found.events],
                       next_cursor=found.next_cursor)
        await record(request, "search", query={"q": text, "log": wanted}, rows=len(found.events))
    return html(request, "search.html", **context)


@page("read")
async def save_search(request: Request) -> Response:
    form = await read_form(request)
    try:
        saved_searches(service(request)).save(request.state.token.id, str(form.get("name") or ""),
                                              str(form.get("q") or ""))
    except SavedSearchError as exc:
        raise ApiError(400, str(exc)) from None
    return RedirectResponse(f"/ui/search?q={_quote(str(form.get('q') or ''))}", 303, HEADERS)


@page("read")
async def delete_search(request: Request) -> Response:
    raw = request.path_params["search_id"]
    if not raw.isdecimal() or not saved_searches(service(request)).delete(request.state.token.id, int(raw)):
        raise ApiError(404, "no such saved search")
    return RedirectResponse("/ui/search", 303, HEADERS)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


@page("read")
async def event_detail(request: Request) -> Response:
    svc = service(request)
    log, raw = request.path_params["log"], request.path_params["index"]
    if not raw.isdecimal() or len(raw) > 18:
        raise ApiError(400, f"index must be a non-negative integer, not {raw[:40]!r}")
    index = int(raw)
    check_log_scope(request.state.token, log)
    size = svc.trail.store.tree_size(log)
    if index >= size:
        raise ApiError(404, f"log {log!r} has no entry {index} (size {size})")
    detail = await asyncio.to_thread(_detail, svc, log, index)
    await record(request, "event", log=log, index=index, proof=True)
    return html(request, "event.html", title=f"{log} #{index}", current="", **detail)


def _detail(svc, log: str, index: int) -> dict:
    data = svc.trail.entry(index, log)
    (row,) = svc.trail.read_events([(log, index, data)])
    proof = proof_body(svc, log, index)
    try:
        checkpoint = verify_proof(proof["tlog_proof"], data, [svc.trail.verifier(log)])
        verdict = (True, f"entry {index} is included in the tree of size {checkpoint.size} whose checkpoint "
                         f"is signed by {checkpoint.origin}")
    except LedgerError as exc:
        verdict = (False, f"does NOT verify: {exc}")
    root = proof["checkpoint"].split("\n")[2]
    return {"log": log, "index": index, "event": row["event"], "sealed": data.decode(), "leaf": leaf_hash(data).hex(),
            "proof": proof, "root": root, "entry_b64": base64.b64encode(data).decode(), "verdict": verdict}


@page("read")
async def timeline(request: Request) -> Response:
    from trailseal.query.sealed import timeline_trail

    svc, params = service(request), request.query_params
    key, value, since = params.get("key", "actor"), params.get("value", "").strip(), params.get("since") or None
    context = {"key": key, "value": value, "since": since or "", "events": [], "error": None,
               "title": "Timeline", "current": "timeline"}
    if key not in ("actor", "session", "trace"):
        raise ApiError(400, "timeline key must be actor, session or trace")
    if value:
        log = request.state.token.logs[0] if len(request.state.token.logs) == 1 else None
        try:
            found = await asyncio.to_thread(timeline_trail, svc.trail, key, value, since, log, 500)
            context["events"] = [e for e in found if request.state.token.allows_log(e.get("log", ""))]
        except QueryError as exc:
            context["error"] = f"timeline: {exc}"
            return html(request, "timeline.html", 400, **context)
        await record(request, "timeline", key=key, rows=len(context["events"]))
    return html(request, "timeline.html", **context)

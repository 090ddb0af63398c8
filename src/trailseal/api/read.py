"""Read routes: list and fetch sealed events (with inclusion proofs) and the logs. Every read is
itself sealed in the `trailseal` meta log."""

from __future__ import annotations

import asyncio
import base64

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal.api.common import ApiError, check_log_scope, json_response, requires, service
from trailseal.event import CATEGORIES, OUTCOMES, EventError, normalize_time
from trailseal.ledger import leaf_hash
from trailseal.ledger.proof import format_proof
from trailseal.store.base import Cursor, Filters

MAX_LIMIT = 1000
FILTER_PARAMS = {"category": "category", "action": "action_prefix", "outcome": "outcome",
                 "actor": "actor_id", "target": "target_id", "source": "source_component"}


def parse_filters(request: Request) -> Filters:
    """Query parameters -> Filters, each checked with a reason on failure."""
    params = request.query_params
    unknown = set(params) - {*FILTER_PARAMS, "since", "until", "log", "limit", "cursor", "q"}
    if unknown:
        raise ApiError(400, f"unknown parameter(s): {', '.join(sorted(unknown))}")
    values = {FILTER_PARAMS[k]: params[k] for k in FILTER_PARAMS if k in params}
    if "category" in values and values["category"] not in CATEGORIES:
        raise ApiError(400, f"category must be one of {', '.join(CATEGORIES)}")
    if "outcome" in values and values["outcome"] not in OUTCOMES:
        raise ApiError(400, f"outcome must be one of {', '.join(OUTCOMES)}")
    if "action_prefix" in values:
        values["action_prefix"] = values["action_prefix"].rstrip("*")
    for key in ("since", "until"):
        if key in params:
            try:
                values[key] = normalize_time(params[key], key)
            except EventError as exc:
                raise ApiError(400, str(exc)) from None
    return Filters(**values)


def parse_limit(request: Request) -> int:
    raw = request.query_params.get("limit", "100")
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).decode().rstrip("=")


def decode_cursor(text: str | None) -> Cursor | None:
    if not text:
        return None
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), type=Cursor)
    except (ValueError, msgspec.DecodeError):
        raise ApiError(400, "cursor is not one this server issued") from None


def readable_logs(request: Request, wanted: str | None) -> list[str] | None:
    token = request.state.token
    if wanted is not None:
        check_log_scope(token, wanted)
        return [wanted]
    return list(token.logs) if token is not None and token.logs else None


async def query_events(request: Request, svc, text: str, limit: int) -> Response:
    """`?q=` in the one query language (same as the CLI and the UI)."""
    from trailseal.query import QueryError
    from trailseal.query.sealed import search_trail

    log = request.query_params.get("log")
    allowed = readable_logs(request, log)
    if allowed is not None and log is None and len(allowed) != 1:
        raise ApiError(400, "this token reads several logs: add log=<name> to a q= search")
    try:
        page = await asyncio.to_thread(search_trail, svc.trail, text, (allowed or [None])[0], limit,
                                       request.query_params.get("cursor"))
    except QueryError as exc:
        raise ApiError(400, f"query: {exc}") from None
    events = [{"log": e.pop("log"), "index": e.pop("index"), "event": e} for e in page.events]
    await svc.record_read(request.state.token, request, "trailseal.search", query={"q": text}, rows=len(events))
    return json_response({"events": events, "next_cursor": page.next_cursor})


@requires("read")
async def list_events(request: Request) -> Response:
    svc = service(request)
    if "q" in request.query_params:
        extra = set(request.query_params) - {"q", "log", "limit", "cursor"}
        if extra:
            raise ApiError(400, f"q= takes no other filters ({', '.join(sorted(extra))}): put them in the query")
        return await query_events(request, svc, request.query_params["q"], parse_limit(request))
    filters, limit = parse_filters(request), parse_limit(request)
    after = decode_cursor(request.query_params.get("cursor"))
    logs = readable_logs(request, request.query_params.get("log"))
    filters = by_sealed_actor(svc, filters, logs)
    rows = svc.trail.store.select(logs, filters, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    events = svc.trail.read_events([(log, index, data) for log, index, _, data in rows])
    cursor = encode_cursor(Cursor(rows[-1][2], rows[-1][0], rows[-1][1])) if more else None
    await svc.record_read(request.state.token, request, "trailseal.search",
                          query=dict(request.query_params), rows=len(events))
    return json_response({"events": events, "next_cursor": cursor})


def by_sealed_actor(svc, filters: Filters, logs: list[str] | None) -> Filters:
    """Actor ids are sealed as commitments or pseudonyms: find them by the actor's search token and keyed
    HMAC (``Protection.sealed_forms``), never by plaintext."""
    if filters.actor_id is None or not svc.trail.protection.enabled:
        return filters
    names = logs if logs is not None else [info.name for info in svc.trail.logs()]
    forms = svc.trail.protection.sealed_forms(svc.trail.store, filters.actor_id, names)
    return msgspec.structs.replace(filters, actor_id=None, actor_in=forms)


def parse_index(request: Request) -> tuple[str, int]:
    log, raw = request.path_params["log"], request.path_params["index"]
    if not raw.isdecimal() or len(raw) > 18:
        raise ApiError(400, f"index must be a non-negative integer, not {raw[:40]!r}")
    return log, int(raw)


@requires("read")
async def get_event(request: Request) -> Response:
    svc = service(request)
    log, index = parse_index(request)
    check_log_scope(request.state.token, log)
    size = svc.trail.store.tree_size(log)
    if index >= size:
        raise ApiError(404, f"log {log!r} has no entry {index} (size {size})")
    try:
        data = svc.trail.entry(index, log)  # falls back to the archive; an expired entry says who pruned it
    except IndexError as exc:
        raise ApiError(410 if type(exc).__name__ == "PrunedError" else 404, str(exc)) from None
    (row,) = svc.trail.read_events([(log, index, data)])
    body = {"log": log, "index": index, "leaf_hash": leaf_hash(data).hex(), "event": row["event"],
            "sealed": data.decode()}
    if request.query_params.get("proof") in ("1", "true", "yes"):
        body["proof"] = proof_body(svc, log, index)
    await svc.record_read(request.state.token, request, "trailseal.event.read", log=log, index=index,
                          proof="proof" in body)
    return json_response(body)


def proof_body(svc, log: str, index: int) -> dict:
    """The inclusion proof against the newest checkpoint, as hashes and as a C2SP tlog-proof."""
    note = svc.trail.checkpoint(log)
    size = int(note.split("\n")[1])
    hashes = svc.trail.inclusion_proof(index, size, log)
    return {"tree_size": size, "hashes": [base64.b64encode(h).decode() for h in hashes],
            "checkpoint": note, "tlog_proof": format_proof(index, hashes, note)}


@requires("read")
async def list_logs(request: Request) -> Response:
    svc = service(request)
    token = request.state.token
    from trailseal.retention_db import connection, minimum_index

    conn = connection(svc.trail.store)
    logs = [{"name": info.name, "size": info.size, "checkpoint": info.checkpoint,
             "vkey": svc.trail.vkey(info.name), "minimum_index": minimum_index(conn, info.name, info.size)}
            for info in svc.trail.logs() if token is None or token.allows_log(info.name)]
    return json_response({"logs": logs})


routes = [
    Route("/v1/events", list_events, methods=["GET"]),
    Route("/v1/events/{log}/{index}", get_event, methods=["GET"]),
    Route("/v1/logs", list_logs, methods=["GET"]),
]

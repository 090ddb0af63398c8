"""Legal holds over the API, so a hold can be placed while `serve` runs (the CLI's `hold` commands need
the writer lock, or `--url`): list (auditors and admins), place and release (admins). Each hold and
release is sealed in the `trailseal` log with the token that asked for it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal.api.common import ApiError, json_response, requires, service

MAX_BODY = 1 << 20  # a hold by ids names at most MAX_IDS of them
MAX_IDS = 10_000
MAX_REASON = 1000


class HoldRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str
    query: str | None = None
    ids: list[str] = []
    log: str = "default"


def _retention(svc) -> Any:
    """Retention of the served data dir, as configured (its archive gets segment holds too); 503 with the
    reason when its configuration or archive cannot be opened."""
    from trailseal.retention import RetentionConfigError, configured_retention

    try:
        return configured_retention(svc.trail)
    except RetentionConfigError as exc:
        raise ApiError(503, str(exc)) from None


def _hold_body(hold) -> dict[str, Any]:
    return dataclasses.asdict(hold)


async def _body(request: Request) -> HoldRequest:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, f"a hold request is at most {MAX_BODY} bytes")
    try:
        wanted = msgspec.json.decode(body, type=HoldRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ApiError(400, f'expected {{"reason": "...", "query": "..." or "ids": [...], "log": "..."}}: {exc}') \
            from None
    if not wanted.reason.strip() or len(wanted.reason) > MAX_REASON:
        raise ApiError(400, f"reason: say why, in 1 to {MAX_REASON} characters (a case number, a request)")
    if len(wanted.ids) > MAX_IDS:
        raise ApiError(400, f"ids: at most {MAX_IDS} in one hold (or hold by query)")
    return wanted


@requires("audit")
async def list_holds(request: Request) -> Response:
    """Active legal holds (``?all=true``: released ones too)."""
    svc = service(request)
    every = request.query_params.get("all", "false").lower() in ("1", "true", "yes")
    retention = await asyncio.to_thread(_retention, svc)
    holds = await asyncio.to_thread(retention.holds, active=not every)
    return json_response({"holds": [_hold_body(hold) for hold in holds]})


@requires("admin")
async def place_hold(request: Request) -> Response:
    """Place a legal hold by query or by event ids; held events are never pruned and their subjects' values
    never erased until it is released."""
    from trailseal.retention import RetentionError

    svc = service(request)
    wanted = await _body(request)
    retention = await asyncio.to_thread(_retention, svc)
    by = f"token:{request.state.token.id}"
    try:
        held = await asyncio.to_thread(lambda: retention.hold(reason=wanted.reason, ids=wanted.ids,
                                                              query=wanted.query, log=wanted.log, by=by))
    except RetentionError as exc:
        raise ApiError(400, str(exc)) from None
    return json_response(_hold_body(held), 201)


@requires("admin")
async def release_hold(request: Request) -> Response:
    """Release an active legal hold."""
    from trailseal.retention import RetentionError

    svc = service(request)
    raw = request.path_params["hold"]
    if not raw.isdecimal() or len(raw) > 18:
        raise ApiError(400, f"hold id must be a positive integer, not {raw[:40]!r}")
    retention = await asyncio.to_thread(_retention, svc)
    by = f"token:{request.state.token.id}"
    try:
        released = await asyncio.to_thread(retention.release, int(raw), by)
    except RetentionError as exc:
        raise ApiError(404, str(exc)) from None
    return json_response(_hold_body(released))


routes = [Route("/v1/admin/holds", list_holds, methods=["GET"]),
          Route("/v1/admin/holds", place_hold, methods=["POST"]),
          Route("/v1/admin/holds/{hold}/release", release_hold, methods=["POST"])]

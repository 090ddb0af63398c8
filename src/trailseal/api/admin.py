"""Admin routes: GDPR erasure."""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal.api.common import ApiError, json_response, requires, service
from trailseal.datadir import ErasureRefused
from trailseal.store.base import StoreError


class EraseRequest(msgspec.Struct, forbid_unknown_fields=True):
    subject: str
    log: str | None = None


@requires("admin")
async def erase(request: Request) -> Response:
    """Delete a subject's vault rows (every proof stays valid); the erasure is sealed."""
    svc = service(request)
    body = await request.body()
    try:
        wanted = msgspec.json.decode(body[:65536], type=EraseRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ApiError(400, f"expected {{\"subject\": \"...\", \"log\": \"...\"?}}: {exc}") from None
    if not wanted.subject.strip():
        raise ApiError(400, "subject must not be empty")
    token = request.state.token
    try:
        count = await asyncio.to_thread(svc.trail.erase, wanted.subject, wanted.log, by=f"token:{token.id}")
    except StoreError as exc:  # e.g. readers kept old WAL copies of the erased values: the caller retries
        raise ApiError(503, str(exc), {"Retry-After": "1"}) from None
    except ErasureRefused as exc:  # a legal hold keeps the subject's events
        raise ApiError(409, str(exc)) from None
    return json_response({"erased": count, "subject": "(not echoed)", "log": wanted.log})


routes = [Route("/v1/admin/erase", erase, methods=["POST"])]

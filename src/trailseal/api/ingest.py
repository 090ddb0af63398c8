"""POST /v1/events: JSON array or NDJSON in, one receipt per sealed event and one error per rejected
record out — only after the group commit holding them is durable."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal.api.common import ApiError, Service, header, json_response, requires, service
from trailseal.event import EventError, Sealable, decode_event
from trailseal.protection import seal_received

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines")
BODY_TIMEOUT = 30.0


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The request body, bounded in size (413), time (408) and decompressed size (gzip bombs)."""
    declared = header(request, "content-length", None)
    if declared is not None:
        if not declared.isdecimal():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise ApiError(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):  # one deadline for the whole body (wait_for made a task per chunk)
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout:.0f} s") from None
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before the body was complete") from None
    return decode_content(b"".join(chunks), header(request, "content-encoding", "identity"), limit)


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo gzip/deflate with a hard cap on the inflated size."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    inflater = zlib.decompressobj(31 if "gzip" in encoding else 15)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid {encoding}: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise ApiError(413, f"decompressed body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise ApiError(400, f"truncated {encoding} body")
    return data


def split_records(body: bytes, content_type: str) -> list[bytes]:
    """One raw record per event: NDJSON lines, or the elements of a JSON array (or one object)."""
    media = content_type.split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        return [line for line in body.split(b"\n") if line.strip()]
    if media not in ("application/json", ""):
        raise ApiError(415, f"Content-Type {media!r} is not supported: send application/json (an array of "
                            "events) or application/x-ndjson")
    stripped = body.lstrip()
    if stripped[:1] == b"{":
        return [body]
    try:
        return [bytes(raw) for raw in msgspec.json.decode(body, type=list[msgspec.Raw])]
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"body is not a JSON array of events: {exc}") from None


def validate(records: list[bytes], svc: Service, token) -> tuple[list[tuple[int, Sealable]], list[dict]]:
    """Parse each record; good ones with their position, and one error per bad one."""
    good, errors = [], []
    received = svc.trail.clock()  # one arrival time per request
    logs = token.logs if token is not None and token.logs else None
    for position, raw in enumerate(records):
        try:
            good.append((position, seal_received(svc.trail.protection, decode_event(raw), received, logs)))
        except EventError as exc:
            errors.append({"position": position, "field": exc.field, "reason": exc.reason})
    return good, errors


@requires("ingest")
async def post_events(request: Request) -> Response:
    svc = service(request)
    limits = svc.config.server
    body = await read_body(request, limits.max_body_bytes, limits.body_timeout_seconds)
    records = split_records(body, header(request, "content-type"))
    if len(records) > limits.max_events_per_request:
        raise ApiError(413, f"{len(records)} events in one request; the limit is {limits.max_events_per_request}")
    good, errors = validate(records, svc, request.state.token)
    receipts = await svc.seal([item for _, item in good]) if good else []
    count_outcome(svc, receipts, errors)
    if errors:
        note_rejections(svc, request, errors)
    body = answer(svc, good, receipts, errors)
    status = status_for(good, errors)
    if status >= 400:
        body = {"error": f"all {len(errors)} records were rejected: {errors[0]['reason']}", "status": status,
                **body}
    return json_response(body, status)


def count_outcome(svc: Service, receipts, errors: list[dict]) -> None:
    fresh: dict[str, int] = {}
    for receipt in receipts:
        fresh[receipt.log] = fresh.get(receipt.log, 0) + 1
    for log, count in fresh.items():
        svc.metrics.accepted.labels(log=log).inc(count)
    for error in errors:
        svc.metrics.rejected.labels(reason="scope" if error["field"] == "log" else "invalid").inc()


def answer(svc: Service, good, receipts, errors) -> dict[str, Any]:
    logs = {r.log for r in receipts if r.index is not None}  # scale-out: queued on the bus, not sealed yet
    return {
        "accepted": len(receipts), "rejected": len(errors),
        "receipts": [{"position": position, "log": r.log, "index": r.index, "leaf_hash": r.leaf_hash,
                      "id": r.id} for (position, _), r in zip(good, receipts, strict=True)],
        "errors": errors,
        "checkpoints": {log: svc.trail.sealer.heads.get(log) or svc.trail.checkpoint(log) for log in sorted(logs)},
    }


def status_for(good, errors) -> int:
    if not errors:
        return 200
    if good:
        return 207
    if all(e["field"] == "log" for e in errors):
        return 403
    return 422


def note_rejections(svc: Service, request: Request, errors: list[dict]) -> None:
    """Record refused records in the meta log (not waited for: the answer already says why)."""
    from trailseal.event import from_dict

    token = request.state.token
    event = {
        "log": "trailseal", "time": svc.trail.clock(), "category": "system",
        "action": "trailseal.ingest.rejected", "outcome": "failure", "severity": "low",
        "reason": errors[0]["reason"][:500],
        "actor": {"id": f"token:{token.id}" if token else "anonymous", "type": "service"},
        "source": {"component": "trailseal-api", "kind": "trailseal", "format": "trailseal"},
        "attributes": {"rejected": len(errors), "first_errors": errors[:5]},
    }
    try:
        svc.trail.sealer.submit([from_dict(event, svc.trail.clock())])
    except Exception:  # noqa: BLE001 - overload: the metric above still counts it
        svc.metrics.rejected.labels(reason="meta_log_overloaded").inc()


routes = [Route("/v1/events", post_events, methods=["POST"])]

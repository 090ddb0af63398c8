"""HTTP receivers that stock agents speak: OTLP/HTTP logs, the Kubernetes audit webhook, the
Elasticsearch ``_bulk`` API and Splunk HEC. Each answers only after the events are durably sealed,
in the dialect its clients expect (OTLP partial success, ES item statuses, HEC codes).

Every route needs an ``ingest`` token, presented as ``Authorization: Bearer <token>``, or as
``Splunk <token>`` (HEC), ``Basic base64(user:<token>)`` or ``ApiKey base64(id:<token>)`` (ES
shippers). Query parameters on every ingest route: ``log`` (which log; default the token's only log,
else ``default``); on ES and HEC also ``format`` and ``component``. See docs/receivers.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal import formats
from trailseal.api.auth import Token
from trailseal.api.common import ApiError, Service, error_response, header, json_response, service
from trailseal.api.ingest import read_body
from trailseal.event import LOG_PATTERN
from trailseal.formats import FormatError, k8s_audit, otlp
from trailseal.receivers import bulk, hec
from trailseal.receivers.documents import GENERIC, Origin, document_events
from trailseal.receivers.intake import (
    Rejection,
    count,
    meta_item,
    per_log,
    reason_of,
    rejection_event,
)
from trailseal.receivers.records import prepare_records
from trailseal.receivers.settings import receivers_config, sourcetype_format
from trailseal.store.base import Receipt

OTLP_MEDIA = ("application/x-protobuf", "application/protobuf", "application/json")
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 408: 4, 413: 8, 415: 3, 429: 8, 503: 14}
_LOG_RE = re.compile(LOG_PATTERN)
Renderer = Callable[[Request, ApiError], Response]


# -- who may send ---------------------------------------------------------------------------------


def presented_secret(request: Request) -> tuple[str | None, bool]:
    """(the token in the Authorization header, whether a header was there at all)."""
    presented = header(request, "authorization")
    scheme, _, value = presented.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme in ("bearer", "splunk") and value:
        return value, True
    if scheme in ("basic", "apikey") and value:
        return _from_pair(value, scheme), True
    return None, bool(presented)


def _from_pair(value: str, scheme: str) -> str | None:
    """The secret half of base64(user:secret) (Basic) or base64(id:secret) (ApiKey; a bare key too)."""
    try:
        pair = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return value if scheme == "apikey" else None
    user, sep, secret = pair.partition(":")
    return (secret or None) if sep else (value if scheme == "apikey" else None)


def authorize(request: Request, svc: Service) -> Token:
    """The sender's ingest token; 401, 403 or 429 (with ``hec`` code for Splunk clients) otherwise."""
    secret, had_header = presented_secret(request)
    challenge = {"WWW-Authenticate": 'Bearer realm="trailseal", Basic realm="trailseal"'}
    if secret is None:
        reason = (
            "unsupported Authorization header: use Bearer, Splunk, Basic or ApiKey"
            if had_header
            else "missing token: send 'Authorization: Bearer <token>' (or Splunk/Basic/ApiKey)"
        )
        raise ApiError(401, reason, challenge, hec=3 if had_header else 2)
    token = svc.tokens.lookup(secret)
    if token is None or token.revoked:
        raise ApiError(401, "unknown or revoked token", challenge, hec=4)
    if not token.allows("ingest"):
        raise ApiError(403, f"role {token.role!r} may not ingest (needs role ingest or admin)", hec=4)
    wait = svc.limiter.take(token.id)
    if wait:
        svc.metrics.rejected.labels(reason="rate_limited").inc()
        raise ApiError(
            429, "rate limit exceeded for this token", {"Retry-After": f"{max(1, round(wait))}"}, hec=9
        )
    return token


def receiver(render: Renderer, public: bool = False) -> Callable:
    """Authenticate (unless public), run the endpoint, and answer every ApiError in the receiver's dialect."""

    def decorate(endpoint: Callable[[Request], Awaitable[Response]]):
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            try:
                request.state.token = None if public else authorize(request, service(request))
                return await endpoint(request)
            except ApiError as exc:
                return render(request, exc)

        guarded.permission = "public" if public else "ingest"  # type: ignore[attr-defined]
        return guarded

    return decorate


# -- sealing what a receiver parsed ---------------------------------------------------------------


@dataclass
class Outcome:
    """What became of a request's records: receipts and rejections, by record position."""

    receipts: list[tuple[int, Receipt]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def target_log(request: Request) -> str | None:
    """The ``log`` query parameter, else the token's only log, else None (events keep theirs or default)."""
    wanted = request.query_params.get("log")
    if wanted is not None:
        if not _LOG_RE.match(wanted):
            raise ApiError(400, "log must be 1-63 of a-z 0-9 . _ - starting with a letter or digit")
        return wanted
    token = request.state.token
    return token.logs[0] if token is not None and len(token.logs) == 1 else None


async def seal_records(
    request: Request,
    receiver_name: str,
    events: list[dict[str, Any]],
    owners: list[int],
    rejections: list[Rejection],
) -> Outcome:
    """Validate and seal parsed events (owners[i] = the record event i came from), with a note of the
    refused ones in the meta log in the same commit, so the answer comes after both are durable."""
    svc, token = service(request), request.state.token
    options = {"log": target_log(request), "logs": list(token.logs) if token is not None and token.logs else None}
    good, bad = await asyncio.to_thread(prepare_records, svc.trail, "event", options, events, svc.trail.clock())
    items = [item for _, item in good]
    refused = rejections + [Rejection(owners[position], reason, field) for position, reason, field in bad]
    note = rejection_note(svc, request, receiver_name, refused) if refused else None
    receipts = await svc.seal(items + ([note] if note else [])) if items or note else []
    count(svc.metrics, per_log(items), refused, receiver_name)
    return Outcome([(owners[p], r) for (p, _), r in zip(good, receipts, strict=False)], refused)


def rejection_note(svc: Service, request: Request, receiver_name: str, rejections: list[Rejection]):
    """The meta-log record of refused records: who sent them, where, why (never their content)."""
    token = request.state.token
    actor = {"id": f"token:{token.id}" if token else "anonymous", "type": "service"}
    client = request.client.host if request.client else None
    now = svc.trail.clock()
    return meta_item(
        svc.trail.protection,
        rejection_event(receiver_name, rejections, actor, now, path=request.url.path[:200], client=client),
        now,
    )


async def body_of(request: Request) -> bytes:
    limits = service(request).config.server
    return await read_body(request, limits.max_body_bytes, limits.body_timeout_seconds)


def check_count(request: Request, records: int) -> None:
    limit = service(request).config.server.max_events_per_request
    if records > limit:
        raise ApiError(413, f"{records} records in one request; the limit is {limit}")


def kept_positions(total: int, rejected: list[tuple[int, str]]) -> list[int]:
    """Positions of the records a batch parser kept (it returns events in order, minus the rejected)."""
    dropped = {index for index, _ in rejected}
    return [i for i in range(total) if i not in dropped]


def media_type(request: Request) -> str:
    return header(request, "content-type").split(";", 1)[0].strip().lower()


# -- OTLP/HTTP logs -------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def status_proto(code: int, message: str) -> bytes:
    """A google.rpc.Status message (code = 1, message = 2), encoded by hand."""
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def otlp_json(request: Request) -> bool:
    return media_type(request) == "application/json"


def render_otlp(request: Request, exc: ApiError) -> Response:
    """Failures as a Status in the request's encoding, as OTLP/HTTP requires."""
    code = GRPC_CODES.get(exc.status, 13)
    headers = dict(exc.headers)
    if otlp_json(request):
        return json_response({"code": code, "message": exc.reason}, exc.status, headers)
    return Response(status_proto(code, exc.reason), exc.status, headers, media_type="application/x-protobuf")


def otlp_answer(request: Request, rejected: int, message: str) -> Response:
    """ExportLogsServiceResponse, with partial_success when records were rejected."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb

    if otlp_json(request):
        body = (
            {"partialSuccess": {"rejectedLogRecords": rejected, "errorMessage": message}} if rejected else {}
        )
        return json_response(body)
    reply = pb.ExportLogsServiceResponse()
    if rejected:
        reply.partial_success.rejected_log_records = rejected
        reply.partial_success.error_message = message
    return Response(reply.SerializeToString(), media_type="application/x-protobuf")


def summary(rejections: list[Rejection], noun: str) -> str:
    """'2 log records rejected; record 3: reason; record 7: reason'."""
    firsts = "; ".join(f"{noun} {r.position}: {r.text}" for r in rejections[:5])
    return f"{len(rejections)} {noun}s rejected; {firsts}"[:2000]


@receiver(render_otlp)
async def otlp_logs(request: Request) -> Response:
    """POST /v1/logs (OTLP/HTTP, protobuf or JSON, gzip allowed)."""
    media = media_type(request)
    if media not in OTLP_MEDIA:
        raise ApiError(
            415, f"Content-Type {media!r} is not OTLP: use application/x-protobuf or application/json"
        )
    body = await body_of(request)
    try:
        events, rejected = otlp.parse_request(body, media)
    except FormatError as exc:
        raise ApiError(400, exc.reason) from None
    check_count(request, len(events) + len(rejected))
    rejections = [Rejection(i, reason) for i, reason in rejected]
    outcome = await seal_records(
        request, "otlp", events, kept_positions(len(events) + len(rejected), rejected), rejections
    )
    failed = sorted(outcome.rejections, key=lambda r: r.position or 0)
    return otlp_answer(request, len(failed), summary(failed, "log record") if failed else "")


# -- Kubernetes audit webhook ---------------------------------------------------------------------


def render_json(request: Request, exc: ApiError) -> Response:
    extra = {k: v for k, v in exc.extra.items() if k != "hec"}
    return error_response(exc.status, exc.reason, exc.headers, **extra)


@receiver(render_json)
async def k8s_audit_webhook(request: Request) -> Response:
    """POST /v1/k8s/audit: an audit.k8s.io/v1 (or v1beta1) EventList from kube-apiserver."""
    if media_type(request) not in ("application/json", ""):
        raise ApiError(415, "the audit webhook sends application/json")
    body = await body_of(request)
    try:
        events, rejected = k8s_audit.parse_batch(body, component=request.query_params.get("component"))
    except FormatError as exc:
        raise ApiError(400, exc.reason) from None
    total = len(events) + len(rejected)
    check_count(request, total)
    outcome = await seal_records(
        request,
        "k8s_audit",
        events,
        kept_positions(total, rejected),
        [Rejection(i, reason) for i, reason in rejected],
    )
    errors = [r.as_error() for r in sorted(outcome.rejections, key=lambda r: r.position or 0)]
    status = 200 if not errors else 207 if outcome.receipts else 422
    return json_response(
        {"accepted": len(outcome.receipts), "rejected": len(errors), "errors": errors}, status
    )


# -- documents (ES and HEC) -----------------------------------------------------------------------


def document_format(request: Request, default: str) -> str:
    """The format for documents that are not trailseal events: ?format=, else the configured default."""
    name = request.query_params.get("format") or default
    if name != GENERIC and name not in formats.NAMES:
        raise ApiError(400, f"unknown format {name!r}; use generic or one of {', '.join(formats.NAMES)}")
    return name


def format_context(request: Request, fmt: str) -> dict[str, Any]:
    """ctx for the format: the component override and, for ``mapping``, the configured mapping."""
    ctx: dict[str, Any] = {}
    if request.query_params.get("component"):
        ctx["component"] = request.query_params["component"][:1024]
    if fmt == "mapping":
        ctx["mapping"] = configured_mapping(service(request))
    return ctx


def configured_mapping(svc: Service) -> Any:
    """The compiled mapping of ``receivers.mapping_file`` (relative to the data dir), loaded once."""
    from trailseal.formats.mapping import load_mapping

    if "receivers.mapping" not in svc.extras:
        path = receivers_config(svc.config).mapping_file
        if not path:
            raise ApiError(400, "format 'mapping' needs receivers.mapping_file in trailseal.toml")
        svc.extras["receivers.mapping"] = load_mapping((svc.trail.directory / path).read_text("utf-8"))
    return svc.extras["receivers.mapping"]


def map_documents(
    docs: list[tuple[int, Any, bytes, Origin, str]], ctx: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int], list[Rejection]]:
    """(events, owner position of each, rejections) for (position, doc, raw, origin, format) tuples."""
    events: list[dict[str, Any]] = []
    owners: list[int] = []
    rejections: list[Rejection] = []
    for position, doc, raw, origin, fmt in docs:
        try:
            mapped = document_events(doc, raw, origin, fmt, ctx)
        except Exception as exc:  # noqa: BLE001 - see reason_of
            rejections.append(Rejection(position, reason_of(exc)))
            continue
        if not mapped:
            rejections.append(Rejection(position, "the document holds no events"))
        events.extend(mapped)
        owners.extend([position] * len(mapped))
    return events, owners, rejections


# -- Elasticsearch _bulk --------------------------------------------------------------------------

ES_TYPES = {
    400: "illegal_argument_exception",
    401: "security_exception",
    403: "security_exception",
    408: "timeout_exception",
    413: "content_too_long_exception",
    415: "media_type_header_exception",
    429: "es_rejected_execution_exception",
}


def render_es(request: Request, exc: ApiError) -> Response:
    """Errors as Elasticsearch errors; overload is 429 (what every ES shipper retries)."""
    status = 429 if exc.status == 503 else exc.status
    kind = exc.extra.get("es_type") or ES_TYPES.get(status, "exception")
    headers = {**exc.headers, **bulk.PRODUCT_HEADERS}
    if status == 429:
        headers.setdefault("Retry-After", "1")
    return json_response(bulk.es_error(status, kind, exc.reason), status, headers)


def es_json(body: dict[str, Any], status: int = 200) -> Response:
    return json_response(body, status, dict(bulk.PRODUCT_HEADERS))


@receiver(render_es, public=True)
async def es_root(request: Request) -> Response:
    """GET|HEAD /: the version handshake."""
    return es_json(bulk.info(receivers_config(service(request).config).es_version))


@receiver(render_es, public=True)
async def es_license(request: Request) -> Response:
    return es_json(bulk.license_info())


@receiver(render_es, public=True)
async def es_xpack(request: Request) -> Response:
    return es_json(bulk.xpack_info())


@receiver(render_es, public=True)
async def es_health(request: Request) -> Response:
    return es_json(bulk.cluster_health())


@receiver(render_es)
async def es_setup(request: Request) -> Response:
    """Templates and ILM policies shippers install: reads say none exists, writes are acknowledged and
    ignored (trailseal keeps no indices; they change nothing that is sealed)."""
    if request.method in ("GET", "HEAD"):
        return es_json(
            bulk.es_error(
                404, "resource_not_found_exception", f"{request.url.path[:200]} is not stored by trailseal"
            ),
            404,
        )
    return es_json({"acknowledged": True})


@receiver(render_es)
async def es_bulk(request: Request) -> Response:
    """POST|PUT /_bulk and /{index}/_bulk."""
    started = time.perf_counter()
    body = await body_of(request)
    try:
        items = bulk.parse_bulk(body, request.path_params.get("index"))
    except bulk.BulkError as exc:
        raise ApiError(400, exc.reason, es_type=exc.kind) from None
    check_count(request, len(items))
    fmt = document_format(request, receivers_config(service(request).config).es_format)
    docs = [
        (n, item.doc, item.raw, es_origin(item), fmt) for n, item in enumerate(items) if item.error is None
    ]
    events, owners, rejections = map_documents(docs, format_context(request, fmt))
    refused = [Rejection(n, item.error[2]) for n, item in enumerate(items) if item.error is not None]
    outcome = await seal_records(request, "elasticsearch", events, owners, refused + rejections)
    answers = bulk_items(items, outcome)
    return es_json(bulk.bulk_answer(round((time.perf_counter() - started) * 1000), answers))


def es_origin(item: bulk.BulkItem) -> Origin:
    meta = {"es.index": item.index, **({"es.id": item.id} if item.id is not None else {})}
    return Origin("elasticsearch", meta, component=item.index, id=bulk.event_id(item))


def bulk_items(items: list[bulk.BulkItem], outcome: Outcome) -> list[dict[str, Any]]:
    """One answer per bulk item: created with its log index, or the first reason it was refused."""
    sealed: dict[int, Receipt] = {}
    for position, receipt in outcome.receipts:
        sealed.setdefault(position, receipt)
    refused: dict[int, Rejection] = {}
    for rejection in outcome.rejections:
        refused.setdefault(rejection.position, rejection)
    answers = []
    for n, item in enumerate(items):
        if item.error is not None:
            answers.append(bulk.item_failed(item, *item.error))
        elif n in refused:
            answers.append(bulk.item_failed(item, 400, "document_parsing_exception", refused[n].text))
        else:
            answers.append(bulk.item_created(item, sealed[n].id, sealed[n].index))
    return answers


# -- Splunk HEC -----------------------------------------------------------------------------------


def render_hec(request: Request, exc: ApiError) -> Response:
    """Errors with Splunk's codes (auth 2/3/4, busy 9, bad data 6)."""
    code = exc.extra.get("hec") or (9 if exc.status in (429, 503) else 6)
    status, body = hec.answer(code, reason=exc.reason)
    if exc.status == 413:
        status = 413
    headers = dict(exc.headers)
    if code == 9:
        headers.setdefault("Retry-After", "1")
    return json_response(body, status, headers)


@receiver(render_hec, public=True)
async def hec_health(request: Request) -> Response:
    sealer = service(request).trail.sealer
    status, body = hec.answer(18 if sealer.queue_depth >= sealer.max_queue_events else 17)
    return json_response(body, status)


def hec_format(request: Request, sourcetype: Any) -> str:
    """The format of one HEC event: ?format=, else its sourcetype's, else the configured default."""
    return document_format(request, sourcetype_format(receivers_config(service(request).config), sourcetype))


@receiver(render_hec)
async def hec_event(request: Request) -> Response:
    """POST /services/collector[/event[/1.0]]: concatenated JSON envelopes."""
    body = await body_of(request)
    envelopes = hec.parse_events(body)
    if not envelopes:
        raise ApiError(400, "the request has no events", hec=5)
    check_count(request, len(envelopes))
    docs = [
        (
            e.position,
            e.envelope["event"],
            e.raw,
            hec_origin(e.envelope),
            hec_format(request, e.envelope.get("sourcetype")),
        )
        for e in envelopes
        if e.error is None and e.envelope is not None
    ]
    ctx = format_context(request, "mapping" if any(d[4] == "mapping" for d in docs) else GENERIC)
    events, owners, rejections = map_documents(docs, ctx)
    codes = {e.position: e.error[0] for e in envelopes if e.error is not None}
    refused = [Rejection(e.position, e.error[1]) for e in envelopes if e.error is not None]
    outcome = await seal_records(request, "splunk_hec", events, owners, refused + rejections)
    return hec_reply(outcome, codes)


def hec_origin(envelope: dict[str, Any], query: dict[str, str] | None = None) -> Origin:
    """Origin of a HEC event: its metadata (envelope, else query string), time and host."""
    fields = {**(query or {}), **{k: v for k, v in envelope.items() if k != "event"}}
    return Origin(
        "splunk_hec",
        hec.metadata(fields),
        time=fields.get("time"),
        host=fields.get("host"),
        component=fields.get("source"),
    )


def hec_reply(outcome: Outcome, codes: dict[int, int] | None = None) -> Response:
    """Success, or the first refused event with its Splunk code (default 6) and our reason."""
    if not outcome.rejections:
        status, body = hec.answer(0)
        return json_response(body, status)
    first = min(outcome.rejections, key=lambda r: r.position or 0)
    code = (codes or {}).get(first.position, 6)
    status, body = hec.answer(
        code,
        **{
            "invalid-event-number": first.position,
            "reason": first.text,
            "accepted": len({p for p, _ in outcome.receipts}),
            "rejected": len({r.position for r in outcome.rejections}),
        },
    )
    return json_response(body, status)


@receiver(render_hec)
async def hec_raw(request: Request) -> Response:
    """POST /services/collector/raw[/1.0]: one event per line, metadata in the query string."""
    body = await body_of(request)
    lines = hec.raw_lines(body)
    if not lines:
        raise ApiError(400, "the request has no events", hec=5)
    check_count(request, len(lines))
    query = {k: v for k, v in request.query_params.items() if k in ("host", "time", *hec.META_KEYS)}
    origin = hec_origin({}, query)
    fmt = hec_format(request, query.get("sourcetype"))
    docs = [(n, line.decode("utf-8", "backslashreplace"), line, origin, fmt) for n, line in lines]
    events, owners, rejections = map_documents(docs, format_context(request, fmt))
    return hec_reply(await seal_records(request, "splunk_hec", events, owners, rejections))


# -- routes ---------------------------------------------------------------------------------------

SETUP_PATHS = (
    "/_index_template/{name}",
    "/_template/{name}",
    "/_component_template/{name}",
    "/_ilm/policy/{name}",
)
es_routes = [
    Route("/", es_root, methods=["GET", "HEAD"]),
    Route("/_license", es_license, methods=["GET"]),
    Route("/_xpack", es_xpack, methods=["GET"]),
    Route("/_cluster/health", es_health, methods=["GET"]),
    Route("/_bulk", es_bulk, methods=["POST", "PUT"]),
    Route("/{index}/_bulk", es_bulk, methods=["POST", "PUT"]),
    *(Route(path, es_setup, methods=["GET", "HEAD", "PUT", "POST"]) for path in SETUP_PATHS),
]
routes = [
    Route("/v1/logs", otlp_logs, methods=["POST"]),
    Route("/v1/k8s/audit", k8s_audit_webhook, methods=["POST"]),
    Route("/services/collector/health", hec_health, methods=["GET"]),
    Route("/services/collector/health/1.0", hec_health, methods=["GET"]),
    *(
        Route(path, hec_event, methods=["POST"])
        for path in ("/services/collector", "/services/collector/event", "/services/collector/event/1.0")
    ),
    *(
        Route(path, hec_raw, methods=["POST"])
        for path in ("/services/collector/raw", "/services/collector/raw/1.0")
    ),
    *es_routes,
    Route("/es", es_root, methods=["GET", "HEAD"]),
    *(
        Route("/es" + route.path, route.endpoint, methods=sorted(route.methods - {"HEAD"}))
        for route in es_routes
    ),
]

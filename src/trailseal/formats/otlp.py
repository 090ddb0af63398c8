"""OpenTelemetry logs: an OTLP ``ExportLogsServiceRequest`` as JSON or protobuf; each LogRecord -> one event.

Explicit attributes win: ``trailseal.{id,log,category,action,outcome,reason,severity}``,
``trailseal.actor.{id,name,type,session,roles}`` and ``trailseal.target.{type,id,name}``.
Otherwise OTel semantic conventions are mapped: ``event.name`` (or the record's eventName) ->
action (lower-cased, dotted) and a category implied by its prefix (user.login -> authentication);
``http.request.method`` -> ``http.request`` / data_access; ``db.*`` -> ``db.query`` (data_access, or
data_change for INSERT/UPDATE/DELETE/MERGE/UPSERT). ``user.id``/``enduser.id`` -> actor (name
``user.name``, roles ``user.roles``, session ``session.id``), ``client.address`` -> actor.ip,
``user_agent.original``; ``http.request.method``, ``url.path``, ``http.response.status_code``,
``http.response.body.size`` -> request; traceId/spanId -> request.trace_id/span_id (lower-case hex);
``db.collection.name`` -> target table. Outcome: ``event.outcome``, else HTTP status (401/403
failure, 5xx error), else ``error.type`` -> error, else unknown. Severity number: TRACE-INFO info,
WARN low, ERROR medium, FATAL critical. Resource ``service.name`` -> source.component, ``host.name``
-> source.host; other resource and scope attributes go to ``otel.resource`` / ``otel.scope``.
Unmapped record attributes stay in ``attributes``; a string body is ``attributes.message``.
``log.record.uid`` gives id ``otel:<uid>``; otherwise no id.

``parse_request(body, content_type)`` returns ``(events, rejected)`` with rejected as
``[(record index, reason)]`` over the request's records in order, for an OTLP partial-success answer.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import msgspec
from google.protobuf.message import DecodeError
from msgspec import UNSET, UnsetType

from trailseal.event import (
    ACTION_PATTERN,
    CATEGORIES,
    ID_PATTERN,
    LOG_PATTERN,
    MAX_DEPTH,
    MAX_SAFE_INT,
    OUTCOMES,
    SEVERITIES,
)
from trailseal.formats import FormatError
from trailseal.formats._common import (
    all_or_error,
    as_is,
    bounded,
    category_for_action,
    from_unix_nanos,
    http_outcome,
    is_ip,
    json_safe,
    load_json,
    sha256_hex,
    short,
    source,
)

FORMAT = "otlp"
ACTOR_TYPES = ("user", "service", "anonymous", "system")
DB_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE")
DB_KEYS = (
    "db.system",
    "db.system.name",
    "db.query.text",
    "db.statement",
    "db.operation.name",
    "db.operation",
)
_ACTION_RE = re.compile(ACTION_PATTERN)
_ID_RE = re.compile(ID_PATTERN)
_LOG_RE = re.compile(LOG_PATTERN)
_HEX_RE = re.compile(r"[0-9a-f]+\Z")
_NOT_SEGMENT = re.compile(r"[^a-z0-9_*-]+")
Record = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


def split(data: bytes) -> list[bytes]:
    """An OTLP request is one record: the whole body."""
    return [data] if data.strip() else []


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """All log records of a request; FormatError if any record cannot be mapped."""
    return all_or_error(parse_batch(raw, **ctx), "log record")


def parse_batch(raw: bytes, **ctx: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """parse_request with the content type from ctx, or JSON if the body starts with '{', else protobuf."""
    content_type = ctx.pop("content_type", None) or (
        "application/json" if raw.lstrip()[:1] == b"{" else "application/x-protobuf"
    )
    return parse_request(raw, content_type, **ctx)


def parse_request(
    body: bytes, content_type: str = "application/json", **ctx: Any
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(events, [(record index, reason)]) for an OTLP/HTTP logs body; FormatError if it is unreadable."""
    media = _MEDIA.get(content_type) or content_type.split(";", 1)[0].strip().lower()
    typed = False
    if media == "application/json":
        records = _typed_records(body)
        if records is None:
            records = list(_json_records(load_json(body)))
        else:
            typed = True
    elif media in ("application/x-protobuf", "application/protobuf"):
        records = list(_protobuf_records(body))
    else:
        raise FormatError(
            f"unsupported content type {content_type!r}; expected application/json or application/x-protobuf"
        )
    return _events(records, sha256_hex(body), ctx, typed)


_MEDIA = {"application/json": "application/json", "application/x-protobuf": "application/x-protobuf"}


def _events(
    records: list[Record], digest: str, ctx: dict[str, Any], typed: bool
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """collect() over the records, with what a resource or a scope gives its records worked out once
    for each (records of one resource or scope share its dict)."""
    events: list[dict[str, Any]] = []
    rejected: list[tuple[int, str]] = []
    resource = scope = origin = scope_info = None
    for index, (resource_attributes, scope_doc, record) in enumerate(records):
        if resource_attributes is not resource:
            resource, origin = resource_attributes, _Origin(resource_attributes, ctx)
        if scope_doc is not scope:
            scope, scope_info = scope_doc, _scope_info(scope_doc)
        try:
            events.append(_event(origin, scope_info, record, digest, typed))
        except FormatError as exc:
            rejected.append((index, exc.reason))
    return events, rejected


# --- decoding: both encodings yield (resource attributes, scope, normalized record) -------------


def _json_records(doc: Any) -> Iterator[Record]:
    """Records of an OTLP/JSON request (lowerCamelCase keys; snake_case accepted)."""
    if not isinstance(doc, dict):
        raise FormatError("OTLP/JSON request must be an object")
    for resource_logs in _list(doc, "resourceLogs", "resource_logs"):
        resource = _dict(resource_logs, "resource")
        resource_attributes = _json_kvlist(resource.get("attributes"))
        for scope_logs in _list(resource_logs, "scopeLogs", "scope_logs"):
            scope_doc = _dict(scope_logs, "scope")
            scope = {
                "name": scope_doc.get("name"),
                "version": scope_doc.get("version"),
                "attributes": _json_kvlist(scope_doc.get("attributes")),
            }
            for record in _list(scope_logs, "logRecords", "log_records"):
                yield resource_attributes, scope, _json_record(record)


def _json_record(record: Any) -> dict[str, Any]:
    """A JSON LogRecord normalized; malformed fields are kept as an 'error' for per-record rejection."""
    if not isinstance(record, dict):
        return {"error": "log record must be an object"}
    try:
        return {
            "time_ns": _int(_get(record, "timeUnixNano", "time_unix_nano")),
            "observed_ns": _int(_get(record, "observedTimeUnixNano", "observed_time_unix_nano")),
            "severity_number": _int(_get(record, "severityNumber", "severity_number")),
            "severity_text": _get(record, "severityText", "severity_text"),
            "body": _json_any(record["body"]) if record.get("body") is not None else None,
            "attributes": _json_kvlist(record.get("attributes")),
            "trace_id": _get(record, "traceId", "trace_id") or "",
            "span_id": _get(record, "spanId", "span_id") or "",
            "event_name": _get(record, "eventName", "event_name"),
        }
    except FormatError as exc:
        return {"error": exc.reason}


def _json_any(value: Any) -> Any:
    """An OTLP/JSON AnyValue as a plain value."""
    if not isinstance(value, dict):
        raise FormatError("AnyValue must be an object")
    if "stringValue" in value:
        return _typed(value["stringValue"], str)
    if "boolValue" in value:
        return _typed(value["boolValue"], bool)
    if "intValue" in value:
        return _int(value["intValue"])
    if "doubleValue" in value:
        number = value["doubleValue"]
        return (
            _double(number)
            if isinstance(number, int | float) and not isinstance(number, bool)
            else str(number)
        )
    if "arrayValue" in value:
        return [_json_any(v) for v in _list(_typed(value["arrayValue"], dict), "values")]
    if "kvlistValue" in value:
        return _json_kvlist(_typed(value["kvlistValue"], dict).get("values"))
    if "bytesValue" in value:
        return _typed(value["bytesValue"], str)
    return None


def _json_kvlist(items: Any) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise FormatError("attributes must be a list of {key, value}")
    result = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise FormatError("attribute must be an object with a string key")
        result[item["key"]] = _json_any(item["value"]) if item.get("value") is not None else None
    return result


# Typed decoding: the common, well-formed request decoded straight into Structs. Anything the
# generic path would treat specially (a wrong type, a null where a value belongs, a bad integer)
# fails here, and the request is read again by the generic path, which says what is wrong. So does
# anything json_safe would change (an integer past 2**53, nesting past MAX_DEPTH): the values of a
# typed request are kept without the json_safe walk. The Structs hold no cycles, so gc=False.
_DEEPEST_PLACE = 4  # json_safe depth of a scope attribute's value: attributes > otel.scope > attributes


class _AnyValue(msgspec.Struct, gc=False):
    stringValue: str | UnsetType = UNSET
    boolValue: bool | UnsetType = UNSET
    intValue: int | str | UnsetType = UNSET
    doubleValue: int | float | UnsetType = UNSET
    arrayValue: _ArrayValue | UnsetType = UNSET
    kvlistValue: _KvList | UnsetType = UNSET
    bytesValue: str | UnsetType = UNSET


class _KeyValue(msgspec.Struct, gc=False):
    key: str
    value: _AnyValue | None = None


class _ArrayValue(msgspec.Struct, gc=False):
    values: list[_AnyValue] | None = None


class _KvList(msgspec.Struct, gc=False):
    values: list[_KeyValue] | None = None


class _LogRecord(msgspec.Struct, gc=False):
    timeUnixNano: int | str | None = None
    time_unix_nano: int | str | None = None
    observedTimeUnixNano: int | str | None = None
    observed_time_unix_nano: int | str | None = None
    severityNumber: int | str | None = None
    severity_number: int | str | None = None
    severityText: str | None = None
    severity_text: str | None = None
    body: _AnyValue | None = None
    attributes: list[_KeyValue] | None = None
    traceId: str | None = None
    trace_id: str | None = None
    spanId: str | None = None
    span_id: str | None = None
    eventName: str | None = None
    event_name: str | None = None


class _Scope(msgspec.Struct, gc=False):
    name: str | None = None
    version: str | None = None
    attributes: list[_KeyValue] | None = None


class _ScopeLogs(msgspec.Struct, gc=False):
    scope: _Scope | None = None
    logRecords: list[_LogRecord] | None = None
    log_records: list[_LogRecord] | None = None


class _Resource(msgspec.Struct, gc=False):
    attributes: list[_KeyValue] | None = None


class _ResourceLogs(msgspec.Struct, gc=False):
    resource: _Resource | None = None
    scopeLogs: list[_ScopeLogs] | None = None
    scope_logs: list[_ScopeLogs] | None = None


class _Request(msgspec.Struct, gc=False):
    resourceLogs: list[_ResourceLogs] | None = None
    resource_logs: list[_ResourceLogs] | None = None


_request_decoder = msgspec.json.Decoder(_Request)


def _typed_records(body: bytes) -> list[Record] | None:
    """The records of a well-formed OTLP/JSON request, or None to leave it to the generic path."""
    try:
        request = _request_decoder.decode(body)
        records = []
        for resource_logs in _either(request.resourceLogs, request.resource_logs):
            resource = resource_logs.resource
            resource_attributes = _typed_kvlist(resource.attributes, _DEEPEST_PLACE) if resource else {}
            for scope_logs in _either(resource_logs.scopeLogs, resource_logs.scope_logs):
                scope_doc = scope_logs.scope
                scope = (
                    {
                        "name": scope_doc.name,
                        "version": scope_doc.version,
                        "attributes": _typed_kvlist(scope_doc.attributes, _DEEPEST_PLACE),
                    }
                    if scope_doc
                    else {"name": None, "version": None, "attributes": {}}
                )
                for record in _either(scope_logs.logRecords, scope_logs.log_records):
                    records.append((resource_attributes, scope, _typed_record(record)))
        return records
    except (msgspec.DecodeError, FormatError, RecursionError, UnicodeDecodeError):
        return None


def _either(camel: Any, snake: Any) -> Any:
    value = snake if camel is None else camel
    return () if value is None else value


def _typed_record(record: _LogRecord) -> dict[str, Any]:
    """A decoded LogRecord normalized (a lowerCamelCase field wins over its snake_case twin)."""
    r, body = record, record.body
    return {
        "time_ns": _int(r.timeUnixNano if r.timeUnixNano is not None else r.time_unix_nano),
        "observed_ns": _int(
            r.observedTimeUnixNano if r.observedTimeUnixNano is not None else r.observed_time_unix_nano
        ),
        "severity_number": _int(r.severityNumber if r.severityNumber is not None else r.severity_number),
        "severity_text": r.severityText if r.severityText is not None else r.severity_text,
        "body": (
            None
            if body is None
            else text
            if (text := body.stringValue) is not UNSET
            else _typed_any(body, _DEEPEST_PLACE)
        ),
        "attributes": _typed_kvlist(r.attributes, _DEEPEST_PLACE),
        "trace_id": (r.traceId if r.traceId is not None else r.trace_id) or "",
        "span_id": (r.spanId if r.spanId is not None else r.span_id) or "",
        "event_name": r.eventName if r.eventName is not None else r.event_name,
    }


def _typed_any(value: _AnyValue, depth: int) -> Any:
    """A decoded AnyValue as a plain value (the same precedence as _json_any); FormatError for what
    json_safe would change at that depth."""
    text = value.stringValue
    if text is not UNSET:
        return text
    flag = value.boolValue
    if flag is not UNSET:
        return flag
    number = value.intValue
    if number is not UNSET:
        number = _int(number)
        if not -MAX_SAFE_INT <= number <= MAX_SAFE_INT:
            raise FormatError("integer past 2**53: left to the generic path")
        return number
    number = value.doubleValue
    if number is not UNSET:
        return number if type(number) is float else _double(number)
    array, kvlist = value.arrayValue, value.kvlistValue
    if array is not UNSET or kvlist is not UNSET:
        if depth > MAX_DEPTH - 1:
            raise FormatError("nested too deep: left to the generic path")
        if array is not UNSET:
            depth += 1
            return [
                text if (text := v.stringValue) is not UNSET else _typed_any(v, depth)
                for v in array.values or ()
            ]
        return _typed_kvlist(kvlist.values, depth + 1)
    if value.bytesValue is not UNSET:
        return value.bytesValue
    return None


def _typed_kvlist(items: list[_KeyValue] | None, depth: int) -> dict[str, Any]:
    """Attributes as a dict whose values sit at json_safe depth `depth`."""
    if not items:
        return {}
    attributes = {}
    for item in items:
        value = item.value
        if value is None:
            attributes[item.key] = None
        else:  # a string, the usual value, without the call
            text = value.stringValue
            attributes[item.key] = text if text is not UNSET else _typed_any(value, depth)
    return attributes


def _protobuf_records(body: bytes) -> Iterator[Record]:
    """Records of a protobuf ExportLogsServiceRequest."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    try:
        request = ExportLogsServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise FormatError(f"malformed OTLP protobuf: {exc}") from None
    for resource_logs in request.resource_logs:
        resource_attributes = _proto_kvlist(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            scope = {
                "name": scope_logs.scope.name,
                "version": scope_logs.scope.version,
                "attributes": _proto_kvlist(scope_logs.scope.attributes),
            }
            for record in scope_logs.log_records:
                yield (
                    resource_attributes,
                    scope,
                    {
                        "time_ns": record.time_unix_nano,
                        "observed_ns": record.observed_time_unix_nano,
                        "severity_number": record.severity_number,
                        "severity_text": record.severity_text,
                        "body": _proto_any(record.body) if record.HasField("body") else None,
                        "attributes": _proto_kvlist(record.attributes),
                        "trace_id": record.trace_id.hex(),
                        "span_id": record.span_id.hex(),
                        "event_name": record.event_name,
                    },
                )


_PROTO_SCALARS = frozenset({"string_value", "bool_value", "int_value", "double_value"})


def _proto_any(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in _PROTO_SCALARS else _proto_other(value, kind)


def _proto_other(value: Any, kind: str | None) -> Any:
    """An AnyValue that is not a scalar, given which of its fields is set."""
    if kind == "array_value":
        return [_proto_any(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _proto_kvlist(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def _proto_kvlist(items: Any) -> dict[str, Any]:
    attributes = {}
    for item in items:
        key, value = item.key, item.value
        kind = value.WhichOneof("value")  # a scalar, the usual value, without a call
        attributes[key] = getattr(value, kind) if kind in _PROTO_SCALARS else _proto_other(value, kind)
    return attributes


def _get(doc: dict[str, Any], camel: str, snake: str) -> Any:
    value = doc.get(camel)
    return doc.get(snake) if value is None else value


def _list(doc: Any, *keys: str) -> list[Any]:
    value = None
    for key in keys:
        value = doc.get(key) if isinstance(doc, dict) else None
        if value is not None:
            break
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError(f"{keys[0]} must be a list")
    return value


def _dict(doc: Any, key: str) -> dict[str, Any]:
    value = doc.get(key) if isinstance(doc, dict) else None
    if value is None:
        return {}
    return _typed(value, dict)


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise FormatError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _double(number: int | float) -> float:
    """An OTLP/JSON double; FormatError for an integer too large to be one."""
    try:
        return float(number)
    except OverflowError:
        raise FormatError("doubleValue is out of range for a double") from None


def _int(value: Any) -> int:
    """An OTLP/JSON integer: a number or a decimal string (int64 fields)."""
    kind = type(value)
    if kind is int:
        return value
    if kind is str and len(value) <= 20 and value.removeprefix("-").isdecimal():
        return int(value)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise FormatError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.removeprefix("-").isdecimal() and len(value) <= 20:
        return int(value)
    raise FormatError(f"expected an integer, got {str(value)[:32]!r}")


# --- mapping ------------------------------------------------------------------------------------


class _Origin:
    """What a resource gives each of its records: the source (or why it has none), the service as
    a fallback actor and the remaining resource attributes."""

    __slots__ = ("source", "problem", "service", "rest")

    def __init__(self, resource: dict[str, Any], ctx: dict[str, Any]):
        service, host = _str(resource.get("service.name")), _str(resource.get("host.name"))
        self.service = service or "unknown"
        self.rest = rest = dict(resource)
        rest.pop("service.name", None)
        rest.pop("host.name", None)
        self.source, self.problem = _source_or_problem(ctx, service, host)

    def new_source(self) -> dict[str, str]:
        """A fresh copy of the source (events must not share it); FormatError if it cannot be one."""
        if self.problem is not None:
            raise FormatError(self.problem)
        return dict(self.source)


def _source_or_problem(
    ctx: dict[str, Any], service: str | None, host: str | None
) -> tuple[dict[str, str], str | None]:
    """(source, None), or ({}, why) if the resource's service or host cannot be the source."""
    try:
        return source(ctx, FORMAT, "app", service, host), None
    except FormatError as exc:
        return {}, exc.reason


def _scope_info(scope: dict[str, Any]) -> dict[str, Any]:
    """The scope's name, version and attributes, those that are set (otel.scope)."""
    return {k: v for k, v in scope.items() if v}


def record_event(
    resource: dict[str, Any],
    scope: dict[str, Any],
    record: dict[str, Any],
    digest: str,
    ctx: dict[str, Any],
    safe: Callable[..., Any] = json_safe,
) -> dict[str, Any]:
    """One normalized LogRecord (with its resource and scope) -> one event (safe: json_safe, or as_is
    for the values of a typed request); the record is left as it is."""
    if "error" not in record:
        record = {**record, "attributes": dict(record["attributes"])}
    return _event(_Origin(resource, ctx), _scope_info(scope), record, digest, safe is as_is)


_NO_EXPLICIT: dict[str, Any] = {}  # shared by the records without trailseal.* attributes: only read
# Every record attribute the mapping below reads. A record with none of them (and no trailseal.*
# attribute) is a plain log.record of its service: the lookups for them are skipped.
_MAPPED = frozenset(
    {
        "event.name",
        "event.outcome",
        "error.type",
        "http.request.method",
        "url.path",
        "http.response.status_code",
        "http.response.body.size",
        "user.id",
        "enduser.id",
        "user.name",
        "session.id",
        "user.roles",
        "client.address",
        "user_agent.original",
        "log.record.uid",
        "db.collection.name",
        "db.sql.table",
        *DB_KEYS,
    }
)


def _event(
    origin: _Origin, scope_info: dict[str, Any], record: dict[str, Any], digest: str, typed: bool
) -> dict[str, Any]:
    """record_event on a record of its own (its attributes are consumed); typed: its values need no
    json_safe."""
    if "error" in record:
        raise FormatError(record["error"])
    attributes = record["attributes"]
    explicit = (
        {k: attributes.pop(k) for k in [k for k in attributes if k.startswith("trailseal.")]}
        if "trailseal." in "\0".join(attributes)  # one scan in C for the usual none
        else _NO_EXPLICIT
    )
    mapped = bool(explicit) or not _MAPPED.isdisjoint(attributes)
    action = _action(explicit, attributes, record)
    nanos = record["time_ns"] or record["observed_ns"]
    if not nanos:
        raise FormatError("log record has neither timeUnixNano nor observedTimeUnixNano")
    event: dict[str, Any] = {
        "time": from_unix_nanos(nanos),
        "category": _category(explicit, action, attributes),
        "action": action,
        "outcome": _outcome(explicit, attributes) if mapped else "unknown",
        "actor": _actor(explicit, attributes, origin) if mapped else _service_actor(origin),
        "source": origin.new_source(),
        "raw_hash": digest,
    }
    _optional(event, explicit, attributes, record, mapped)
    _leftovers(attributes, record, origin, scope_info)
    event["attributes"] = attributes if typed else json_safe(attributes, 1)
    return _bounded(event)


def _action(explicit: dict[str, Any], attributes: dict[str, Any], record: dict[str, Any]) -> str:
    """trailseal.action, else event.name, else http.request / db.query / log.record."""
    if "trailseal.action" in explicit:
        return _checked(explicit["trailseal.action"], _ACTION_RE, "trailseal.action")
    name = attributes.pop("event.name", None) or record.get("event_name")
    if isinstance(name, str) and name:
        return _named_action(name)
    if "http.request.method" in attributes:
        return "http.request"
    if not attributes.keys().isdisjoint(DB_KEYS):
        return "db.query"
    return "log.record"


@lru_cache(maxsize=4096)
def _named_action(name: str) -> str:
    """An event.name as an action: lower case, each dot-separated segment cleaned (cached per name)."""
    segments = [_NOT_SEGMENT.sub("_", part) for part in name.lower().split(".")]
    action = ".".join(s.strip("_") for s in segments if s.strip("_"))
    if action and len(action) <= 256:
        return action
    raise FormatError(f"event.name {name[:64]!r} cannot be an action")


def _category(explicit: dict[str, Any], action: str, attributes: dict[str, Any]) -> str:
    if "trailseal.category" in explicit:
        return _choice(explicit["trailseal.category"], CATEGORIES, "trailseal.category")
    if action == "db.query":
        operation = str(attributes.get("db.operation.name") or attributes.get("db.operation") or "").upper()
        return "data_change" if operation.startswith(DB_WRITES) else "data_access"
    return category_for_action(action) or "system"


def _outcome(explicit: dict[str, Any], attributes: dict[str, Any]) -> str:
    """trailseal.outcome, event.outcome, the HTTP status, error.type, else unknown."""
    if "trailseal.outcome" in explicit:
        return _choice(explicit["trailseal.outcome"], OUTCOMES, "trailseal.outcome")
    if attributes.get("event.outcome") in OUTCOMES:
        return attributes.pop("event.outcome")
    status = attributes.get("http.response.status_code")
    if isinstance(status, int) and not isinstance(status, bool):
        return http_outcome(status)
    if attributes.get("error.type"):
        return "error"
    return "unknown"


def _actor(explicit: dict[str, Any], attributes: dict[str, Any], origin: _Origin) -> dict[str, Any]:
    """trailseal.actor.*, else user.id/enduser.id, else anonymous (a request) or the service."""
    pop = attributes.pop
    user_id = explicit.get("trailseal.actor.id") or pop("user.id", None) or pop("enduser.id", None)
    if user_id is not None:
        kind = explicit.get("trailseal.actor.type", "user")
        actor: dict[str, Any] = {
            "id": short(str(user_id), "actor.id"),
            "type": "user" if kind == "user" else _choice(kind, ACTOR_TYPES, "trailseal.actor.type"),
        }
    elif "client.address" in attributes or "http.request.method" in attributes:
        actor = {"id": "anonymous", "type": "anonymous"}
    else:
        actor = _service_actor(origin)
    name = explicit.get("trailseal.actor.name") or pop("user.name", None)
    session = explicit.get("trailseal.actor.session") or pop("session.id", None)
    roles = explicit.get("trailseal.actor.roles") or pop("user.roles", None)
    if name is not None:
        actor["name"] = short(str(name), "actor.name")
    if session is not None:
        actor["session"] = short(str(session), "actor.session")
    if isinstance(roles, list) and roles and all(isinstance(r, str) and len(r) <= 1024 for r in roles):
        actor["roles"] = roles[:256]
    address = attributes.get("client.address")
    if isinstance(address, str) and is_ip(address):
        actor["ip"] = pop("client.address")
    agent = pop("user_agent.original", None)
    if isinstance(agent, str) and agent:
        actor["user_agent"] = agent
    return actor


def _service_actor(origin: _Origin) -> dict[str, Any]:
    return {"id": short(origin.service, "actor.id"), "type": "service"}


def _optional(
    event: dict[str, Any],
    explicit: dict[str, Any],
    attributes: dict[str, Any],
    record: dict[str, Any],
    mapped: bool,
) -> None:
    """id, log, reason, severity, request and target, when the record has them (not mapped: a record
    with none of the attributes for id, request and target)."""
    if mapped:
        if "trailseal.id" in explicit:
            event["id"] = _checked(explicit["trailseal.id"], _ID_RE, "trailseal.id")
        elif isinstance(attributes.get("log.record.uid"), str):
            event["id"] = _checked(f"otel:{attributes.pop('log.record.uid')}", _ID_RE, "log.record.uid")
        if "trailseal.log" in explicit:
            event["log"] = _checked(explicit["trailseal.log"], _LOG_RE, "trailseal.log")
        if "trailseal.reason" in explicit:
            event["reason"] = str(explicit["trailseal.reason"])
    severity = _severity(explicit, record)
    if severity:
        event["severity"] = severity
    request = _request(attributes, record) if mapped else _trace_context({}, record)
    if request:
        event["request"] = request
    target = _target(explicit, attributes) if mapped else None
    if target:
        event["target"] = target


# severityNumber 1-24 -> severity: TRACE, DEBUG and INFO info, WARN low, ERROR medium, FATAL critical
_SEVERITY_OF = (None, *["info"] * 12, *["low"] * 4, *["medium"] * 4, *["critical"] * 4)


def _severity(explicit: dict[str, Any], record: dict[str, Any]) -> str | None:
    if "trailseal.severity" in explicit:
        return _choice(explicit["trailseal.severity"], SEVERITIES, "trailseal.severity")
    number = record["severity_number"]
    if not number:
        return None
    if not 1 <= number <= 24:
        raise FormatError(f"severityNumber {number} is outside 1-24")
    return _SEVERITY_OF[number]


def _request(attributes: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """HTTP method, path, status, bytes and the trace context."""
    request: dict[str, Any] = {}
    method = attributes.get("http.request.method")
    if isinstance(method, str) and 0 < len(method) <= 32:
        request["method"] = attributes.pop("http.request.method")
    path = attributes.get("url.path")
    if isinstance(path, str) and len(path) <= 8192:
        request["path"] = attributes.pop("url.path")
    status = attributes.get("http.response.status_code")
    if isinstance(status, int) and not isinstance(status, bool) and 0 <= status <= 999:
        request["status"] = attributes.pop("http.response.status_code")
    size = attributes.get("http.response.body.size")
    if isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= 2**53:
        request["bytes"] = attributes.pop("http.response.body.size")
    return _trace_context(request, record)


def _trace_context(request: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The request with the record's trace and span id added, those that are set and not all zeros."""
    trace_id, span_id = record["trace_id"], record["span_id"]
    if trace_id and (trace_id := _hex_id(trace_id, 32, "trace_id")):
        request["trace_id"] = trace_id
    if span_id and (span_id := _hex_id(span_id, 16, "span_id")):
        request["span_id"] = span_id
    return request


def _hex_id(value: Any, length: int, name: str) -> str | None:
    """A trace or span id as lower-case hex, None if all zeros; FormatError unless `length` hex digits."""
    try:  # the usual id: a text fromhex takes whole, so hex digits and no spaces
        usual = type(value) is str and len(value) == length and len(bytes.fromhex(value)) * 2 == length
    except ValueError:
        usual = False
    if usual:
        text = value.lower()
    else:
        text = str(value).lower()
        if len(text) != length or not _HEX_RE.match(text):
            raise FormatError(f"{name} must be {length} hex digits, got {str(value)[:40]!r}")
    return text if text.strip("0") else None


def _target(explicit: dict[str, Any], attributes: dict[str, Any]) -> dict[str, str] | None:
    if explicit:
        target = {
            k: str(explicit[f"trailseal.target.{k}"])
            for k in ("type", "id", "name")
            if f"trailseal.target.{k}" in explicit
        }
        if target:
            return target
    table = attributes.get("db.collection.name") or attributes.get("db.sql.table")
    if isinstance(table, str) and table:
        return {"type": "table", "name": table}
    return None


def _leftovers(
    attributes: dict[str, Any], record: dict[str, Any], origin: _Origin, scope_info: dict[str, Any]
) -> None:
    """Add the body, severity text, and the resource and scope remainders to the unmapped attributes."""
    body = record["body"]
    if isinstance(body, str):
        attributes["message"] = body
    elif body is not None:
        attributes["body"] = body
    if record.get("severity_text"):
        attributes["log.severity_text"] = record["severity_text"]
    if origin.rest:
        attributes["otel.resource"] = dict(origin.rest)
    if scope_info:
        attributes["otel.scope"] = dict(scope_info)


def _bounded(event: dict[str, Any]) -> dict[str, Any]:
    """bounded(event), skipped when it has nothing bounded() could refuse: actor id, name and session,
    source and request fields are already within its limits here (short(), _request, _hex_id)."""
    actor = event["actor"]
    if "ip" in actor or "user_agent" in actor or "target" in event or "reason" in event:
        return bounded(event)
    return event


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise FormatError(f"{name} must be one of {', '.join(allowed)}; got {str(value)[:40]!r}")
    return value


def _checked(value: Any, pattern: re.Pattern[str], name: str) -> str:
    if not isinstance(value, str) or not pattern.match(value) or len(value) > 256:
        raise FormatError(f"{name} {str(value)[:64]!r} does not match {pattern.pattern}")
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

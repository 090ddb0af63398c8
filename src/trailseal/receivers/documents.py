"""Documents sent by Elasticsearch and Splunk shippers, turned into event dicts.

A document that is a trailseal event (it has ``category``, ``action``, ``actor`` and ``source``)
passes through and is validated as one. Any other document is mapped by a format: a
:mod:`trailseal.formats` name (text formats parse the document's ``message``, JSON formats the
document itself) or ``generic``, the default, which keeps the whole document in ``attributes`` and
reads only a few well-known ECS fields:

- time: ``@timestamp``, ``timestamp`` or ``time`` (RFC 3339 or Unix epoch s/ms/µs/ns), else the HEC
  ``time``, else our clock with ``attributes.time_missing = true``;
- category: ECS ``event.category`` (authentication, iam -> account, configuration -> config,
  session, database/web/file/api -> data_access, intrusion_detection/malware/vulnerability/threat ->
  finding), else implied by the action's prefix, else ``system``;
- action: ECS ``event.action`` made a dotted lower-case verb, else ``log.message``;
- outcome: ECS ``event.outcome``, else from ``http.response.status_code``, else ``unknown``;
- severity: ``log.level``/``level``/``severity`` (syslog level names), else unset;
- actor: ``user.id``/``user.name`` (+ ``source.ip``/``client.ip``, ``user_agent.original``) as a
  user, else the sending component as a system actor (it claims nothing beyond "this was logged");
- source: component = ``ctx['component']``, ECS ``service.name``, the HEC ``source`` or the index,
  else the receiver; host = ``host.name``/``host.hostname``/``host``; kind ``app``;
- request: ``http.request.method``, ``url.path``, ``http.response.status_code``, ``http.response.body.bytes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from trailseal import formats
from trailseal.event import ACTION_PATTERN, CATEGORIES, OUTCOMES, SEVERITIES, utc_now
from trailseal.formats import FormatError
from trailseal.formats._common import (
    bounded,
    category_for_action,
    from_unix_nanos,
    http_outcome,
    is_ip,
    json_safe,
    rfc3339,
    sha256_hex,
)

GENERIC = "generic"
TEXT_FORMATS = frozenset({"access_log", "auth_log", "syslog", "pgaudit"})
EVENT_KEYS = frozenset({"category", "action", "actor", "source"})
DEFAULT_ACTION = "log.message"
ECS_CATEGORIES = {
    "authentication": "authentication",
    "iam": "account",
    "configuration": "config",
    "session": "session",
    "database": "data_access",
    "web": "data_access",
    "file": "data_access",
    "api": "data_access",
    "intrusion_detection": "finding",
    "malware": "finding",
    "vulnerability": "finding",
    "threat": "finding",
}
LEVELS = {
    "emerg": "critical",
    "emergency": "critical",
    "alert": "critical",
    "fatal": "critical",
    "critical": "critical",
    "crit": "high",
    "error": "medium",
    "err": "medium",
    "warning": "low",
    "warn": "low",
    "notice": "info",
    "info": "info",
    "informational": "info",
    "debug": "info",
    "trace": "info",
    **{s: s for s in SEVERITIES},
}
_ACTION_RE = re.compile(ACTION_PATTERN)
_NOT_ACTION = re.compile(r"[^a-z0-9_.*-]+")
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Origin:
    """Where a document came from: the receiver, its metadata (kept in attributes) and hints."""

    receiver: str
    meta: dict[str, Any] = field(default_factory=dict)
    time: Any = None
    host: str | None = None
    component: str | None = None
    id: str | None = None


def is_event(doc: Any) -> bool:
    """True if the document presents itself as a trailseal event."""
    return isinstance(doc, dict) and EVENT_KEYS <= doc.keys()


def document_events(
    doc: Any, raw: bytes, origin: Origin, fmt: str, ctx: dict[str, Any]
) -> list[dict[str, Any]]:
    """The events of one document; FormatError says why it cannot be mapped."""
    if is_event(doc):
        return [passthrough(doc, raw, origin)]
    if fmt == GENERIC:
        return [generic(doc, raw, origin, ctx)]
    module = formats.get(fmt)
    record = text_of(doc, fmt) if fmt in TEXT_FORMATS else (raw if _is_json(raw) else _encoder.encode(doc))
    return annotate(module.parse(record, **ctx), origin)


def _is_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


def text_of(doc: Any, fmt: str) -> bytes:
    """The log line inside a document: a string document, or its message/log field."""
    if isinstance(doc, str):
        return doc.encode("utf-8", "surrogateescape")
    value = _first(doc, "message", "log", "event.original") if isinstance(doc, dict) else None
    if not isinstance(value, str):
        raise FormatError(f"no 'message' text in the document to parse as {fmt}")
    return value.encode("utf-8", "surrogateescape")


def annotate(events: list[dict[str, Any]], origin: Origin) -> list[dict[str, Any]]:
    """Add the receiver's metadata to events a format produced, and the document id if they have none."""
    for n, event in enumerate(events):
        event.setdefault("attributes", {}).update(origin.meta)
        if origin.id and "id" not in event:
            event["id"] = origin.id if len(events) == 1 else f"{origin.id}:{n}"
    return events


def passthrough(doc: dict[str, Any], raw: bytes, origin: Origin) -> dict[str, Any]:
    """A trailseal event as sent (validated later), minus ``received``, with raw_hash and format set."""
    event = {k: v for k, v in doc.items() if k != "received"}
    source = event.get("source")
    if isinstance(source, dict) and "format" not in source:
        event["source"] = {**source, "format": origin.receiver}
    event.setdefault("raw_hash", sha256_hex(raw))
    if origin.id and "id" not in event:
        event["id"] = origin.id
    return event


def generic(doc: Any, raw: bytes, origin: Origin, ctx: dict[str, Any]) -> dict[str, Any]:
    """The generic mapping (see the module docstring)."""
    if not isinstance(doc, dict):
        doc = {"message": doc}
    component = _component(doc, origin, ctx)
    time, missing = _time(doc, origin.time)
    action = _action(doc)
    request = _request(doc)
    attributes = {**json_safe(doc), **origin.meta}
    if missing:
        attributes["time_missing"] = True
    event: dict[str, Any] = {
        "time": time,
        "category": _category(doc, action),
        "action": action,
        "outcome": _outcome(doc, request.get("status")),
        "actor": _actor(doc, component),
        "source": _source(doc, origin, ctx, component),
        "raw_hash": sha256_hex(raw),
        "attributes": attributes,
    }
    severity = LEVELS.get(str(_first(doc, "log.level", "level", "severity") or "").lower())
    if severity:
        event["severity"] = severity
    if request:
        event["request"] = request
    if origin.id:
        event["id"] = origin.id
    return bounded(event)


def _get(doc: dict[str, Any], path: str) -> Any:
    """A field by dotted path: a dotted key at the top level, else nested objects."""
    if path in doc:
        return doc[path]
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _first(doc: dict[str, Any], *paths: str) -> Any:
    """The first of several fields that is present and not empty."""
    for path in paths:
        value = _get(doc, path)
        if value not in (None, "", [], {}):
            return value
    return None


def _time(doc: dict[str, Any], hint: Any) -> tuple[str, bool]:
    """(event time, True if none was given and our clock stands in)."""
    value = _first(doc, "@timestamp", "timestamp", "time")
    if value is None:
        value = hint
    if value is None:
        return utc_now(), True
    return timestamp(value), False


def timestamp(value: Any) -> str:
    """RFC 3339 text, or a Unix epoch number (or numeric text) in s, ms, µs or ns, as the sealed form."""
    if isinstance(value, str) and not _is_number(value):
        return rfc3339(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FormatError(f"time must be RFC 3339 or a Unix epoch number, not {str(value)[:40]!r}") from None
    if number != number or number < 0 or number > 1e19:
        raise FormatError(f"time {str(value)[:40]!r} is out of range")
    scale = 1e9 if number < 1e11 else 1e6 if number < 1e14 else 1e3 if number < 1e17 else 1.0
    return from_unix_nanos(int(round(number * scale / 1000)) * 1000)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _action(doc: dict[str, Any]) -> str:
    value = _get(doc, "event.action")
    if not isinstance(value, str):
        return DEFAULT_ACTION
    action = _NOT_ACTION.sub("_", value.strip().lower()).strip("._")
    action = re.sub(r"\.{2,}", ".", action)
    return action if action and len(action) <= 256 and _ACTION_RE.match(action) else DEFAULT_ACTION


def _category(doc: dict[str, Any], action: str) -> str:
    values = _get(doc, "event.category")
    for value in values if isinstance(values, list) else [values]:
        if isinstance(value, str):
            if value in CATEGORIES:
                return value
            if value.lower() in ECS_CATEGORIES:
                return ECS_CATEGORIES[value.lower()]
    return (category_for_action(action) if action != DEFAULT_ACTION else None) or "system"


def _outcome(doc: dict[str, Any], status: int | None) -> str:
    value = _get(doc, "event.outcome")
    if isinstance(value, str) and value.lower() in OUTCOMES:
        return value.lower()
    return http_outcome(status) if status is not None else "unknown"


def _component(doc: dict[str, Any], origin: Origin, ctx: dict[str, Any]) -> str:
    value = ctx.get("component") or _first(doc, "service.name") or origin.component
    return value if isinstance(value, str) and value else origin.receiver


def _actor(doc: dict[str, Any], component: str) -> dict[str, Any]:
    """The user the document names, else the sending component as a system actor."""
    user_id, name = _first(doc, "user.id"), _first(doc, "user.name")
    if not isinstance(user_id, str | int) and not isinstance(name, str):
        return {"id": component, "type": "system"}
    actor: dict[str, Any] = {"id": str(user_id if user_id is not None else name), "type": "user"}
    if isinstance(name, str) and user_id is not None:
        actor["name"] = name
    roles = _get(doc, "user.roles")
    if isinstance(roles, list) and roles and all(isinstance(r, str) for r in roles):
        actor["roles"] = roles[:256]
    address = _first(doc, "source.ip", "client.ip")
    if isinstance(address, str) and is_ip(address):
        actor["ip"] = address
    agent = _get(doc, "user_agent.original")
    if isinstance(agent, str) and agent:
        actor["user_agent"] = agent
    return actor


def _source(doc: dict[str, Any], origin: Origin, ctx: dict[str, Any], component: str) -> dict[str, Any]:
    source = {"component": component, "kind": ctx.get("kind") or "app", "format": origin.receiver}
    host = ctx.get("host") or _first(doc, "host.name", "host.hostname", "hostname")
    if not isinstance(host, str):
        host = doc["host"] if isinstance(doc.get("host"), str) else origin.host
    if host:
        source["host"] = host
    return source


def _request(doc: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {}
    method = _get(doc, "http.request.method")
    if isinstance(method, str) and 0 < len(method) <= 32:
        request["method"] = method
    path = _first(doc, "url.path", "url.original")
    if isinstance(path, str):
        request["path"] = path
    for key, name in (("status", "http.response.status_code"), ("bytes", "http.response.body.bytes")):
        value = _get(doc, name)
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and 0 <= value <= (999 if key == "status" else 2**53)
        ):
            request[key] = value
    return request

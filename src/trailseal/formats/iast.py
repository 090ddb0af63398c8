"""A generic IAST-agent finding (JSON) -> ``finding`` events that carry the request's trace id.

IAST agents run inside the application, so a finding names the request that triggered it; keeping
its trace id lets a timeline join the finding to that request's access and audit events. The shape
(one finding, a JSON array of them, or ``{"findings": [...]}``):

    {
      "id": "f-1234",                        # optional, unique -> event id "iast:<id>"
      "time": "2024-05-01T10:00:00Z",        # required, RFC 3339
      "agent": {"name": "acme-iast", "version": "3.2"},   # or "acme-iast"; -> source.component, actor
      "application": {"name": "shop", "host": "web-1"},   # or "shop"; host -> source.host
      "rule": "sql-injection",               # required
      "title": "SQL injection in /login",
      "severity": "critical|high|medium|low|info",        # "note" = low, "warning" = medium; default medium
      "confidence": "high|medium|low",
      "cwe": 89,                             # or "CWE-89"
      "status": "open|confirmed|fixed|suppressed|false_positive",   # default open
      "request": {"method": "POST", "path": "/login", "status": 200,
                  "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
                  "traceparent": "00-4bf9...-00f0...-01"},           # trace_id/span_id or traceparent
      "trace_id": "...",                     # alternative to request.trace_id
      "location": {"file": "app/db.py", "line": 42, "function": "query"},
      "source": {...}, "sink": {...}, "stack": [...], "evidence": "...", "user": "alice"
    }

Mapping: category finding, action ``finding.report``, outcome failure for open/confirmed findings,
success for fixed, unknown for suppressed/false_positive; target the code location (type ``code``,
name ``file:line``); rule, title, confidence, CWE, status, taint source/sink, stack, evidence and the
triggering user go to ``iast.*`` attributes. Source kind ``iast``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trailseal.formats import FormatError
from trailseal.formats._common import (
    SHORT_MAX,
    all_or_error,
    as_is,
    bounded,
    collect,
    json_safe,
    load_sealable_json,
    rfc3339,
    sha256_hex,
    short,
    source,
    split_document,
    traceparent,
)

FORMAT = "iast"
SEVERITIES = {
    "critical": "critical",
    "high": "high",
    "medium": "medium",
    "warning": "medium",
    "low": "low",
    "note": "low",
    "info": "info",
    "informational": "info",
}
STATUS_OUTCOME = {
    "open": "failure",
    "confirmed": "failure",
    "new": "failure",
    "fixed": "success",
    "remediated": "success",
    "suppressed": "unknown",
    "false_positive": "unknown",
}
EXTRA_KEYS = ("title", "confidence", "source", "sink", "stack", "evidence", "user", "description")


split = split_document


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """All findings of a document; FormatError if any finding cannot be mapped."""
    return all_or_error(parse_batch(raw, **ctx), "finding")


def parse_batch(raw: bytes, **ctx: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(events, [(finding index, reason)]) for one finding, a list, or {"findings": [...]}."""
    doc, sealable = load_sealable_json(raw, 1)
    safe = as_is if sealable else json_safe
    if isinstance(doc, dict) and "findings" in doc:
        doc = doc["findings"]
        if not isinstance(doc, list):
            raise FormatError("'findings' must be a list")
    digest = sha256_hex(raw)
    if doc.__class__ is dict:  # one finding, the common case
        try:
            return [finding_event(doc, digest, ctx, safe)], []
        except FormatError as exc:
            return [], [(0, exc.reason)]
    return collect(doc if isinstance(doc, list) else (doc,), finding_event, digest, ctx, safe)


def finding_event(
    finding: Any, digest: str, ctx: dict[str, Any], safe: Callable[[Any], Any] = json_safe
) -> dict[str, Any]:
    """One IAST finding -> one finding event (safe: json_safe, or as_is for a sealable document)."""
    if not isinstance(finding, dict):
        raise FormatError("an IAST finding must be an object")
    get = finding.get
    rule = get("rule")
    if not isinstance(rule, str) or not rule:
        raise FormatError("IAST finding has no rule")
    if "time" not in finding:
        raise FormatError("IAST finding has no time")
    agent, agent_version = get("agent"), None
    if agent.__class__ is not str:
        agent, agent_version = _named(agent, "agent")
    application, app_host = get("application"), None
    if application is not None:
        application, app_host = _named(application, "application", "host")
    status = get("status") or "open"
    outcome = STATUS_OUTCOME.get(status) if status.__class__ is str else None  # the keys are lower case
    if outcome is None:
        status = str(status).lower()
        outcome = STATUS_OUTCOME.get(status, "unknown")
    tool = agent or "iast"
    if len(tool) > SHORT_MAX:
        short(tool, "source.component")
    severity = get("severity")
    location = get("location")
    event: dict[str, Any] = {
        "time": rfc3339(finding["time"]),
        "category": "finding",
        "action": "finding.report",
        "outcome": outcome,
        "severity": (severity.__class__ is str and SEVERITIES.get(severity)) or _severity(severity),
        "actor": {"id": tool, "type": "service"},
        "source": (
            source(ctx, FORMAT, "iast", tool, app_host)
            if ctx or app_host
            else {"component": tool, "kind": "iast", "format": FORMAT}
        ),
        "raw_hash": digest,
        "attributes": _attributes(finding, rule, status, application, agent_version, location, safe),
    }
    finding_id = get("id")
    if finding_id is not None:
        event["id"] = _event_id(finding_id)
    request = _request(finding)
    if request:
        event["request"] = request
    target = _target(location) if location.__class__ is dict else None
    if target:
        event["target"] = target
    if (target and len(target["name"]) > 8192) or len(request.get("path", "")) > 8192:
        return bounded(event)  # only these two can be too long: the others are checked as they are taken
    return event


def _event_id(finding_id: Any) -> str:
    """'iast:<id>' when the id is printable ASCII but the space ([!-~]), 1-120 characters; else FormatError."""
    text = finding_id if finding_id.__class__ is str else str(finding_id)
    if not (0 < len(text) <= 120 and text.isascii() and text.isprintable() and " " not in text):
        raise FormatError(f"finding id {str(finding_id)[:40]!r} is not printable ASCII of 1-120 characters")
    return f"iast:{finding_id}"


def _named(value: Any, what: str, extra: str = "version") -> tuple[str | None, str | None]:
    """(name, extra) from "name" or {"name": ..., extra: ...}."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        other = value.get(extra)
        return value["name"], str(other) if other is not None else None
    raise FormatError(f"{what} must be a name or an object with a name")


def _severity(value: Any) -> str:
    """The severity for a value that is not one of SEVERITIES' keys as it is (None: medium)."""
    if value is None:
        return "medium"
    severity = SEVERITIES.get(value) if value.__class__ is str else None  # the keys are lower case
    if severity is None:
        severity = SEVERITIES.get(str(value).lower())
    if severity is None:
        raise FormatError(f"unknown severity {str(value)[:16]!r}")
    return severity


def _request(finding: dict[str, Any]) -> dict[str, Any]:
    """Method, path, status and trace context of the request that triggered the finding (the values are
    decoded JSON, so `x.__class__ is str` is isinstance(x, str), and `is int` leaves out bool)."""
    given = finding.get("request")
    get = given.get if isinstance(given, dict) else _NOTHING.get
    request: dict[str, Any] = {}
    method, path, status = get("method"), get("path") or get("url"), get("status")
    if method.__class__ is str and 0 < len(method) <= 32:
        request["method"] = method
    if path.__class__ is str and path:
        request["path"] = path
    if status.__class__ is int and 0 <= status <= 999:
        request["status"] = status
    header = get("traceparent")
    ids = traceparent(header) if header is not None else None
    if ids:
        trace_id, span_id = ids
    else:
        trace_id = get("trace_id") or finding.get("trace_id")
        span_id = get("span_id") or finding.get("span_id")
    if trace_id.__class__ is str and trace_id:
        request["trace_id"] = trace_id if len(trace_id) <= SHORT_MAX else short(trace_id, "request.trace_id")
    if span_id.__class__ is str and span_id:
        request["span_id"] = span_id if len(span_id) <= SHORT_MAX else short(span_id, "request.span_id")
    return request


_NOTHING: dict[str, Any] = {}  # read only


def _target(location: dict[str, Any]) -> dict[str, str] | None:
    """The code location as 'file:line' (or the function when there is no file)."""
    file = location.get("file")
    if file.__class__ is str and file:
        line = location.get("line")
        return {"type": "code", "name": f"{file}:{line}" if line.__class__ is int else file}
    function = location.get("function")
    if function.__class__ is str and function:
        return {"type": "code", "name": function}
    return None


def _attributes(
    finding: dict[str, Any],
    rule: str,
    status: str,
    application: str | None,
    agent_version: str | None,
    location: Any,
    safe: Callable[[Any], Any],
) -> dict[str, Any]:
    """The iast.* attributes: rule, status, CWE, application, agent version, the extras and location."""
    attributes: dict[str, Any] = {"iast.rule": rule, "iast.status": status}
    cwe = finding.get("cwe")
    if cwe is not None:
        text = str(cwe).upper()
        attributes["vulnerability.cwe"] = [text if text.startswith("CWE-") else f"CWE-{text}"]
    if application:
        attributes["iast.application"] = application
    if agent_version:
        attributes["iast.agent_version"] = agent_version
    if not _EXTRA_SET.isdisjoint(finding):
        get = finding.get
        for key, name in _EXTRA_NAMES:
            value = get(key)
            if value is not None and (value or value.__class__ not in _EMPTIABLE):  # not None, "", [] or {}
                attributes[name] = value if safe is as_is else safe(value)
    if location.__class__ is dict:
        attributes["iast.location"] = location if safe is as_is else safe(location)
    return attributes


_EXTRA_NAMES = tuple((key, f"iast.{key}") for key in EXTRA_KEYS)
_EXTRA_SET = frozenset(EXTRA_KEYS)
_EMPTIABLE = (str, list, dict)

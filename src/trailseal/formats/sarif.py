"""SARIF 2.1.0 logs from static and dynamic scanners: each run's results -> ``finding`` events.

Each result -> category ``finding``, action ``finding.report``; outcome from the result kind
(fail -> failure, pass -> success, others unknown). Severity from a ``security-severity`` property
(CVSS: >= 9 critical, >= 7 high, >= 4 medium, > 0 low), else from the level (error high, warning
medium, note low, none info). The tool driver's name is source.component (kind ``scanner``) and the
actor (type service). Target: the first physical location's file (or a DAST result's webRequest
URL), the line in ``sarif.location``. A request/trace id in the result properties (``trace_id``,
``traceId``, ``request_id``, ``requestId``, ``x-request-id`` or a W3C ``traceparent``) ->
request.trace_id, so a finding joins the requests that caused it. id ``sarif:<guid>`` when the result
has a guid. time: the run's invocation end (or start) time, else ``ctx['time']``, else now.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from trailseal.event import utc_now
from trailseal.formats import FormatError
from trailseal.formats._common import (
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

FORMAT = "sarif"
LEVEL_SEVERITY = {"error": "high", "warning": "medium", "note": "low", "none": "info"}
KIND_OUTCOME = {"fail": "failure", "pass": "success"}
TRACE_KEYS = ("trace_id", "traceId", "trace.id", "request_id", "requestId", "x-request-id", "X-Request-ID")
_GUID = re.compile(r"[0-9A-Za-z-]{1,100}\Z")
_CWE = re.compile(r"(?i)cwe[-/ ]?(\d{1,6})")


split = split_document


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """All results of all runs; FormatError if any result cannot be mapped."""
    return all_or_error(parse_batch(raw, **ctx), "result")


def parse_batch(raw: bytes, **ctx: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(events, [(result index over all runs, reason)])."""
    doc, sealable = load_sealable_json(raw, -2)  # properties and fingerprints sit 4 levels down
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise FormatError("not a SARIF log: expected an object with a 'runs' list")
    version = doc.get("version")
    if version is not None and version != "2.1.0":
        raise FormatError(f"unsupported SARIF version {str(version)[:16]!r}; expected 2.1.0")
    digest = sha256_hex(raw)
    items = [(run, result) for run in doc["runs"] for result in _results(run)]
    safe = as_is if sealable else json_safe
    runs = {id(run): _run_context(run, ctx, safe) for run in doc["runs"] if isinstance(run, dict)}
    return collect(items, lambda item: result_event(runs[id(item[0])], item[1], digest, ctx))


def _results(run: Any) -> list[Any]:
    if not isinstance(run, dict):
        raise FormatError("a SARIF run must be an object")
    results = run.get("results") or []
    if not isinstance(results, list):
        raise FormatError("run.results must be a list")
    return results


def _run_context(
    run: dict[str, Any], ctx: dict[str, Any], safe: Callable[[Any], Any] = json_safe
) -> dict[str, Any]:
    """What every result of a run shares: tool name and version, rules, time, and json_safe or as_is."""
    driver = (run.get("tool") or {}).get("driver") if isinstance(run.get("tool"), dict) else None
    if not isinstance(driver, dict) or not isinstance(driver.get("name"), str) or not driver["name"]:
        raise FormatError("SARIF run has no tool.driver.name")
    rules = (
        [r for r in driver.get("rules") or [] if isinstance(r, dict)]
        if isinstance(driver.get("rules"), list)
        else []
    )
    return {
        "tool": driver["name"],
        "version": driver.get("semanticVersion") or driver.get("version"),
        "rules": rules,
        "rules_by_id": {r.get("id"): r for r in rules},
        "time": _run_time(run, ctx),
        "safe": safe,
    }


def _run_time(run: dict[str, Any], ctx: dict[str, Any]) -> str:
    invocations = run.get("invocations")
    if isinstance(invocations, list) and invocations and isinstance(invocations[0], dict):
        stamp = invocations[0].get("endTimeUtc") or invocations[0].get("startTimeUtc")
        if stamp:
            return rfc3339(stamp)
    return rfc3339(ctx["time"]) if ctx.get("time") else utc_now()


def result_event(run: dict[str, Any], result: Any, digest: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """One SARIF result -> one finding event."""
    if not isinstance(result, dict):
        raise FormatError("a SARIF result must be an object")
    rule = _rule(run, result)
    rule_id = result.get("ruleId") or rule.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise FormatError("SARIF result has no ruleId")
    config = rule.get("defaultConfiguration") if isinstance(rule.get("defaultConfiguration"), dict) else {}
    level = result.get("level") or config.get("level") or "warning"
    if not isinstance(level, str) or level not in LEVEL_SEVERITY:  # a list here crashed the lookup
        raise FormatError(f"unknown SARIF level {str(level)[:16]!r}")
    kind = result.get("kind") or "fail"
    properties = result.get("properties") if isinstance(result.get("properties"), dict) else {}
    rule_properties = rule.get("properties") if isinstance(rule.get("properties"), dict) else {}
    tool = short(run["tool"], "source.component")
    event: dict[str, Any] = {
        "time": run["time"],
        "category": "finding",
        "action": "finding.report",
        "outcome": KIND_OUTCOME.get(kind, "unknown") if isinstance(kind, str) else "unknown",
        "severity": _severity(properties, rule_properties) or LEVEL_SEVERITY[level],
        "actor": {"id": tool, "type": "service"},
        "source": source(ctx, FORMAT, "scanner", tool),
        "raw_hash": digest,
        "attributes": _attributes(run, result, rule, rule_id, level, kind, properties, rule_properties),
    }
    guid = result.get("guid")
    if isinstance(guid, str) and _GUID.match(guid):
        event["id"] = f"sarif:{guid}"
    request = _request(result, properties)
    if request:
        event["request"] = request
    target = _target(result)
    if target:
        event["target"] = target
    return bounded(event)


def _rule(run: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The reportingDescriptor for a result, by ruleIndex or by id."""
    index = result.get("ruleIndex")
    if isinstance(index, int) and 0 <= index < len(run["rules"]):
        return run["rules"][index]
    rule_ref = result.get("rule")
    if (
        isinstance(rule_ref, dict)
        and isinstance(rule_ref.get("index"), int)
        and 0 <= rule_ref["index"] < len(run["rules"])
    ):
        return run["rules"][rule_ref["index"]]
    rule_id = result.get("ruleId") or (rule_ref.get("id") if isinstance(rule_ref, dict) else None)
    found = run["rules_by_id"].get(rule_id) if isinstance(rule_id, str) else None
    return found or ({"id": rule_id} if isinstance(rule_id, str) else {})


def _severity(*property_bags: dict[str, Any]) -> str | None:
    """Severity from a CVSS-style 'security-severity' property, if any bag has one."""
    for bag in property_bags:
        value = bag.get("security-severity")
        try:
            score = float(value) if value is not None else None
        except (TypeError, ValueError):
            score = None
        if score is not None and 0 <= score <= 10:
            return (
                "critical"
                if score >= 9
                else "high"
                if score >= 7
                else "medium"
                if score >= 4
                else ("low" if score > 0 else "info")
            )
    return None


def _message(result: dict[str, Any], rule: dict[str, Any]) -> str | None:
    message = result.get("message") if isinstance(result.get("message"), dict) else {}
    if isinstance(message.get("text"), str):
        return message["text"]
    strings = rule.get("messageStrings") if isinstance(rule.get("messageStrings"), dict) else {}
    template = strings.get(message.get("id")) if isinstance(message.get("id"), str) else None
    return template.get("text") if isinstance(template, dict) else None


def _locations(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(uri, 'uri:line:column') for each physical location (line and column when known)."""
    found = []
    for location in result.get("locations") or []:
        physical = location.get("physicalLocation") if isinstance(location, dict) else None
        if not isinstance(physical, dict):
            continue
        artifact = (
            physical.get("artifactLocation") if isinstance(physical.get("artifactLocation"), dict) else {}
        )
        region = physical.get("region") if isinstance(physical.get("region"), dict) else {}
        uri = artifact.get("uri")
        if isinstance(uri, str):
            parts = [uri] + [
                str(region[k]) for k in ("startLine", "startColumn") if isinstance(region.get(k), int)
            ]
            found.append((uri, ":".join(parts)))
    return found


def _target(result: dict[str, Any]) -> dict[str, str] | None:
    """The first location's file, else a DAST webRequest's URL."""
    locations = _locations(result) if isinstance(result.get("locations"), list) else []
    if locations:
        return {"type": "file", "name": locations[0][0]}
    web = result.get("webRequest")
    if isinstance(web, dict) and isinstance(web.get("target"), str):
        return {"type": "url", "name": web["target"]}
    return None


def _request(result: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """Trace/request id from properties, and method/target/status of a DAST webRequest/webResponse."""
    request: dict[str, Any] = {}
    ids = traceparent(properties.get("traceparent"))
    if ids:
        request["trace_id"], request["span_id"] = ids
    else:
        for key in TRACE_KEYS:
            value = properties.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                request["trace_id"] = short(str(value), "request.trace_id")
                break
    web = result.get("webRequest") if isinstance(result.get("webRequest"), dict) else {}
    if isinstance(web.get("method"), str) and 0 < len(web["method"]) <= 32:
        request["method"] = web["method"]
    if isinstance(web.get("target"), str):
        request["path"] = web["target"]
    response = result.get("webResponse") if isinstance(result.get("webResponse"), dict) else {}
    status = response.get("statusCode")
    if isinstance(status, int) and not isinstance(status, bool) and 0 <= status <= 999:
        request["status"] = status
    return request


def _attributes(
    run: dict[str, Any],
    result: dict[str, Any],
    rule: dict[str, Any],
    rule_id: str,
    level: str,
    kind: str,
    properties: dict[str, Any],
    rule_properties: dict[str, Any],
) -> dict[str, Any]:
    """Rule, level, kind, message, locations, fingerprints, tags/CWE and the result's properties."""
    attributes: dict[str, Any] = {"sarif.rule_id": rule_id, "sarif.level": level, "sarif.kind": kind}
    for key, value in (
        ("sarif.rule_name", rule.get("name")),
        ("message", _message(result, rule)),
        ("sarif.tool_version", run["version"]),
        ("sarif.help_uri", rule.get("helpUri")),
        ("sarif.baseline_state", result.get("baselineState")),
    ):
        if isinstance(value, str) and value:
            attributes[key] = value
    locations = [text for _, text in _locations(result)] if isinstance(result.get("locations"), list) else []
    if locations:
        attributes["sarif.location"] = locations[0]
        if len(locations) > 1:
            attributes["sarif.locations"] = locations
    fingerprints = {**_bag(result, "partialFingerprints"), **_bag(result, "fingerprints")}
    if fingerprints:
        attributes["sarif.fingerprints"] = run["safe"](fingerprints)
    tags = (
        [t for t in rule_properties.get("tags") or [] if isinstance(t, str)]
        if isinstance(rule_properties.get("tags"), list)
        else []
    )
    if tags:
        attributes["sarif.tags"] = tags
    cwes = sorted({f"CWE-{m}" for t in tags for m in _CWE.findall(t)})
    if cwes:
        attributes["vulnerability.cwe"] = cwes
    if properties:
        attributes["sarif.properties"] = run["safe"](properties)
    return attributes


def _bag(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}

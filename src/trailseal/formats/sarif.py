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
    SHORT_MAX,
    all_or_error,
    as_is,
    bounded,
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
    runs = doc["runs"]
    results = [_results(run) for run in runs]  # each run is an object after this
    safe = as_is if sealable else json_safe
    contexts = [_run_context(run, ctx, safe) for run in runs]
    events: list[dict[str, Any]] = []
    rejected: list[tuple[int, str]] = []
    index = 0
    for run, run_results in zip(contexts, results, strict=True):  # _common.collect over all runs' results
        for result in run_results:
            try:
                events.append(result_event(run, result, digest, ctx))
            except FormatError as exc:
                rejected.append((index, exc.reason))
            index += 1
    return events, rejected


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
    tool = driver["name"]
    return {
        "tool": tool,
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
    get = result.get
    rule = _rule(run, result)
    rule_id = get("ruleId") or rule.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise FormatError("SARIF result has no ruleId")
    level = get("level")
    if not level:
        config = rule.get("defaultConfiguration")
        level = (config.get("level") if isinstance(config, dict) else None) or "warning"
    if not isinstance(level, str) or level not in LEVEL_SEVERITY:  # a list here crashed the lookup
        raise FormatError(f"unknown SARIF level {str(level)[:16]!r}")
    kind = get("kind") or "fail"
    properties = get("properties")
    if not isinstance(properties, dict):
        properties = _NOTHING
    rule_properties = _bag(rule, "properties")
    tool = run["tool"]
    if len(tool) > SHORT_MAX:
        short(tool, "source.component")
    severity = _severity(properties, rule_properties) or LEVEL_SEVERITY[level]
    event_source = source(ctx, FORMAT, "scanner", tool)
    locations = _locations(get("locations"))
    event: dict[str, Any] = {
        "time": run["time"],
        "category": "finding",
        "action": "finding.report",
        "outcome": KIND_OUTCOME.get(kind, "unknown") if isinstance(kind, str) else "unknown",
        "severity": severity,
        "actor": {"id": tool, "type": "service"},
        "source": event_source,
        "raw_hash": digest,
        "attributes": _attributes(
            run, result, rule, rule_id, level, kind, properties, rule_properties, locations
        ),
    }
    guid = get("guid")
    if isinstance(guid, str) and _GUID.match(guid):
        event["id"] = f"sarif:{guid}"
    request = _request(result, properties)
    if request:
        event["request"] = request
    target = _target(result, locations)
    if target:
        event["target"] = target
    if (target and len(target["name"]) > 8192) or len(request.get("path", "")) > 8192:
        return bounded(event)  # only these two can be too long: the others are checked as they are taken
    return event


def _rule(run: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The reportingDescriptor for a result, by ruleIndex or by id."""
    rules = run["rules"]
    index = result.get("ruleIndex")
    if isinstance(index, int) and 0 <= index < len(rules):
        return rules[index]
    rule_ref = result.get("rule")
    if (
        isinstance(rule_ref, dict)
        and isinstance(rule_ref.get("index"), int)
        and 0 <= rule_ref["index"] < len(rules)
    ):
        return rules[rule_ref["index"]]
    rule_id = result.get("ruleId") or (rule_ref.get("id") if isinstance(rule_ref, dict) else None)
    found = run["rules_by_id"].get(rule_id) if rules and isinstance(rule_id, str) else None
    return found or ({"id": rule_id} if isinstance(rule_id, str) else {})


def _severity(properties: dict[str, Any], rule_properties: dict[str, Any]) -> str | None:
    """Severity from a CVSS-style 'security-severity' property, if either bag has one."""
    if "security-severity" not in properties and "security-severity" not in rule_properties:
        return None
    for bag in (properties, rule_properties):
        value = bag.get("security-severity")
        try:
            score = float(value) if value is not None else None
        except (TypeError, ValueError, OverflowError):  # not a number, or an integer past any float
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
    message = result.get("message")
    if not isinstance(message, dict):
        message = _NOTHING
    text = message.get("text")
    if isinstance(text, str):
        return text
    strings = rule.get("messageStrings") if isinstance(rule.get("messageStrings"), dict) else {}
    template = strings.get(message.get("id")) if isinstance(message.get("id"), str) else None
    return template.get("text") if isinstance(template, dict) else None


def _locations(locations: Any) -> list[tuple[str, str]]:
    """(uri, 'uri:line:column') for each physical location (line and column when known); none if
    locations is not a list."""
    if not isinstance(locations, list):
        return []
    found = []
    for location in locations:
        physical = location.get("physicalLocation") if isinstance(location, dict) else None
        if not isinstance(physical, dict):
            continue
        artifact = physical.get("artifactLocation")
        uri = artifact.get("uri") if isinstance(artifact, dict) else None
        if isinstance(uri, str):
            text = uri
            region = physical.get("region")
            if isinstance(region, dict):
                line, column = region.get("startLine"), region.get("startColumn")
                if isinstance(line, int):
                    text = f"{text}:{line}"
                if isinstance(column, int):
                    text = f"{text}:{column}"
            found.append((uri, text))
    return found


def _target(result: dict[str, Any], locations: list[tuple[str, str]]) -> dict[str, str] | None:
    """The first location's file, else a DAST webRequest's URL."""
    if locations:
        return {"type": "file", "name": locations[0][0]}
    web = result.get("webRequest")
    if isinstance(web, dict) and isinstance(web.get("target"), str):
        return {"type": "url", "name": web["target"]}
    return None


def _request(result: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """Trace/request id from properties, and method/target/status of a DAST webRequest/webResponse."""
    request: dict[str, Any] = {}
    header = properties.get("traceparent")
    ids = traceparent(header) if header is not None else None
    if ids:
        request["trace_id"], request["span_id"] = ids
    elif not _TRACE_KEY_SET.isdisjoint(properties):
        for key in TRACE_KEYS:
            value = properties.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                request["trace_id"] = short(str(value), "request.trace_id")
                break
    web = result.get("webRequest")
    if isinstance(web, dict):
        method, path = web.get("method"), web.get("target")
        if isinstance(method, str) and 0 < len(method) <= 32:
            request["method"] = method
        if isinstance(path, str):
            request["path"] = path
    response = result.get("webResponse")
    if isinstance(response, dict):
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
    locations: list[tuple[str, str]],
) -> dict[str, Any]:
    """Rule, level, kind, message, locations, fingerprints, tags/CWE and the result's properties."""
    attributes: dict[str, Any] = {"sarif.rule_id": rule_id, "sarif.level": level, "sarif.kind": kind}
    rule_name, message, help_uri = rule.get("name"), _message(result, rule), rule.get("helpUri")
    if isinstance(rule_name, str) and rule_name:
        attributes["sarif.rule_name"] = rule_name
    if isinstance(message, str) and message:
        attributes["message"] = message
    version = run["version"]
    if isinstance(version, str) and version:
        attributes["sarif.tool_version"] = version
    if isinstance(help_uri, str) and help_uri:
        attributes["sarif.help_uri"] = help_uri
    baseline_state = result.get("baselineState")
    if isinstance(baseline_state, str) and baseline_state:
        attributes["sarif.baseline_state"] = baseline_state
    if locations:
        attributes["sarif.location"] = locations[0][1]
        if len(locations) > 1:
            attributes["sarif.locations"] = [text for _, text in locations]
    if "partialFingerprints" in result or "fingerprints" in result:
        fingerprints = {**_bag(result, "partialFingerprints"), **_bag(result, "fingerprints")}
        if fingerprints:
            attributes["sarif.fingerprints"] = run["safe"](fingerprints)
    tags = rule_properties.get("tags")
    if isinstance(tags, list):
        tags = [t for t in tags if isinstance(t, str)]
        if tags:
            attributes["sarif.tags"] = tags
            cwes = sorted({f"CWE-{m}" for t in tags for m in _CWE.findall(t)})
            if cwes:
                attributes["vulnerability.cwe"] = cwes
    if properties:
        safe = run["safe"]
        attributes["sarif.properties"] = properties if safe is as_is else safe(properties)
    return attributes


def _bag(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """doc[key] if it is an object, else an empty one (not to be changed)."""
    value = doc.get(key)
    return value if isinstance(value, dict) else _NOTHING


_NOTHING: dict[str, Any] = {}  # read only
_TRACE_KEY_SET = frozenset(TRACE_KEYS)

from __future__ import annotations

import json

import pytest

from trailseal.formats import FormatError, sarif

from .helpers import parse_all


def log(*results: dict, rules=None, invocations=None) -> bytes:
    run = {
        "tool": {"driver": {"name": "semgrep", "semanticVersion": "1.2.3", "rules": rules or []}},
        "results": list(results),
    }
    if invocations is not None:
        run["invocations"] = invocations
    return json.dumps({"version": "2.1.0", "runs": [run]}).encode()


RULE = {
    "id": "py.sqli",
    "name": "SqlInjection",
    "defaultConfiguration": {"level": "error"},
    "properties": {"tags": ["security", "external/cwe/cwe-89"], "security-severity": "9.8"},
    "messageStrings": {"default": {"text": "tainted SQL"}},
}
LOCATION = {
    "physicalLocation": {
        "artifactLocation": {"uri": "app/db.py"},
        "region": {"startLine": 42, "startColumn": 7},
    }
}


def test_result_maps_to_a_finding_with_rule_location_and_trace():
    body = log(
        {
            "ruleIndex": 0,
            "message": {"id": "default"},
            "locations": [LOCATION],
            "guid": "g-1",
            "properties": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        },
        rules=[RULE],
        invocations=[{"endTimeUtc": "2024-03-01T12:00:00Z", "executionSuccessful": True}],
    )
    (event,) = parse_all("sarif", body)
    assert (event["category"], event["action"], event["outcome"]) == ("finding", "finding.report", "failure")
    assert event["severity"] == "critical"
    assert event["id"] == "sarif:g-1" and event["time"] == "2024-03-01T12:00:00.000000Z"
    assert event["source"] == {"component": "semgrep", "kind": "scanner", "format": "sarif"}
    assert event["target"] == {"type": "file", "name": "app/db.py"}
    assert event["request"] == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    attributes = event["attributes"]
    assert attributes["sarif.rule_id"] == "py.sqli" and attributes["message"] == "tainted SQL"
    assert attributes["sarif.location"] == "app/db.py:42:7" and attributes["vulnerability.cwe"] == ["CWE-89"]


@pytest.mark.parametrize(
    ("level", "severity"), [("error", "high"), ("warning", "medium"), ("note", "low"), ("none", "info")]
)
def test_level_to_severity(level, severity):
    (event,) = parse_all(
        "sarif", log({"ruleId": "r", "level": level, "message": {"text": "m"}}), time="2024-01-01T00:00:00Z"
    )
    assert event["severity"] == severity and event["time"] == "2024-01-01T00:00:00.000000Z"


def test_kind_pass_is_success_and_request_id_property_is_the_trace():
    (event,) = parse_all("sarif", log({"ruleId": "r", "kind": "pass", "properties": {"request_id": "req-9"}}))
    assert event["outcome"] == "success" and event["request"] == {"trace_id": "req-9"}


def test_dast_web_request_and_response():
    (event,) = parse_all(
        "sarif",
        log(
            {
                "ruleId": "xss",
                "webRequest": {"method": "GET", "target": "/q?x=<s>"},
                "webResponse": {"statusCode": 200},
            }
        ),
    )
    assert event["request"] == {"method": "GET", "path": "/q?x=<s>", "status": 200}
    assert event["target"] == {"type": "url", "name": "/q?x=<s>"}


def test_bad_results_are_rejected_by_index():
    events, rejected = sarif.parse_batch(
        log({"ruleId": "r"}, {"level": "error"}, {"ruleId": "r", "level": "x"})
    )
    assert len(events) == 1 and [i for i, _ in rejected] == [1, 2]


def test_a_level_or_kind_that_is_a_list_does_not_crash_the_lookups():
    events, rejected = sarif.parse_batch(
        log({"ruleId": "r", "level": ["error"]}, {"ruleId": "r", "kind": ["x"]})
    )
    assert rejected == [(0, "unknown SARIF level \"['error']\"")]
    assert events[0]["outcome"] == "unknown"


def test_a_security_severity_past_any_float_is_ignored_like_any_other_non_number():
    """An integer too big for a float (float() raises OverflowError, not ValueError) must not fail the
    result: like "high" or [9.8], it is no score, and the level gives the severity."""
    events, rejected = sarif.parse_batch(
        log({"ruleId": "r", "level": "error", "properties": {"security-severity": 10**400}},
            {"ruleId": "r", "level": "note", "properties": {"security-severity": "high"}})
    )
    assert rejected == []
    assert [e["severity"] for e in events] == [sarif.LEVEL_SEVERITY["error"], sarif.LEVEL_SEVERITY["note"]]


@pytest.mark.parametrize(
    "doc", [{"runs": "x"}, {"version": "2.0.0", "runs": []}, [], {"runs": [{"tool": {}}]}]
)
def test_not_sarif_is_rejected(doc):
    with pytest.raises(FormatError):
        sarif.parse(json.dumps(doc).encode())

from __future__ import annotations

import json

import pytest

from trailseal.formats import FormatError, iast

from .helpers import parse_all, parse_one

FINDING = {
    "id": "f-1",
    "time": "2024-05-01T10:00:00+02:00",
    "agent": {"name": "acme-iast", "version": "3.2"},
    "application": {"name": "shop", "host": "web-1"},
    "rule": "sql-injection",
    "severity": "critical",
    "cwe": 89,
    "request": {
        "method": "POST",
        "path": "/login",
        "status": 200,
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    },
    "location": {"file": "app/db.py", "line": 42},
    "user": "ann",
}


def test_finding_keeps_the_trace_of_the_request_that_caused_it():
    event = parse_one("iast", json.dumps(FINDING))
    assert event["id"] == "iast:f-1" and event["time"] == "2024-05-01T08:00:00.000000Z"
    assert (event["category"], event["outcome"], event["severity"]) == ("finding", "failure", "critical")
    assert event["request"] == {
        "method": "POST",
        "path": "/login",
        "status": 200,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }
    assert event["source"] == {"component": "acme-iast", "kind": "iast", "format": "iast", "host": "web-1"}
    assert event["target"] == {"type": "code", "name": "app/db.py:42"}
    assert (
        event["attributes"]["vulnerability.cwe"] == ["CWE-89"] and event["attributes"]["iast.user"] == "ann"
    )


def test_findings_wrapper_list_and_status():
    doc = {"findings": [{**FINDING, "id": "a", "status": "fixed"}, {**FINDING, "id": "b", "trace_id": "t"}]}
    events = parse_all("iast", json.dumps(doc))
    assert [e["outcome"] for e in events] == ["success", "failure"]


@pytest.mark.parametrize(
    "change", [{"rule": None}, {"time": "yesterday"}, {"severity": "huge"}, {"id": "a b"}]
)
def test_invalid_findings_are_rejected(change):
    with pytest.raises(FormatError):
        iast.parse(json.dumps({**FINDING, **change}).encode())


@pytest.mark.parametrize(
    ("finding_id", "event_id"),
    [
        ("a" * 120, "iast:" + "a" * 120),
        (7, "iast:7"),
        ("a" * 121, None),
        ("é", None),
        ("a\x7f", None),
        ("", None),
    ],
)
def test_finding_id_is_printable_ascii_without_spaces(finding_id, event_id):
    raw = json.dumps({**FINDING, "id": finding_id}).encode()
    if event_id is None:
        with pytest.raises(FormatError, match="is not printable ASCII"):
            iast.parse(raw)
    else:
        assert parse_one("iast", raw)["id"] == event_id


def test_status_and_severity_in_other_cases_are_lowered():
    event = parse_one("iast", json.dumps({**FINDING, "status": "FIXED", "severity": "Note"}))
    assert (event["outcome"], event["severity"], event["attributes"]["iast.status"]) == (
        "success",
        "low",
        "fixed",
    )

"""The generic mapping of shipper documents, and the receiver routes in the API description."""

from __future__ import annotations

import pytest

from trailseal.formats import FormatError
from trailseal.receivers.documents import Origin, document_events, generic, timestamp


@pytest.mark.parametrize(
    "value",
    [
        1772359200,
        1772359200000,
        1772359200000000,
        1772359200000000000,
        "1772359200",
        1772359200.0,
        "2026-03-01T10:00:00Z",
        "2026-03-01T11:00:00+01:00",
    ],
)
def test_timestamps_in_any_unit(value):
    assert timestamp(value) == "2026-03-01T10:00:00.000000Z"


@pytest.mark.parametrize("value", ["yesterday", -5, float("nan"), [1], 1e30])
def test_bad_timestamps_are_refused(value):
    with pytest.raises(FormatError):
        timestamp(value)


def test_generic_mapping_reads_ecs_and_keeps_the_document():
    doc = {
        "@timestamp": "2026-03-01T10:00:00Z",
        "event.action": "Sign In!",
        "event.category": "iam",
        "event.outcome": "FAILURE",
        "user": {"id": 42, "name": "ann", "roles": ["ops"]},
        "client": {"ip": "192.0.2.1"},
        "log": {"level": "ERROR"},
        "service": {"name": "sso"},
    }
    event = generic(doc, b"raw", Origin("elasticsearch", {"es.index": "x"}), {})
    assert (event["action"], event["category"], event["outcome"], event["severity"]) == (
        "sign_in",
        "account",
        "failure",
        "medium",
    )
    assert event["actor"] == {"id": "42", "name": "ann", "type": "user", "roles": ["ops"], "ip": "192.0.2.1"}
    assert event["source"]["component"] == "sso" and event["attributes"]["es.index"] == "x"
    assert event["attributes"]["user"]["name"] == "ann"


def test_formats_and_refusals():
    origin = Origin("splunk_hec", {"splunk.sourcetype": "aws:cloudtrail"}, id="es:x:1")
    record = {
        "eventVersion": "1.08",
        "eventID": "e-1",
        "eventTime": "2026-03-01T10:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "eu-west-1",
        "userIdentity": {"type": "IAMUser", "userName": "bob", "arn": "arn:aws:iam::1:user/bob"},
        "sourceIPAddress": "192.0.2.9",
        "readOnly": True,
    }
    (event,) = document_events(record, b"", origin, "cloudtrail", {})
    assert event["id"] == "cloudtrail:e-1" and event["attributes"]["splunk.sourcetype"] == "aws:cloudtrail"
    with pytest.raises(FormatError, match="no 'message'"):
        document_events({"log": {"level": "info"}}, b"{}", origin, "access_log", {})


def test_openapi_lists_the_receivers_with_their_permission(rapi):
    client, _, _ = rapi
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/v1/logs"]["post"]["x-permission"] == "ingest"
    assert paths["/v1/logs"]["get"]["x-permission"] != "ingest"
    assert paths["/services/collector/raw"]["post"]["x-permission"] == "ingest"
    assert (
        paths["/es/_bulk"]["put"]["x-permission"] == "ingest"
        and paths["/"]["get"]["x-permission"] == "public"
    )

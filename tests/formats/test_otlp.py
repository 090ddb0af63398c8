from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.formats.cases import LOGS
from trailseal.event import from_dict
from trailseal.formats import FormatError, otlp

from .helpers import parse_all

TRACE = "5b8efff798038103d269b633813fc60c"


def kv(key: str, value) -> dict:
    kind = {str: "stringValue", bool: "boolValue", int: "intValue", float: "doubleValue"}[type(value)]
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def request(*records: dict, service: str = "shop") -> bytes:
    return json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {"attributes": [kv("service.name", service), kv("host.name", "web-1")]},
                    "scopeLogs": [{"scope": {"name": "audit"}, "logRecords": list(records)}],
                }
            ]
        }
    ).encode()


def record(*attributes: dict, **fields) -> dict:
    return {"timeUnixNano": "1700000000123456789", "attributes": list(attributes), **fields}


def test_http_semantic_conventions_map_to_request_and_actor():
    body = request(
        record(
            kv("http.request.method", "GET"),
            kv("url.path", "/orders"),
            kv("http.response.status_code", 403),
            kv("user.id", "u-7"),
            kv("client.address", "192.0.2.5"),
            kv("user_agent.original", "ua"),
            kv("custom", "x"),
            traceId=TRACE.upper(),
            spanId="EEE19B7EC3C1B174",
            severityNumber=13,
            body={"stringValue": "denied"},
        )
    )
    (event,) = parse_all("otlp", body)
    assert event["time"] == "2023-11-14T22:13:20.123456Z"
    assert (event["category"], event["action"], event["outcome"]) == (
        "data_access",
        "http.request",
        "failure",
    )
    assert event["actor"] == {"id": "u-7", "type": "user", "ip": "192.0.2.5", "user_agent": "ua"}
    assert event["request"] == {
        "method": "GET",
        "path": "/orders",
        "status": 403,
        "trace_id": TRACE,
        "span_id": "eee19b7ec3c1b174",
    }
    assert event["severity"] == "low"
    assert event["source"] == {"component": "shop", "kind": "app", "format": "otlp", "host": "web-1"}
    assert event["attributes"]["custom"] == "x" and event["attributes"]["message"] == "denied"
    assert "http.request.method" not in event["attributes"]


def test_event_name_and_explicit_trailseal_attributes():
    (login,) = parse_all(
        "otlp",
        request(
            record(kv("event.name", "User.Login"), kv("enduser.id", "ann"), kv("event.outcome", "failure"))
        ),
    )
    assert (login["category"], login["action"], login["outcome"]) == (
        "authentication",
        "user.login",
        "failure",
    )
    (explicit,) = parse_all(
        "otlp",
        request(
            record(
                kv("trailseal.category", "admin"),
                kv("trailseal.action", "tenant.delete"),
                kv("trailseal.outcome", "success"),
                kv("trailseal.id", "t-1"),
                kv("trailseal.target.type", "tenant"),
                kv("trailseal.target.name", "acme"),
            )
        ),
    )
    assert (explicit["category"], explicit["action"], explicit["id"]) == ("admin", "tenant.delete", "t-1")
    assert explicit["target"] == {"type": "tenant", "name": "acme"}
    assert not any(k.startswith("trailseal.") for k in explicit["attributes"])


def test_db_attributes_become_a_db_query_on_a_table():
    (event,) = parse_all(
        "otlp",
        request(
            record(
                kv("db.system.name", "postgresql"),
                kv("db.operation.name", "UPDATE"),
                kv("db.collection.name", "orders"),
                kv("user.id", "ann"),
            )
        ),
    )
    assert (event["action"], event["category"]) == ("db.query", "data_change")
    assert event["target"] == {"type": "table", "name": "orders"}


def test_plain_log_without_audit_meaning_is_a_system_record_of_the_service():
    (event,) = parse_all("otlp", request(record(severityNumber=17)))
    assert (event["category"], event["action"], event["outcome"]) == ("system", "log.record", "unknown")
    assert event["actor"] == {"id": "shop", "type": "service"} and event["severity"] == "medium"


def test_bad_records_are_rejected_by_index_for_partial_success():
    body = request(
        record(kv("user.id", "a")),
        record(kv("trailseal.category", "nope")),
        {"attributes": []},
        record(traceId="xyz"),
    )
    events, rejected = otlp.parse_request(body, "application/json")
    assert len(events) == 1
    assert [index for index, _ in rejected] == [1, 2, 3]
    assert "trailseal.category must be one of" in rejected[0][1]
    with pytest.raises(FormatError, match="3 of 4 log records rejected"):
        otlp.parse(body)


def test_an_integer_too_large_for_a_double_rejects_its_record():
    huge = {"key": "x", "value": {"doubleValue": 10**400}}
    body = request(record(huge), record(kv("user.id", "a")))
    events, rejected = otlp.parse_request(body, "application/json")
    assert len(events) == 1 and rejected == [(0, "doubleValue is out of range for a double")]


def test_an_integer_string_with_two_minus_signs_rejects_its_record():
    twice = {"key": "x", "value": {"intValue": "--5"}}  # it crashed int() before
    events, rejected = otlp.parse_request(request(record(twice)), "application/json")
    assert events == [] and rejected == [(0, "expected an integer, got '--5'")]


def test_protobuf_and_json_give_the_same_events():
    doc = json.loads((LOGS / "otlp_logs_request_example.json").read_bytes())
    rec = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    message = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(
                    attributes=[KeyValue(key="service.name", value=AnyValue(string_value="my.service"))]
                ),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                time_unix_nano=int(rec["timeUnixNano"]),
                                severity_number=10,
                                severity_text="Information",
                                trace_id=bytes.fromhex(rec["traceId"]),
                                span_id=bytes.fromhex(rec["spanId"]),
                                body=AnyValue(string_value="Example log record"),
                                attributes=[KeyValue(key="int.attribute", value=AnyValue(int_value=10))],
                            )
                        ]
                    )
                ],
            )
        ]
    )
    from_proto, rejected = otlp.parse_request(message.SerializeToString(), "application/x-protobuf")
    assert rejected == []
    event = from_proto[0]
    from_dict(event)
    from_json = otlp.parse((LOGS / "otlp_logs_request_example.json").read_bytes())[0]
    for key in ("time", "category", "action", "outcome", "actor", "severity", "request"):
        assert event[key] == from_json[key]
    assert (
        event["attributes"]["int.attribute"] == 10 and event["attributes"]["message"] == "Example log record"
    )


def test_unreadable_bodies_fail_the_whole_request():
    with pytest.raises(FormatError, match="content type"):
        otlp.parse_request(b"{}", "text/plain")
    with pytest.raises(FormatError, match="malformed JSON"):
        otlp.parse_request(b"{", "application/json")
    with pytest.raises(FormatError, match="protobuf"):
        otlp.parse_request(b"\xff\xff\xff", "application/x-protobuf")


def test_log_record_uid_is_the_idempotency_key_and_actor_details_map():
    body = request(
        record(
            kv("log.record.uid", "01HXYZ"),
            kv("user.id", "ann"),
            kv("user.name", "Ann"),
            kv("session.id", "s-1"),
            kv("client.address", "host.example"),
        )
    )
    (event,) = parse_all("otlp", body)
    assert event["id"] == "otel:01HXYZ"
    assert event["actor"] == {"id": "ann", "type": "user", "name": "Ann", "session": "s-1"}
    assert event["attributes"]["client.address"] == "host.example", "a hostname is not an ip"

"""OTLP/HTTP logs: the OpenTelemetry SDK exporter against a real server, partial success, hostile bodies."""

from __future__ import annotations

import gzip
import json
import logging

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.receivers.conftest import bearer, notes, sealed, sealed_in, wait_for
from trailseal.api.receivers import status_proto

PROTO = {"content-type": "application/x-protobuf"}
NANOS = 1_790_000_000_000_000_000


@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated")
def test_sdk_exporter_to_a_real_server(live):
    """The stock exporter (protobuf, gzip) and the stdlib logging bridge; events arrive sealed and mapped."""
    exporter = OTLPLogExporter(
        endpoint=live.url + "/v1/logs",
        headers=bearer(live.token("otlp-sdk")),
        compression=Compression.Gzip,
        timeout=10,
    )
    provider = LoggerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "host.name": "web-7", "deployment.environment": "prod"}
        )
    )
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=50))
    logger = provider.get_logger("shop.auth", "1.2")
    logger.emit(
        body="login ok",
        severity_number=SeverityNumber.INFO,
        event_name="user.login",
        attributes={"user.id": "alice", "event.outcome": "success", "client.address": "203.0.113.9"},
    )
    logger.emit(
        body="login refused",
        severity_number=SeverityNumber.WARN,
        event_name="user.login",
        attributes={"user.id": "mallory", "event.outcome": "failure", "client.address": "198.51.100.4"},
    )
    stdlib = logging.getLogger("shop.payments")
    stdlib.propagate = False
    stdlib.addHandler(LoggingHandler(logger_provider=provider))
    stdlib.error("payment declined for order %s", 42)
    assert provider.force_flush(10_000)
    provider.shutdown()

    events = wait_for(lambda: (lambda e: e if len(e) == 3 else None)(sealed_in(live.data_dir, "otlp-sdk")))
    by_message = {e["attributes"]["message"]: e for e in events}
    ok, refused = by_message["login ok"], by_message["login refused"]
    assert (ok["action"], ok["category"], ok["outcome"]) == ("user.login", "authentication", "success")
    assert ok["actor"]["id"] == "alice" and ok["actor"]["ip"] == "203.0.113.9"
    assert ok["source"] == {"component": "checkout", "kind": "app", "format": "otlp", "host": "web-7"}
    assert ok["attributes"]["otel.resource"]["deployment.environment"] == "prod"
    assert (refused["outcome"], refused["severity"], refused["actor"]["id"]) == ("failure", "low", "mallory")
    declined = by_message["payment declined for order 42"]
    assert declined["severity"] == "medium" and declined["log"] == "otlp-sdk"
    assert len({e["raw_hash"] for e in events}) >= 1 and all(e["received"] for e in events)


def record(**fields) -> LogRecord:
    fields.setdefault("time_unix_nano", NANOS)
    fields.setdefault("body", AnyValue(string_value="hello"))
    return LogRecord(**fields)


def request_of(*records: LogRecord) -> bytes:
    scope = ScopeLogs(log_records=list(records))
    resource = ResourceLogs(scope_logs=[scope])
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="billing")))
    return ExportLogsServiceRequest(resource_logs=[resource]).SerializeToString()


def test_protobuf_partial_success_names_the_rejected_records(rapi):
    client, tokens, app = rapi
    body = request_of(
        record(),
        record(trace_id=b"\x01\x02\x03"),
        record(severity_number=99),
        record(body=AnyValue(string_value="last")),
    )
    response = client.post(
        "/v1/logs",
        content=gzip.compress(body),
        headers={**bearer(tokens["ingest"]), **PROTO, "content-encoding": "gzip"},
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
    answer = ExportLogsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_log_records == 2
    assert "record 1: trace_id" in answer.partial_success.error_message
    assert "record 2: severityNumber 99" in answer.partial_success.error_message
    trail = app.state.service.trail
    assert [e["attributes"]["message"] for e in sealed(trail)] == ["hello", "last"]
    note = notes(trail)[-1]
    assert note["action"] == "trailseal.ingest.rejected" and note["attributes"]["rejected"] == 2


def test_json_partial_success_in_json(rapi):
    client, tokens, app = rapi
    good = {"timeUnixNano": str(NANOS), "body": {"stringValue": "fine"}}
    bad = {"timeUnixNano": {"not": "a number"}, "body": {"stringValue": "bad"}}
    doc = {
        "resourceLogs": [
            {"scopeLogs": [{"logRecords": [good, bad, good | {"body": {"stringValue": "two"}}]}]}
        ]
    }
    response = client.post("/v1/logs", json=doc, headers=bearer(tokens["ingest"]))
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedLogRecords"] == 1
    assert "record 1:" in response.json()["partialSuccess"]["errorMessage"]
    assert client.post("/v1/logs", json={"resourceLogs": []}, headers=bearer(tokens["ingest"])).json() == {}
    assert [e["attributes"]["message"] for e in sealed(app.state.service.trail)] == ["fine", "two"]


def test_a_record_privacy_protection_refuses_is_a_partial_success(rapi):
    """A body full of emails just under the event size limit grows past it once each is masked: that
    record is rejected with the reason (it was a 500 for the whole request), the others are sealed."""
    client, tokens, app = rapi
    good = {"timeUnixNano": str(NANOS), "body": {"stringValue": "fine"}}
    grows = {"timeUnixNano": str(NANOS), "body": {"stringValue": "mail a@b.co " * 5400}}
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [good, grows, good | {"body": {"stringValue": "two"}}]}]}]}
    response = client.post("/v1/logs", json=doc, headers=bearer(tokens["ingest"]))
    assert response.status_code == 200, response.text
    assert response.json()["partialSuccess"]["rejectedLogRecords"] == 1
    assert "record 1:" in response.json()["partialSuccess"]["errorMessage"]
    assert "limit" in response.json()["partialSuccess"]["errorMessage"]
    assert [e["attributes"]["message"] for e in sealed(app.state.service.trail)] == ["fine", "two"]


def test_log_parameter_and_token_scope(rapi):
    client, tokens, app = rapi
    body = request_of(record())
    assert (
        client.post(
            "/v1/logs?log=billing", content=body, headers={**bearer(tokens["ingest"]), **PROTO}
        ).status_code
        == 200
    )
    scoped = client.post("/v1/logs", content=body, headers={**bearer(tokens["other"]), **PROTO})
    assert scoped.status_code == 200 and not ExportLogsServiceResponse.FromString(scoped.content).HasField(
        "partial_success"
    )
    denied = client.post("/v1/logs?log=billing", content=body, headers={**bearer(tokens["other"]), **PROTO})
    assert ExportLogsServiceResponse.FromString(denied.content).partial_success.rejected_log_records == 1
    trail = app.state.service.trail
    assert len(sealed(trail, "billing")) == 1 and len(sealed(trail, "other")) == 1


def status_of(response: httpx.Response) -> tuple[int, str]:
    """(code, message) of a google.rpc.Status body, decoded by hand (field 1 varint, field 2 string)."""
    data = response.content
    assert data[0] == 0x08
    code, pos = data[1], 2
    assert data[pos] == 0x12
    length, pos, shift = 0, pos + 1, 0
    while True:
        byte = data[pos]
        length |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            break
    return code, data[pos : pos + length].decode()


def test_hostile_bodies_get_a_status_in_the_request_encoding(rapi):
    client, tokens, app = rapi
    auth = {**bearer(tokens["ingest"]), **PROTO}
    valid = request_of(record())
    bad_string = request_of(record(attributes=[KeyValue(key="PLACEHOLDER", value=AnyValue(int_value=1))]))
    cases = {
        "truncated nested message": b"\x0a\x05\x12\x03\x0a",
        "string that is not UTF-8": bad_string.replace(b"PLACEHOLDER", b"\xff\xfe" * 5 + b"\xc3"),
        "truncated": valid[:-3],
        "junk": bytes(range(256)),
    }
    for name, body in cases.items():
        response = client.post("/v1/logs", content=body, headers=auth)
        assert response.status_code == 400, name
        code, message = status_of(response)
        assert code == 3 and "malformed OTLP protobuf" in message, name
    # a known field with the wrong wire type is an unknown field to protobuf: nothing to seal, no error
    wrong_type = client.post("/v1/logs", content=b"\x08\x01", headers=auth)
    assert (
        wrong_type.status_code == 200
        and ExportLogsServiceResponse.FromString(wrong_type.content) == ExportLogsServiceResponse()
    )
    bad_gzip = client.post(
        "/v1/logs", content=gzip.compress(valid)[:-8], headers={**auth, "content-encoding": "gzip"}
    )
    assert bad_gzip.status_code == 400 and status_of(bad_gzip)[0] == 3
    bad_utf8 = client.post(
        "/v1/logs",
        content=b'{"resourceLogs": [\xff]}',
        headers={**bearer(tokens["ingest"]), "content-type": "application/json"},
    )
    assert bad_utf8.status_code == 400 and bad_utf8.json()["code"] == 3
    assert (
        client.post(
            "/v1/logs", content=valid, headers={**bearer(tokens["ingest"]), "content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert client.post("/v1/logs", content=valid, headers=PROTO).status_code == 401
    assert (
        status_of(client.post("/v1/logs", content=valid, headers={**bearer(tokens["reader"]), **PROTO}))[0]
        == 7
    )
    assert sealed(app.state.service.trail) == []


def test_too_large_and_overloaded(rapi):
    client, tokens, app = rapi
    auth = {**bearer(tokens["ingest"]), **PROTO}
    server = app.state.service.trail.config.server
    server.max_body_bytes = 2000
    big = request_of(*[record(body=AnyValue(string_value="x" * 100)) for _ in range(40)])
    response = client.post("/v1/logs", content=big, headers=auth)
    assert response.status_code == 413 and status_of(response)[0] == 8
    bomb = gzip.compress(b"\x00" * 100_000)
    assert (
        client.post("/v1/logs", content=bomb, headers={**auth, "content-encoding": "gzip"}).status_code == 413
    )
    server.max_body_bytes = 16 * 1024 * 1024
    sealer = app.state.service.trail.sealer
    sealer.max_queue_events = 0
    busy = client.post("/v1/logs", content=request_of(record()), headers=auth)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and status_of(busy)[0] == 14
    sealer.max_queue_events = 200_000
    assert client.post("/v1/logs", content=request_of(record()), headers=auth).status_code == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_random_protobuf_never_5xx(rapi, body):
    client, tokens, _ = rapi
    response = client.post("/v1/logs", content=body, headers={**bearer(tokens["ingest"]), **PROTO})
    assert response.status_code in (200, 400)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
json_records = st.fixed_dictionaries(
    {},
    optional={
        "timeUnixNano": json_values,
        "severityNumber": json_values,
        "body": json_values,
        "attributes": json_values,
        "traceId": json_values,
        "eventName": json_values,
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(json_records, max_size=4))
def test_random_json_records_never_5xx(rapi, records):
    client, tokens, _ = rapi
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    body = json.dumps(doc, allow_nan=True).encode()
    response = client.post(
        "/v1/logs", content=body, headers={**bearer(tokens["ingest"]), "content-type": "application/json"}
    )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200 and records:
        rejected = response.json().get("partialSuccess", {}).get("rejectedLogRecords", 0)
        assert 0 <= rejected <= len(records)


def test_status_proto_round_trips_long_messages():
    message = "é" * 300
    code, text = status_of(httpx.Response(400, content=status_proto(14, message)))
    assert (code, text) == (14, message)

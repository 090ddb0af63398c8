from __future__ import annotations

import json

import pytest

from trailseal.formats import FormatError, mapping

from .helpers import parse_all

BILLING = """
[source]
component = "billing-api"
kind = "app"

[records]
path = "events"

[fields]
time = "ts"
action = "type"
outcome = "result"
"actor.id" = "user.email"
"actor.ip" = "client.ip"
"request.status" = "http.status"
"target.name" = 'resource["id.full"]'
id = "event_id"

[constants]
category = "data_access"

[defaults]
"actor.type" = "user"

[values.outcome]
ok = "success"
denied = "failure"

[time]
format = "unix_ms"

[attributes]
rest = true
"billing.plan" = "account.plan"

[options]
id_prefix = "billing:"
"""
DOC = {
    "events": [
        {
            "ts": 1700000000123,
            "type": "invoice.read",
            "result": "ok",
            "user": {"email": "ann@example.com"},
            "client": {"ip": "192.0.2.1"},
            "http": {"status": "200"},
            "resource": {"id.full": "inv-1"},
            "event_id": "x1",
            "account": {"plan": "pro"},
            "note": "kept",
        },
        {
            "ts": 1700000000999,
            "type": "invoice.read",
            "user": {"email": "bob@example.com"},
            "http": {"status": 403},
        },
    ]
}


def test_declarative_mapping_builds_events():
    first, second = parse_all("mapping", json.dumps(DOC).replace('"format"', '"x"'), mapping=BILLING)
    assert first["time"] == "2023-11-14T22:13:20.123000Z" and first["id"] == "billing:x1"
    assert (first["category"], first["action"], first["outcome"]) == (
        "data_access",
        "invoice.read",
        "success",
    )
    assert first["actor"] == {"id": "ann@example.com", "ip": "192.0.2.1", "type": "user"}
    assert first["request"] == {"status": 200} and first["target"] == {"name": "inv-1"}
    assert first["source"] == {"component": "billing-api", "kind": "app", "format": "mapping"}
    assert first["attributes"] == {"note": "kept", "billing.plan": "pro"}
    assert second["outcome"] == "failure", "no outcome mapped: derived from the HTTP status"


def test_compiled_mapping_is_reusable_and_strptime_times_work():
    compiled = mapping.load_mapping(
        {
            "fields": {"time": "when", "action": "what", "actor.id": "who"},
            "constants": {
                "category": "admin",
                "outcome": "success",
                "source.component": "legacy",
                "source.kind": "app",
            },
            "time": {"format": "%d/%m/%Y %H:%M:%S", "timezone": "Europe/Paris"},
        }
    )
    (event,) = parse_all(
        "mapping",
        json.dumps({"when": "01/07/2024 12:00:00", "what": "user.ban", "who": "ops"}),
        mapping=compiled,
    )
    assert event["time"] == "2024-07-01T10:00:00.000000Z"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"ts": 1, "type": "a.b", "result": "ok"}, "record has no actor.id"),
        ({"ts": 1, "type": "A B", "user": {"email": "x"}}, "action"),
        ({"ts": "soon", "type": "a", "result": "ok", "user": {"email": "x"}}, "not a number"),
        ({"ts": [1], "type": "a", "result": "ok", "user": {"email": "x"}}, "not a number"),  # crashed
        ({"ts": 1, "type": "a", "user": {"email": "x"}, "http": {"status": 1000}}, "request.status"),
    ],
)
def test_records_that_cannot_be_mapped_are_rejected_with_a_reason(record, reason):
    events, rejected = mapping.parse_batch(json.dumps({"events": [record]}).encode(), mapping=BILLING)
    assert events == [] and reason in rejected[0][1]


@pytest.mark.parametrize(
    "spec",
    [
        '[fields]\n"actor.nope" = "x"',
        "[bogus]\n",
        '[fields]\ntime = "a..b"',
        "not toml =",
        '[constants]\ncategory = "nope"',
    ],
)
def test_invalid_mappings_fail_at_load(spec):
    with pytest.raises(mapping.MappingError):
        mapping.load_mapping(spec)


def test_mapping_is_required():
    with pytest.raises(FormatError, match="needs ctx"):
        mapping.parse(b"{}")


def test_a_used_compiled_mapping_still_pickles_and_maps_the_same():
    import pickle

    compiled = mapping.load_mapping(BILLING)
    raw = json.dumps(DOC).encode()
    events = mapping.parse_batch(raw, mapping=compiled)
    assert mapping.parse_batch(raw, mapping=pickle.loads(pickle.dumps(compiled))) == events


@pytest.mark.parametrize(
    ("ctx", "record", "reason"),
    [
        ({}, {"m": "M" * 40}, "request.method is 40 characters; the limit is 32"),
        ({"component": "c" * 1100}, {}, "source.component is 1100 characters; the limit is 1024"),
    ],
)
def test_values_the_field_checks_let_through_still_meet_the_schema_limits(ctx, record, reason):
    spec = BILLING.replace('id = "event_id"', 'id = "event_id"\n"request.method" = "m"')
    doc = {"events": [{**DOC["events"][0], **record}]}
    events, rejected = mapping.parse_batch(json.dumps(doc).encode(), mapping=spec, **ctx)
    assert events == [] and rejected == [(0, reason)]


def test_a_mapping_built_directly_has_its_constants_checked_per_record():
    compiled = mapping.load_mapping(BILLING)
    direct = mapping.Mapping(
        fields=compiled.fields,
        constants={**compiled.constants, "actor.name": "n" * 1100},
        defaults={},
        values=compiled.values,
        attributes={},
        records_path=compiled.records_path,
        time_format="unix_ms",
    )
    events, rejected = mapping.parse_batch(json.dumps(DOC).encode(), mapping=direct)
    assert events == [] and rejected[0] == (0, "actor.name is 1100 characters; the limit is 1024")

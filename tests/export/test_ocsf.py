"""OCSF and ECS mappings: every kind of event maps to a class, and every record passes the OCSF 1.8.0
schema's required-field, type and enum checks (the vendored schema, see build_ocsf_schema.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.export.conftest import KINDS, varied_event
from tests.export.ocsf_schema import validate
from trailseal.event import CATEGORIES, OUTCOMES, SEVERITIES
from trailseal.query import ecs, ocsf
from trailseal.query.export import export_to

EXPECTED_CLASS = {
    "user.login": 3002,
    "user.logout": 3002,
    "session.start": 3002,
    "user.password.reset": 3001,
    "user.create": 3001,
    "user.mfa.disable": 3001,
    "user.role.grant": 3005,
    "policy.revoke": 3005,
    "access.check": 6003,
    "db.query": 6005,
    "db.insert": 6005,
    "http.request": 6001,
    "k8s.secrets.get": 6003,
    "k8s.configmaps.update": 6003,
    "s3.bucket.delete": 6003,
    "service.restart": 6002,
    "disk.full": 6002,
    "alert.raised": 2004,
    "finding.close": 2004,
}
ECS_CATEGORIES = {
    "api",
    "authentication",
    "configuration",
    "database",
    "host",
    "iam",
    "intrusion_detection",
    "session",
    "vulnerability",
    "web",
}
ECS_TYPES = {
    "access",
    "admin",
    "allowed",
    "change",
    "creation",
    "deletion",
    "denied",
    "end",
    "info",
    "start",
    "user",
}


def readable(i: int) -> dict:
    event = varied_event(i)
    event.update(log="default", index=i, received=event["time"], severity=event.get("severity", "info"))
    return event


@pytest.mark.parametrize("i", range(len(KINDS)))
def test_every_kind_maps_to_its_class_and_validates(i):
    event = readable(i)
    record = ocsf.compact(ocsf.to_ocsf(event))
    assert record["class_uid"] == EXPECTED_CLASS[event["action"]]
    assert record["type_uid"] == record["class_uid"] * 100 + record["activity_id"]
    assert validate(record) == []
    assert record["metadata"]["uid"] == event["id"] and record["metadata"]["sequence"] == i


def test_activities_follow_the_action():
    by_action = {readable(i)["action"]: ocsf.to_ocsf(readable(i)) for i in range(len(KINDS))}
    assert by_action["user.login"]["activity_name"] == "Logon"
    assert by_action["user.logout"]["activity_name"] == "Logoff"
    assert by_action["user.password.reset"]["activity_name"] == "Password Reset"
    assert by_action["user.mfa.disable"]["activity_name"] == "MFA Factor Disable"
    assert by_action["user.role.grant"]["activity_name"] == "Assign Privileges"
    assert by_action["policy.revoke"]["activity_name"] == "Revoke Privileges"
    assert by_action["service.restart"]["activity_name"] == "Restart"
    assert by_action["finding.close"]["activity_name"] == "Close"
    assert by_action["http.request"]["activity_name"] == "Create"  # POST


def test_the_validator_catches_what_it_checks():
    record = ocsf.compact(ocsf.to_ocsf(readable(0)))
    broken = {**record, "type_uid": 1, "severity_id": 42, "bogus": 1}
    del broken["user"]
    problems = " | ".join(validate(broken))
    for needle in ("type_uid", "severity_id: 42", "bogus", "user: required"):
        assert needle in problems


events_strategy = st.fixed_dictionaries(
    {
        "id": st.text("abcdef0123", min_size=1, max_size=8),
        "time": st.just("2026-11-01T00:00:00.000000Z"),
        "category": st.sampled_from(CATEGORIES),
        "outcome": st.sampled_from(OUTCOMES),
        "severity": st.sampled_from(SEVERITIES),
        "action": st.lists(
            st.sampled_from(
                [
                    "user",
                    "login",
                    "db",
                    "http",
                    "role",
                    "grant",
                    "delete",
                    "x",
                    "mfa",
                    "start",
                    "get",
                    "close",
                    "password",
                ]
            ),
            min_size=1,
            max_size=4,
        ).map(".".join),
        "actor": st.fixed_dictionaries(
            {"id": st.text(min_size=1, max_size=5)},
            optional={
                "ip": st.just("10.0.0.1"),
                "session": st.just("s1"),
                "type": st.sampled_from(["user", "service", "system", "anonymous"]),
            },
        ),
        "source": st.fixed_dictionaries(
            {
                "component": st.sampled_from(["web", "pg"]),
                "kind": st.sampled_from(["app", "database", "scanner", "kubernetes"]),
            },
            optional={"host": st.just("h1")},
        ),
    },
    optional={
        "request": st.fixed_dictionaries(
            {},
            optional={
                "method": st.sampled_from(["GET", "DELETE"]),
                "path": st.just("/a"),
                "status": st.just(404),
            },
        ),
        "target": st.fixed_dictionaries(
            {}, optional={"type": st.sampled_from(["user", "table", "database"]), "id": st.just("t1")}
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(events_strategy)
def test_any_event_gives_a_valid_ocsf_record_and_ecs_values(event):
    record = ocsf.compact(ocsf.to_ocsf(event, "default", 7))
    assert validate(record) == []
    assert ocsf.to_ocsf(event, "default", 7) == ocsf.to_ocsf(dict(event), "default", 7)  # deterministic
    document = ecs.to_ecs(event, "default", 7)
    assert set(document["event"]["category"]) <= ECS_CATEGORIES
    assert set(document["event"]["type"]) <= ECS_TYPES
    assert document["event"]["outcome"] in ("success", "failure", "unknown")


def test_parquet_export_is_one_class_per_file_and_every_row_validates(trail, tmp_path):
    result = export_to(trail, "log:default", "ocsf-parquet", tmp_path / "lake")
    assert result.rows == 381 and len(result.files) == len(result.classes) >= 7
    total = 0
    for path in result.files:
        table = pq.read_table(path)
        uid = int(path.name.split("_")[0])
        assert path.name == ocsf.file_stem(uid) + ".parquet"
        for row in table.to_pylist():
            assert row["class_uid"] == uid
            row["unmapped"] = dict(row["unmapped"] or [])
            assert validate(ocsf.compact(row)) == [], path.name
            assert json.loads(row["unmapped"]["trailseal.index"]) == row["metadata"]["sequence"]
        total += table.num_rows
    assert total == result.rows == sum(result.classes.values())


def test_ocsf_json_export_validates_line_by_line(trail, tmp_path):
    result = export_to(trail, "", "ocsf", tmp_path / "ocsf")
    for path in result.files:
        lines = path.read_text().splitlines()
        assert lines and all(validate(json.loads(line)) == [] for line in lines)
        assert {json.loads(line)["class_uid"] for line in lines} == {int(path.name.split("_")[0])}


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)))
def test_millis_of_sealed_times_equals_the_full_parse(moment):
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    expected = (moment - datetime(1970, 1, 1)) // timedelta(milliseconds=1)  # exact, no float
    assert ocsf.millis(stamp) == expected
    assert ocsf.millis("2026-11-01T00:00:00.5+01:00") == 1793487600500

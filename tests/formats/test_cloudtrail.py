from __future__ import annotations

import json

import pytest

from tests.formats.cases import LOGS
from trailseal.formats import FormatError, cloudtrail

from .helpers import parse_all, parse_one


def record(**over) -> dict:
    base = {
        "eventVersion": "1.08",
        "eventTime": "2024-01-02T03:04:05Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "eventID": "e-1",
        "sourceIPAddress": "198.51.100.1",
        "userAgent": "cli",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDA1",
            "arn": "arn:aws:iam::1:user/ann",
            "userName": "ann",
        },
    }
    base.update(over)
    return base


def one(**over) -> dict:
    return parse_one("cloudtrail", json.dumps(record(**over)))


def test_action_is_service_and_snake_case_event_name():
    assert (
        one(eventSource="iam.amazonaws.com", eventName="CreateAccessKey")["action"]
        == "aws.iam.create_access_key"
    )
    assert one(eventName="GetBucketACL")["action"] == "aws.s3.get_bucket_acl"


def test_id_dedupes_on_event_id_and_actor_comes_from_user_identity():
    event = one()
    assert event["id"] == "cloudtrail:e-1"
    assert event["actor"] == {
        "id": "AIDA1",
        "type": "user",
        "name": "ann",
        "ip": "198.51.100.1",
        "user_agent": "cli",
    }
    assert event["attributes"]["aws.event_name"] == "GetObject"


@pytest.mark.parametrize(
    ("over", "outcome"),
    [
        ({}, "success"),
        ({"errorCode": "AccessDenied", "errorMessage": "no"}, "failure"),
        ({"errorCode": "Server.InternalError"}, "error"),
        ({"errorCode": "ServiceUnavailable"}, "error"),
        ({"errorCode": {"code": "x"}}, "failure"),  # an object here crashed the set lookup
        ({"eventName": "ConsoleLogin", "responseElements": {"ConsoleLogin": "Failure"}}, "failure"),
    ],
)
def test_outcome(over, outcome):
    assert one(**over)["outcome"] == outcome


@pytest.mark.parametrize(
    ("over", "category"),
    [
        ({"readOnly": True}, "data_access"),
        ({"eventName": "PutObject", "eventCategory": "Data"}, "data_change"),
        ({"eventSource": "iam.amazonaws.com", "eventName": "AttachRolePolicy"}, "authorization"),
        ({"eventSource": "iam.amazonaws.com", "eventName": "CreateUser"}, "account"),
        ({"eventSource": "sts.amazonaws.com", "eventName": "AssumeRole"}, "authentication"),
        ({"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances"}, "config"),
        (
            {
                "eventType": "AwsConsoleSignIn",
                "eventSource": "signin.amazonaws.com",
                "eventName": "ConsoleLogin",
            },
            "authentication",
        ),
    ],
)
def test_category(over, category):
    assert one(**over)["category"] == category


def test_aws_service_actor_and_non_ip_source_address():
    event = one(
        userIdentity={"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
        sourceIPAddress="lambda.amazonaws.com",
    )
    assert event["actor"]["id"] == "lambda.amazonaws.com" and event["actor"]["type"] == "service"
    assert "ip" not in event["actor"] and event["attributes"]["client.address"] == "lambda.amazonaws.com"


def test_assumed_role_name_is_the_role():
    identity = {
        "type": "AssumedRole",
        "principalId": "AROA1:sess",
        "arn": "arn:aws:sts::1:assumed-role/ops/sess",
        "sessionContext": {"sessionIssuer": {"userName": "ops"}},
    }
    assert one(userIdentity=identity)["actor"] == {
        "id": "AROA1:sess",
        "type": "user",
        "name": "ops",
        "ip": "198.51.100.1",
        "user_agent": "cli",
    }


def test_resources_give_the_target():
    event = one(resources=[{"ARN": "arn:aws:s3:::b/k", "type": "AWS::S3::Object"}])
    assert event["target"] == {"type": "AWS::S3::Object", "id": "arn:aws:s3:::b/k"}


def test_eventbridge_envelope_and_records_file():
    assert (
        parse_one(
            "cloudtrail", json.dumps({"detail-type": "AWS API Call via CloudTrail", "detail": record()})
        )["id"]
        == "cloudtrail:e-1"
    )
    assert len(parse_all("cloudtrail", json.dumps({"Records": [record(), record(eventID="e-2")]}))) == 2


def test_one_bad_record_is_reported_by_index_and_the_rest_kept():
    events, rejected = cloudtrail.parse_batch(
        json.dumps({"Records": [record(), {"eventTime": "x"}]}).encode()
    )
    assert len(events) == 1 and rejected[0][0] == 1
    with pytest.raises(FormatError, match="1 of 2 records rejected; record 1"):
        cloudtrail.parse(json.dumps({"Records": [record(), {"eventTime": "x"}]}).encode())


def test_digest_file_is_rejected_as_not_events():
    with pytest.raises(FormatError, match="digest file"):
        cloudtrail.parse((LOGS / "cloudtrail_digest_awsdocs.json").read_bytes())


@pytest.mark.parametrize(
    ("event_id", "kept"), [("x" * 100, True), ("x" * 101, False), ("e 1", False), ("é", False), ("", False)]
)
def test_event_id_is_printable_ascii_without_spaces(event_id, kept):
    assert ("id" in one(eventID=event_id)) is kept


def test_attributes_skip_nulls_and_the_fields_the_event_takes():
    attributes = one(awsRegion="us-east-1", requestParameters=None)["attributes"]
    assert list(attributes) == [
        "aws.event_version",
        "aws.event_source",
        "aws.event_name",
        "aws.event_id",
        "aws.user_identity",
        "aws.region",
    ]


def test_an_address_too_long_for_actor_ip_rejects_the_record():
    with pytest.raises(FormatError, match="actor.ip is 1200 characters"):
        cloudtrail.parse(json.dumps(record(sourceIPAddress="1:" * 600)).encode())

from __future__ import annotations

import json

import pytest

from trailseal.formats import FormatError, k8s_audit

from .helpers import parse_all, parse_one


def audit(**over) -> dict:
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "a-1",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/prod/secrets/db",
        "verb": "get",
        "user": {"username": "ann", "groups": ["dev", "system:authenticated"]},
        "sourceIPs": ["192.0.2.1"],
        "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2024-01-01T00:00:00.000001Z",
        "stageTimestamp": "2024-01-01T00:00:00.5Z",
    }
    event.update(over)
    return event


def one(**over) -> dict:
    return parse_one("k8s_audit", json.dumps(audit(**over)))


@pytest.mark.parametrize(
    ("verb", "ref", "action", "category"),
    [
        ("get", {"resource": "secrets"}, "k8s.secrets.get", "data_access"),
        ("create", {"resource": "pods", "subresource": "exec"}, "k8s.pods.exec", "session"),
        ("get", {"resource": "pods", "subresource": "portforward"}, "k8s.pods.portforward", "session"),
        ("patch", {"resource": "pods", "subresource": "status"}, "k8s.pods.status.patch", "config"),
        ("get", {"resource": "pods", "subresource": "log"}, "k8s.pods.log.get", "data_access"),
        ("create", {"resource": "clusterrolebindings"}, "k8s.clusterrolebindings.create", "authorization"),
        (
            "create",
            {"resource": "serviceaccounts", "subresource": "token"},
            "k8s.serviceaccounts.token.create",
            "account",
        ),
        (
            "create",
            {"resource": "selfsubjectrulesreviews"},
            "k8s.selfsubjectrulesreviews.create",
            "authorization",
        ),
        ("impersonate", {"resource": "users"}, "k8s.users.impersonate", "authorization"),
        ("delete", {"resource": "deployments"}, "k8s.deployments.delete", "config"),
    ],
)
def test_action_and_category_rules(verb, ref, action, category):
    assert (k8s_audit.action_for(verb, ref), k8s_audit.category_for(verb, ref)) == (action, category)


def test_non_resource_request():
    event = one(objectRef=None, requestURI="/healthz")
    assert event["action"] == "k8s.nonresource.get" and "target" not in event


def test_a_request_uri_that_is_not_text_is_left_out():
    event = one(requestURI=2**60)  # it crashed the length check before
    assert event["request"] == {"status": 200}


def test_an_object_ref_resource_that_is_not_text_is_no_resource():
    event = one(objectRef={"resource": ["pods"], "subresource": {"x": 1}})  # crashed the set lookups
    assert (event["action"], event["category"]) == ("k8s.nonresource.get", "data_access")


def test_event_fields():
    event = one()
    assert event["id"] == "k8s:a-1:ResponseComplete"
    assert event["time"] == "2024-01-01T00:00:00.500000Z"
    assert event["actor"] == {
        "id": "ann",
        "type": "user",
        "roles": ["dev", "system:authenticated"],
        "ip": "192.0.2.1",
    }
    assert event["target"] == {"type": "secrets", "name": "prod/db"}
    assert event["request"] == {"path": "/api/v1/namespaces/prod/secrets/db", "status": 200}
    assert event["attributes"]["k8s.namespace"] == "prod" and event["attributes"]["k8s.verb"] == "get"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (200, "success"),
        (101, "success"),
        (401, "failure"),
        (403, "failure"),
        (404, "failure"),
        (500, "error"),
    ],
)
def test_outcome_from_response_code(code, outcome):
    assert one(responseStatus={"code": code})["outcome"] == outcome


def test_forbidden_carries_the_reason_and_stages_have_distinct_ids():
    event = one(responseStatus={"code": 403, "reason": "Forbidden", "message": "secrets is forbidden"})
    assert event["reason"] == "secrets is forbidden"
    assert one(stage="RequestReceived", responseStatus=None)["outcome"] == "unknown"
    assert one(stage="RequestReceived")["id"] != one()["id"]


@pytest.mark.parametrize(
    ("username", "kind"),
    [
        ("system:anonymous", "anonymous"),
        ("system:serviceaccount:kube-system:x", "service"),
        ("system:node:n1", "system"),
        ("ann@example.com", "user"),
    ],
)
def test_actor_type(username, kind):
    assert one(user={"username": username})["actor"]["type"] == kind


def test_impersonation_keeps_the_real_user_as_actor():
    event = one(impersonatedUser={"username": "admin"})
    assert event["actor"]["id"] == "ann"
    assert event["attributes"]["k8s.impersonated_user"] == {"username": "admin"}


def test_source_ips_chain_uses_trusted_proxies():
    assert one(sourceIPs=["203.0.113.1", "10.0.0.1"])["actor"]["ip"] == "10.0.0.1"
    event = parse_one(
        "k8s_audit", json.dumps(audit(sourceIPs=["203.0.113.1", "10.0.0.1"])), trusted_proxies=["10.0.0.0/8"]
    )
    assert event["actor"]["ip"] == "203.0.113.1"


def test_secret_values_in_request_objects_are_omitted():
    body = {"kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}}
    event = one(verb="create", requestObject=body)
    assert event["attributes"]["k8s.request_object"]["data"] == {"password": "[omitted]"}
    big = one(verb="create", objectRef={"resource": "configmaps"}, requestObject={"data": {"x": "y" * 20000}})
    assert "omitted" in big["attributes"]["k8s.request_object"]


def test_event_list_and_per_item_rejections():
    doc = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": [audit(), audit(auditID="a-2"), {"x": 1}],
    }
    events, rejected = k8s_audit.parse_batch(json.dumps(doc).encode())
    assert [e["id"] for e in events] == ["k8s:a-1:ResponseComplete", "k8s:a-2:ResponseComplete"]
    assert rejected == [(2, "audit Event has no auditID")]
    assert len(parse_all("k8s_audit", json.dumps({**doc, "items": doc["items"][:2]}))) == 2


@pytest.mark.parametrize(
    "doc", [audit(apiVersion="v1", kind="Pod"), audit(user={}), audit(auditID="a b"), [1]]
)
def test_not_audit_events_are_rejected(doc):
    with pytest.raises(FormatError):
        k8s_audit.parse(json.dumps(doc).encode())

"""Builders for sealed events as trailseal's formats produce them, and rule loading helpers."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection

from trailseal.detect import Engine
from trailseal.detect.testing import sealed_view

SIGMA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "sigma"
LOGS_DIR = SIGMA_DIR.parent / "logs"
T0 = "2026-03-02T10:00:00.000000Z"
_counter = itertools.count()


@pytest.fixture(scope="session")
def sigma_dir() -> Path:
    """The SigmaHQ sample; missing means a broken checkout, never a skip."""
    if not (SIGMA_DIR / "rules").is_dir():
        pytest.fail(f"SigmaHQ rule sample not found at {SIGMA_DIR}")
    return SIGMA_DIR


def seal(record: dict) -> dict:
    """A record validated against schema v1 and shaped as detection sees it."""
    record.setdefault("time", T0)
    record.setdefault("received", record["time"])
    return sealed_view(record, next(_counter))


def event(
    action: str = "user.login",
    outcome: str = "success",
    category: str = "authentication",
    actor: dict | None = None,
    source: dict | None = None,
    **extra,
) -> dict:
    """A native trailseal event."""
    return seal(
        {
            "category": category,
            "action": action,
            "outcome": outcome,
            "actor": actor or {"id": "alice", "ip": "198.51.100.7"},
            "source": source or {"component": "shop-api", "kind": "app"},
            **extra,
        }
    )


def web(
    path: str = "/index.html",
    method: str = "GET",
    status: int = 200,
    agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
    ip: str = "203.0.113.9",
    component: str = "nginx",
    kind: str = "gateway",
    attributes: dict | None = None,
    **extra,
) -> dict:
    """An http.request event as the access-log format writes it."""
    actor = {"id": "-", "type": "anonymous", "ip": ip}
    if agent is not None:
        actor["user_agent"] = agent
    return seal(
        {
            "category": "data_access",
            "action": "http.request",
            "outcome": "failure" if status in (401, 403) else "success",
            "actor": actor,
            "source": {"component": component, "kind": kind, "format": "access_log"},
            "request": {"method": method, "path": path, "status": status},
            "attributes": {"http.request_line": f"{method} {path} HTTP/1.1", **(attributes or {})},
            **extra,
        }
    )


def k8s(
    verb: str,
    resource: str,
    subresource: str | None = None,
    user: str = "alice",
    code: int = 200,
    uri: str | None = None,
    agent: str = "kubectl/v1.30.0",
    api_group: str | None = None,
    extra_attributes: dict | None = None,
    **extra,
) -> dict:
    """A Kubernetes audit event with the original audit fields kept in attributes."""
    object_ref = {"resource": resource, "namespace": "default", "name": "obj-1"}
    if subresource:
        object_ref["subresource"] = subresource
    if api_group:
        object_ref["apiGroup"] = api_group
    action = ".".join(["k8s", resource] + ([subresource] if subresource else []) + [verb])
    anonymous = user == "system:anonymous"
    return seal(
        {
            "category": "data_access",
            "action": action,
            "outcome": "success" if code < 400 else "failure",
            "actor": {
                "id": user,
                "type": "anonymous" if anonymous else "user",
                "ip": "192.168.99.1",
                "user_agent": agent,
            },
            "source": {"component": "kube-apiserver", "kind": "kubernetes", "format": "k8s_audit"},
            "target": {"type": resource, "name": "obj-1"},
            "request": {"path": uri or f"/api/v1/namespaces/default/{resource}", "status": code},
            "attributes": {
                "verb": verb,
                "objectRef": object_ref,
                "user": {"username": user, "groups": ["system:authenticated"]},
                "sourceIPs": ["192.168.99.1"],
                "userAgent": agent,
                "responseStatus": {"code": code},
                "requestURI": uri or f"/api/v1/namespaces/default/{resource}",
                **(extra_attributes or {}),
            },
            **extra,
        }
    )


def cloudtrail(
    event_name: str, event_source: str = "signin.amazonaws.com", outcome: str = "success", **record
) -> dict:
    """A CloudTrail record with its original fields kept in attributes."""
    identity = record.pop(
        "userIdentity", {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/bob", "userName": "bob"}
    )
    return seal(
        {
            "category": "authentication" if event_name == "ConsoleLogin" else "config",
            "action": f"aws.{event_source.split('.')[0]}.{event_name.lower()}",
            "outcome": outcome,
            "actor": {
                "id": identity.get("arn", "unknown"),
                "ip": record.get("sourceIPAddress", "198.51.100.1"),
            },
            "source": {"component": "cloudtrail", "kind": "cloud", "format": "cloudtrail"},
            "attributes": {
                "eventName": event_name,
                "eventSource": event_source,
                "userIdentity": identity,
                "eventType": "AwsApiCall",
                **record,
            },
        }
    )


def okta(event_type: str, message: str = "", **record) -> dict:
    """An Okta System Log event, original fields in attributes."""
    return seal(
        {
            "category": "authentication",
            "action": "okta." + event_type.replace("_", "-"),
            "outcome": "success",
            "actor": {"id": "bob@example.com"},
            "source": {"component": "okta", "kind": "cloud", "format": "okta"},
            "attributes": {"eventType": event_type, "displayMessage": message, **record},
        }
    )


def engine_for(text: str, **options) -> Engine:
    """An engine for rules given inline as YAML."""
    return Engine(SigmaCollection.from_yaml(text), **options)


def rule_yaml(detection: str, logsource: str = "product: trailseal", extra: str = "") -> str:
    """A single-rule YAML document around a detection block."""
    body = "\n".join("    " + line for line in detection.strip().splitlines())
    return (
        f"title: t\nid: 5e0d1d2a-0000-4000-8000-000000000001\nstatus: test\nlevel: low\n"
        f"author: tester\nlogsource:\n    {logsource}\n{extra}detection:\n{body}\n"
    )

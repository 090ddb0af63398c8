"""Every trailseal event as an Elastic Common Schema (ECS 8.17) document, deterministically.

ECS has no home for the target, the attributes or the sealed location, so they go under the custom
``trailseal.*`` namespace (ECS's advice for custom fields).
"""

from __future__ import annotations

from typing import Any

ECS_VERSION = "8.17.0"
SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
START_WORDS = frozenset({"login", "logon", "signin", "start", "open", "connect"})
END_WORDS = frozenset({"logout", "logoff", "signout", "end", "close", "expire", "disconnect"})
CHANGE_TYPES = {"create": "creation", "add": "creation", "delete": "deletion", "remove": "deletion"}


def event_fields(event: dict[str, Any]) -> dict[str, Any]:
    """ECS ``event.kind``, ``event.category`` and ``event.type`` (ECS allowed values only)."""
    category = event.get("category")
    words = set((event.get("action") or "").split("."))
    kind = "alert" if category == "finding" else "event"
    if category in ("authentication", "session"):
        moment = "start" if words & START_WORDS else "end" if words & END_WORDS else "info"
        return {"kind": kind, "category": [category], "type": [moment]}
    if category in ("account", "admin"):
        change = next((CHANGE_TYPES[w] for w in words if w in CHANGE_TYPES), "change")
        return {
            "kind": kind,
            "category": ["iam"],
            "type": ["user" if category == "account" else "admin", change],
        }
    if category == "authorization":
        return {
            "kind": kind,
            "category": ["iam"],
            "type": ["access", "allowed" if event.get("outcome") == "success" else "denied"],
        }
    if category == "config":
        return {"kind": kind, "category": ["configuration"], "type": ["change"]}
    if category == "system":
        return {"kind": kind, "category": ["host"], "type": ["info"]}
    if category == "finding":
        scanner = (event.get("source") or {}).get("kind") in ("scanner", "iast")
        return {
            "kind": kind,
            "category": ["vulnerability" if scanner else "intrusion_detection"],
            "type": ["info"],
        }
    return {
        "kind": kind,
        "category": [_data_category(event, words)],
        "type": ["change" if category == "data_change" else "access"],
    }


def _data_category(event: dict, words: set[str]) -> str:
    if (event.get("source") or {}).get("kind") == "database" or words & {"db", "sql", "query"}:
        return "database"
    if "http" in words or (event.get("request") or {}).get("method"):
        return "web"
    return "api"


def to_ecs(event: dict[str, Any], log: str | None = None, index: int | None = None) -> dict[str, Any]:
    """One ECS document (without empty fields) for an event as read (vault values joined)."""
    actor, source = event.get("actor") or {}, event.get("source") or {}
    request, target = event.get("request") or {}, event.get("target") or {}
    log = log if log is not None else event.get("log")
    index = index if index is not None else event.get("index")
    outcome = event.get("outcome")
    doc = {
        "@timestamp": event.get("time"),
        "ecs": {"version": ECS_VERSION},
        "event": {
            **event_fields(event),
            "id": event.get("id"),
            "action": event.get("action"),
            "outcome": "success"
            if outcome == "success"
            else "unknown"
            if outcome == "unknown"
            else "failure",
            "reason": event.get("reason"),
            "severity": SEVERITY.get(event.get("severity") or "info"),
            "created": event.get("received"),
            "dataset": f"trailseal.{log}" if log else None,
            "provider": source.get("component"),
            "sequence": index,
            "hash": event.get("raw_hash"),
        },
        "log": {"level": event.get("severity")},
        "user": {"id": actor.get("id"), "name": actor.get("name"), "roles": actor.get("roles")},
        "source": {"ip": actor.get("ip")},
        "user_agent": {"original": actor.get("user_agent")},
        "host": {"name": source.get("host"), "ip": [source["ip"]] if source.get("ip") else None},
        "service": {"name": source.get("component"), "type": source.get("kind")},
        "http": {
            "request": {"method": request.get("method")},
            "response": {"status_code": request.get("status"), "bytes": request.get("bytes")},
        },
        "url": {"path": request.get("path")},
        "trace": {"id": request.get("trace_id")},
        "span": {"id": request.get("span_id")},
        "labels": {"session_id": actor.get("session"), "actor_type": actor.get("type")},
        "trailseal": {
            "log": log,
            "index": index,
            "category": event.get("category"),
            "target": target or None,
            "source": {"format": source.get("format"), "endpoint": source.get("endpoint")},
            "attributes": event.get("attributes") or None,
        },
    }
    if event.get("category") == "finding":
        attributes = event.get("attributes") or {}
        doc["rule"] = {
            "id": attributes.get("rule_id"),
            "name": attributes.get("title") or attributes.get("rule"),
        }
    return _prune(doc)


def _prune(value: Any) -> Any:
    """Drop None values and objects left empty."""
    if isinstance(value, dict):
        kept = {k: _prune(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v not in ({}, [])}
    return value

"""Every trailseal event as one OCSF 1.8.0 event: a deterministic class, activity and field mapping.

The class comes from the category first, then the action and the source (see ``class_of``);
``type_uid = class_uid * 100 + activity_id``. Each record has the same keys for its class (None where
the event has no value), so Parquet files get one fixed schema per class; ``compact`` drops the
Nones for JSON. What has no OCSF home (target, attributes, the sealed location) goes in ``unmapped``
as JSON strings, the way AWS Security Lake keeps it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from trailseal import __version__

OCSF_VERSION = "1.8.0"
CLASSES = {
    2004: ("Detection Finding", 2, "Findings"),
    3001: ("Account Change", 3, "Identity & Access Management"),
    3002: ("Authentication", 3, "Identity & Access Management"),
    3005: ("User Access Management", 3, "Identity & Access Management"),
    6001: ("Web Resources Activity", 6, "Application Activity"),
    6002: ("Application Lifecycle", 6, "Application Activity"),
    6003: ("API Activity", 6, "Application Activity"),
    6005: ("Datastore Activity", 6, "Application Activity"),
}
# class -> (verb in the action -> activity id); 99 Other when no verb matches
ACTIVITIES: dict[int, dict[str, int]] = {
    2004: {"create": 1, "open": 1, "update": 2, "close": 3, "resolve": 3},
    3001: {
        "create": 1,
        "enable": 2,
        "password": 3,
        "reset": 4,
        "disable": 5,
        "delete": 6,
        "attach": 7,
        "detach": 8,
        "lock": 9,
        "mfa_enable": 10,
        "mfa_disable": 11,
        "unlock": 12,
    },
    3002: {
        "login": 1,
        "logon": 1,
        "signin": 1,
        "sign_in": 1,
        "auth": 1,
        "authenticate": 1,
        "start": 1,
        "logout": 2,
        "logoff": 2,
        "signout": 2,
        "sign_out": 2,
        "end": 2,
        "expire": 2,
        "ticket": 3,
    },
    3005: {
        "grant": 1,
        "assign": 1,
        "add": 1,
        "attach": 1,
        "revoke": 2,
        "remove": 2,
        "detach": 2,
        "unassign": 2,
    },
    6001: {
        "post": 1,
        "put": 3,
        "patch": 3,
        "get": 2,
        "head": 2,
        "delete": 4,
        "create": 1,
        "read": 2,
        "update": 3,
        "search": 5,
        "import": 6,
        "export": 7,
        "share": 8,
    },
    6002: {
        "install": 1,
        "remove": 2,
        "uninstall": 2,
        "start": 3,
        "stop": 4,
        "restart": 5,
        "enable": 6,
        "disable": 7,
        "update": 8,
        "upgrade": 8,
    },
    6003: {
        "create": 1,
        "post": 1,
        "add": 1,
        "get": 2,
        "list": 2,
        "read": 2,
        "watch": 2,
        "describe": 2,
        "update": 3,
        "patch": 3,
        "put": 3,
        "set": 3,
        "modify": 3,
        "delete": 4,
        "remove": 4,
    },
    6005: {
        "read": 1,
        "select": 1,
        "get": 1,
        "update": 2,
        "connect": 3,
        "query": 4,
        "write": 5,
        "insert": 5,
        "put": 5,
        "create": 6,
        "delete": 7,
        "drop": 7,
        "list": 8,
        "encrypt": 9,
        "decrypt": 10,
    },
}
ACTIVITY_NAMES = {
    2004: {1: "Create", 2: "Update", 3: "Close"},
    3001: {
        1: "Create",
        2: "Enable",
        3: "Password Change",
        4: "Password Reset",
        5: "Disable",
        6: "Delete",
        7: "Attach Policy",
        8: "Detach Policy",
        9: "Lock",
        10: "MFA Factor Enable",
        11: "MFA Factor Disable",
        12: "Unlock",
    },
    3002: {1: "Logon", 2: "Logoff", 3: "Authentication Ticket"},
    3005: {1: "Assign Privileges", 2: "Revoke Privileges"},
    6001: {
        1: "Create",
        2: "Read",
        3: "Update",
        4: "Delete",
        5: "Search",
        6: "Import",
        7: "Export",
        8: "Share",
    },
    6002: {
        1: "Install",
        2: "Remove",
        3: "Start",
        4: "Stop",
        5: "Restart",
        6: "Enable",
        7: "Disable",
        8: "Update",
    },
    6003: {1: "Create", 2: "Read", 3: "Update", 4: "Delete"},
    6005: {
        1: "Read",
        2: "Update",
        3: "Connect",
        4: "Query",
        5: "Write",
        6: "Create",
        7: "Delete",
        8: "List",
        9: "Encrypt",
        10: "Decrypt",
    },
}
SEVERITY = {
    "info": (1, "Informational"),
    "low": (2, "Low"),
    "medium": (3, "Medium"),
    "high": (4, "High"),
    "critical": (5, "Critical"),
}
STATUS = {
    "success": (1, "Success"),
    "failure": (2, "Failure"),
    "error": (99, "Error"),
    "unknown": (0, "Unknown"),
}
USER_TYPE = {
    "user": (1, "User"),
    "service": (99, "Service"),
    "system": (3, "System"),
    "anonymous": (99, "Anonymous"),
}
PRIVILEGE_WORDS = frozenset(
    {"role", "roles", "privilege", "privileges", "permission", "permissions", "grant", "revoke", "policy"}
)
RELATIONAL = frozenset(
    {"postgres", "postgresql", "pgaudit", "mysql", "mariadb", "mssql", "sqlserver", "oracle", "sqlite"}
)
PRODUCT = {"name": "trailseal", "vendor_name": "trailseal", "version": __version__}  # shared, never changed
_json = msgspec.json.Encoder(order="sorted").encode


def class_of(event: dict[str, Any]) -> int:
    """The OCSF class_uid of an event: category first, then the action's words and the source kind."""
    category = event.get("category")
    words = set(event.get("action", "").split("."))
    if category == "finding":
        return 2004
    if category in ("authentication", "session"):
        return 3002
    if category == "account":
        return 3001
    if category in ("admin", "authorization") and words & PRIVILEGE_WORDS:
        return 3005
    if (event.get("source") or {}).get("kind") == "database" or words & {"db", "sql", "query", "datastore"}:
        return 6005
    if "http" in words or (event.get("request") or {}).get("method") and category != "config":
        return 6001
    if category == "system":
        return 6002
    return 6003


def activity_of(class_uid: int, event: dict[str, Any]) -> int:
    """The activity_id: the last word of the action the class knows (the HTTP method for web), else 99."""
    verbs = ACTIVITIES[class_uid]
    words = event.get("action", "").split(".")
    method = ((event.get("request") or {}).get("method") or "").lower()
    if class_uid == 6001 and method in verbs:
        return verbs[method]
    if class_uid == 3001 and "mfa" in words:
        words = [*words, "mfa_disable" if {"disable", "remove", "delete"} & set(words) else "mfa_enable"]
    for word in reversed(words):
        if word in verbs:
            return verbs[word]
    return 1 if class_uid == 2004 else 99  # a finding that is not an update or a close is a new one


def millis(stamp: str | None) -> int | None:
    """RFC 3339 (as sealed: UTC with Z) to epoch milliseconds, OCSF's timestamp_t."""
    if not stamp:
        return None
    if len(stamp) != 27 or stamp[-1] != "Z":  # not the sealed form YYYY-MM-DDTHH:MM:SS.ffffffZ
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    hour = _HOURS.get(stamp[:13])
    if hour is None:
        if len(_HOURS) > 100_000:
            _HOURS.clear()
        hour = _HOURS[stamp[:13]] = (
            int(datetime.fromisoformat(stamp[:13] + ":00:00+00:00").timestamp()) * 1000
        )
    return hour + int(stamp[14:16]) * 60_000 + int(stamp[17:19]) * 1000 + int(stamp[20:23])


_HOURS: dict[str, int] = {}  # "YYYY-MM-DDTHH" -> epoch ms: sealed times share their hour


def to_ocsf(event: dict[str, Any], log: str | None = None, index: int | None = None) -> dict[str, Any]:
    """One OCSF record (with Nones; see ``compact``) for an event as read (vault values joined)."""
    class_uid = class_of(event)
    activity_id = activity_of(class_uid, event)
    class_name, category_uid, category_name = CLASSES[class_uid]
    activity_name = ACTIVITY_NAMES[class_uid].get(activity_id, "Other")
    severity_id, severity = SEVERITY.get(event.get("severity") or "info", SEVERITY["info"])
    status_id, status = STATUS.get(event.get("outcome") or "unknown", STATUS["unknown"])
    log = log if log is not None else event.get("log")
    index = index if index is not None else event.get("index")
    record = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "time": millis(event.get("time")),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "status_detail": event.get("reason"),
        "message": event.get("action"),
        "metadata": _metadata(event, log, index),
        "actor": _actor(event),
        "src_endpoint": _src_endpoint(event, class_uid),
        "dst_endpoint": _dst_endpoint(event),
        "unmapped": _unmapped(event, log, index),
    }
    record.update(class_fields(class_uid, event))
    for name in _NOT_IN_CLASS.get(class_uid, ()):
        del record[name]
    return record


def _metadata(event: dict, log: str | None, index: int | None) -> dict:
    source = event.get("source") or {}
    return {
        "version": OCSF_VERSION,
        "uid": event.get("id"),
        "log_name": log,
        "sequence": index,
        "logged_time": millis(event.get("received")),
        "original_time": event.get("time"),
        "event_code": event.get("action"),
        "log_provider": source.get("component"),
        "log_format": source.get("format"),
        "correlation_uid": (event.get("request") or {}).get("trace_id"),
        "product": PRODUCT,
    }


def _user(actor: dict | None) -> dict | None:
    if not actor or not actor.get("id"):
        return None
    type_id, type_name = USER_TYPE.get(actor.get("type") or "user", (0, "Unknown"))
    return {"uid": actor["id"], "name": actor.get("name"), "type_id": type_id, "type": type_name}


def _actor(event: dict) -> dict:
    actor = event.get("actor") or {}
    session = {"uid": actor["session"]} if actor.get("session") else None
    return {
        "user": _user(actor),
        "session": session,
        "app_name": (event.get("source") or {}).get("component") or "unknown",
    }


def _src_endpoint(event: dict, class_uid: int) -> dict | None:
    ip = (event.get("actor") or {}).get("ip")
    if ip:
        return {"ip": ip, "name": None}
    return {"ip": None, "name": "unknown"} if class_uid in (6003, 6005) else None


def _dst_endpoint(event: dict) -> dict | None:
    source = event.get("source") or {}
    if not (source.get("host") or source.get("ip")):
        return None
    return {"hostname": source.get("host"), "ip": source.get("ip"), "svc_name": source.get("component")}


def _http_request(event: dict) -> dict | None:
    request = event.get("request") or {}
    agent = (event.get("actor") or {}).get("user_agent")
    if not (request.get("method") or request.get("path") or agent):
        return None
    url = {"path": request["path"]} if request.get("path") else None
    return {"http_method": request.get("method"), "url": url, "user_agent": agent}


def _http_response(event: dict) -> dict | None:
    status = (event.get("request") or {}).get("status")
    return None if status is None else {"code": status}


def _unmapped(event: dict, log: str | None, index: int | None) -> dict[str, str]:
    """Fields with no OCSF home, each a JSON string (Security Lake keeps unmapped as map<string,string>)."""
    kept = {
        "trailseal.log": log,
        "trailseal.index": index,
        "category": event.get("category"),
        "source": event.get("source"),
        "target": event.get("target"),
        "attributes": event.get("attributes"),
        "raw_hash": event.get("raw_hash"),
        "actor.roles": (event.get("actor") or {}).get("roles"),
    }
    return {key: _json(value).decode() for key, value in kept.items() if value not in (None, {}, [])}


def _target_user(event: dict) -> dict | None:
    """The account acted on: the target when it is a user, else the actor themselves."""
    target = event.get("target") or {}
    if target.get("type") in ("user", "account") and target.get("id"):
        return {"uid": target["id"], "name": target.get("name"), "type_id": 1, "type": "User"}
    return _user(event.get("actor")) or {"uid": "unknown", "name": None, "type_id": 0, "type": "Unknown"}


def _authentication(event: dict) -> dict:
    session = (event.get("actor") or {}).get("session")
    return {
        "user": _target_user(event),
        "session": {"uid": session} if session else None,
        "http_request": _http_request(event),
    }


def _account_change(event: dict) -> dict:
    return {"user": _target_user(event)}


def _user_access(event: dict) -> dict:
    target = event.get("target") or {}
    privilege = target.get("name") or target.get("id") or event.get("action")
    attributes = event.get("attributes") or {}
    named = attributes.get("role") or attributes.get("privilege")
    return {"user": _target_user(event), "privileges": [str(named or privilege)]}


def _web(event: dict) -> dict:
    request = event.get("request") or {}
    target = event.get("target") or {}
    name = request.get("path") or target.get("name") or target.get("id") or event.get("action")
    return {
        "web_resources": [{"name": name, "uid": target.get("id"), "type": target.get("type")}],
        "http_request": _http_request(event),
        "http_response": _http_response(event),
    }


def _lifecycle(event: dict) -> dict:
    source = event.get("source") or {}
    return {"app": {"name": source.get("component") or "unknown", "vendor_name": None, "version": None}}


def _api(event: dict) -> dict:
    target = event.get("target") or {}
    resource = (
        {"uid": target.get("id"), "name": target.get("name"), "type": target.get("type")}
        if target.get("id") or target.get("name")
        else None
    )
    service = (event.get("source") or {}).get("component")
    return {
        "api": {"operation": event.get("action"), "service": {"name": service} if service else None},
        "resources": [resource] if resource else None,
        "http_request": _http_request(event),
        "http_response": _http_response(event),
    }


def _datastore(event: dict) -> dict:
    target = event.get("target") or {}
    source = event.get("source") or {}
    table = {"name": target.get("name") or target.get("id")} if target.get("type") == "table" else None
    database = None
    if target.get("type") == "database" and (target.get("id") or target.get("name")):
        relational = (source.get("format") or "").lower() in RELATIONAL
        database = {
            "name": target.get("name") or target.get("id"),
            "type_id": 1 if relational else 99,
            "type": "Relational" if relational else "Other",
        }
    return {
        "table": table if table and table["name"] else None,
        "database": database,
        "http_request": _http_request(event),
        "http_response": _http_response(event),
    }


def _finding(event: dict) -> dict:
    attributes = event.get("attributes") or {}
    rule = attributes.get("rule_id") or attributes.get("rule") or event.get("action")
    title = attributes.get("title") or attributes.get("rule_title") or event.get("action")
    return {
        "finding_info": {
            "uid": str(event.get("id")),
            "title": str(title),
            "desc": event.get("reason"),
            "types": [str(rule)],
        }
    }


_NOT_IN_CLASS = {
    2004: ("src_endpoint", "dst_endpoint"),
    3001: ("dst_endpoint",),
    3005: ("dst_endpoint",),
    6002: ("src_endpoint", "dst_endpoint"),
}
_CLASS_FIELDS = {
    2004: _finding,
    3001: _account_change,
    3002: _authentication,
    3005: _user_access,
    6001: _web,
    6002: _lifecycle,
    6003: _api,
    6005: _datastore,
}


def class_fields(class_uid: int, event: dict) -> dict:
    """The fields only records of this class have (see CLASS_SHAPE)."""
    return _CLASS_FIELDS[class_uid](event)


def compact(value: Any) -> Any:
    """The record without None values or empty objects (for OCSF JSON)."""
    if isinstance(value, dict):
        kept = {k: compact(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


# -- the fixed shape of each class's records, for Parquet (types as pyarrow names) -----------------
_USER = {"uid": "string", "name": "string", "type_id": "int32", "type": "string"}
_HTTP_REQUEST = {"http_method": "string", "url": {"path": "string"}, "user_agent": "string"}
COMMON_SHAPE: dict[str, Any] = {
    "class_uid": "int32",
    "class_name": "string",
    "category_uid": "int32",
    "category_name": "string",
    "activity_id": "int32",
    "activity_name": "string",
    "type_uid": "int64",
    "type_name": "string",
    "time": "int64",
    "severity_id": "int32",
    "severity": "string",
    "status_id": "int32",
    "status": "string",
    "status_detail": "string",
    "message": "string",
    "metadata": {
        "version": "string",
        "uid": "string",
        "log_name": "string",
        "sequence": "int64",
        "logged_time": "int64",
        "original_time": "string",
        "event_code": "string",
        "log_provider": "string",
        "log_format": "string",
        "correlation_uid": "string",
        "product": {"name": "string", "vendor_name": "string", "version": "string"},
    },
    "actor": {"user": _USER, "session": {"uid": "string"}, "app_name": "string"},
    "src_endpoint": {"ip": "string", "name": "string"},
    "dst_endpoint": {"hostname": "string", "ip": "string", "svc_name": "string"},
    "unmapped": "map",
}
CLASS_SHAPE: dict[int, dict[str, Any]] = {
    2004: {"finding_info": {"uid": "string", "title": "string", "desc": "string", "types": ["string"]}},
    3001: {"user": _USER},
    3002: {"user": _USER, "session": {"uid": "string"}, "http_request": _HTTP_REQUEST},
    3005: {"user": _USER, "privileges": ["string"]},
    6001: {
        "web_resources": [{"name": "string", "uid": "string", "type": "string"}],
        "http_request": _HTTP_REQUEST,
        "http_response": {"code": "int32"},
    },
    6002: {"app": {"name": "string", "vendor_name": "string", "version": "string"}},
    6003: {
        "api": {"operation": "string", "service": {"name": "string"}},
        "resources": [{"uid": "string", "name": "string", "type": "string"}],
        "http_request": _HTTP_REQUEST,
        "http_response": {"code": "int32"},
    },
    6005: {
        "table": {"name": "string"},
        "database": {"name": "string", "type_id": "int32", "type": "string"},
        "http_request": _HTTP_REQUEST,
        "http_response": {"code": "int32"},
    },
}


def shape(class_uid: int) -> dict[str, Any]:
    """Every field of a class's records and its type."""
    fields = {**COMMON_SHAPE, **CLASS_SHAPE[class_uid]}
    for name in _NOT_IN_CLASS.get(class_uid, ()):
        del fields[name]
    return fields


def file_stem(class_uid: int) -> str:
    """``3002_authentication``: the name of a class's export file."""
    return f"{class_uid}_{CLASSES[class_uid][0].lower().replace(' ', '_')}"

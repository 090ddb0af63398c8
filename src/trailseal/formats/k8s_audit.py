"""Kubernetes audit events: ``audit.k8s.io/v1`` and ``v1beta1`` Event, EventList, or JSON lines of them.

Action rule, exactly: with no objectRef.resource -> ``k8s.nonresource.<verb>``; with a connect
subresource (exec, attach, portforward, proxy) -> ``k8s.<resource>.<subresource>`` (the verb,
create or get, is transport); with another subresource -> ``k8s.<resource>.<subresource>.<verb>``
(``k8s.pods.status.patch``); else ``k8s.<resource>.<verb>`` (``k8s.secrets.get``).

Category: connect subresources -> session; tokenreviews -> authentication; *subjectaccessreviews,
selfsubjectrulesreviews, the impersonate verb and RBAC writes (roles, clusterroles, rolebindings,
clusterrolebindings) -> authorization; get/list/watch -> data_access; serviceaccounts and
certificatesigningrequests writes -> account; other writes -> config. Outcome from
responseStatus.code: < 400 success, any 4xx failure (401/403 included), 5xx error, none unknown.
Actor: user.username, type anonymous for ``system:anonymous``, service for
``system:serviceaccount:*``, system for other ``system:*`` users, else user; groups -> roles;
ip = the last sourceIP not in ``ctx['trusted_proxies']``. impersonatedUser is kept in attributes.
id = ``k8s:<auditID>:<stage>``. time = stageTimestamp. ``requestObject`` is kept (a Secret's
data values are replaced by ``[omitted]``; bodies over 16 KiB by their size); ``responseObject``
is not copied (it echoes stored objects, secrets included) — raw_hash ties the event to the raw.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from trailseal.event import ID_PATTERN
from trailseal.formats import FormatError
from trailseal.formats._common import (
    all_or_error,
    api_outcome,
    as_is,
    bounded,
    client_ip,
    collect,
    json_safe,
    lines,
    load_sealable_json,
    rfc3339,
    segment,
    sha256_hex,
    short,
    source,
)

FORMAT = "k8s_audit"
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})
READ_VERBS = frozenset({"get", "list", "watch"})
RBAC_RESOURCES = frozenset({"roles", "clusterroles", "rolebindings", "clusterrolebindings"})
ACCOUNT_RESOURCES = frozenset({"serviceaccounts", "certificatesigningrequests"})
AUTHZ_REVIEWS = frozenset(
    {
        "subjectaccessreviews",
        "selfsubjectaccessreviews",
        "localsubjectaccessreviews",
        "selfsubjectrulesreviews",
    }
)
MAX_OBJECT_BYTES = 16384
_NAME_AND_GROUPS = frozenset({"username", "groups"})
_ID_RE = re.compile(ID_PATTERN)


def split(data: bytes) -> list[bytes]:
    """One JSON document (an Event or EventList) as one record, else JSON lines."""
    try:
        msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return lines(data)
    return [data]


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """One Event (or every item of an EventList); FormatError if any item cannot be mapped."""
    return all_or_error(parse_batch(raw, **ctx), "item")


def parse_batch(raw: bytes, **ctx: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(events, [(item index, reason)]) for an Event, an EventList or a JSON array of Events."""
    doc, sealable = load_sealable_json(raw, 1)
    safe = as_is if sealable else json_safe
    digest = sha256_hex(raw)
    return collect(_items(doc), lambda item: audit_event(item, digest, ctx, safe))


def _items(doc: Any) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        raise FormatError("not a Kubernetes audit document: expected a JSON object")
    if doc.get("kind") == "EventList":
        if not isinstance(doc.get("items"), list):
            raise FormatError("EventList has no items list")
        return doc["items"]
    return [doc]


def audit_event(
    item: Any, digest: str, ctx: dict[str, Any], safe: Callable[[Any], Any] = json_safe
) -> dict[str, Any]:
    """One audit.k8s.io Event -> one trailseal event (safe: json_safe, or as_is for a sealable document)."""
    if not isinstance(item, dict):
        raise FormatError(f"an audit Event must be an object, not {type(item).__name__}")
    _check_kind(item)
    audit_id, stage, verb = _required(item, "auditID"), _required(item, "stage"), _required(item, "verb")
    user = item.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("username"), str) or not user["username"]:
        raise FormatError("audit Event has no user.username")
    ref, status = _object(item, "objectRef"), _object(item, "responseStatus")
    code = status.get("code")
    if not (isinstance(code, int) and 0 <= code <= 999):
        code = None
    outcome = "error" if stage == "Panic" else api_outcome(code)
    event: dict[str, Any] = {
        "id": _event_id(audit_id, stage),
        "time": rfc3339(
            item.get("stageTimestamp") or item.get("requestReceivedTimestamp") or item.get("timestamp")
        ),
        "category": category_for(verb, ref),
        "action": action_for(verb, ref),
        "outcome": outcome,
        "actor": _actor(user, item, ctx),
        "source": source(ctx, FORMAT, "kubernetes", "kube-apiserver"),
        "raw_hash": digest,
        "attributes": _attributes(item, ref, verb, stage, safe),
    }
    path = item.get("requestURI")
    request = {"path": path} if isinstance(path, str) and path else {}
    if code is not None:
        request["status"] = code
    if request:
        event["request"] = request
    target = _target(ref)
    if target:
        event["target"] = target
    reason = _reason(status, item) if outcome != "success" else None
    if reason:
        event["reason"] = reason
    return bounded(event)


def action_for(verb: str, ref: dict[str, Any]) -> str:
    """k8s.<resource>[.<subresource>].<verb>, connect subresources without the verb (see module doc)."""
    resource = ref.get("resource")
    if not isinstance(resource, str) or not resource:
        return f"k8s.nonresource.{segment(verb)}"
    subresource = _text(ref.get("subresource"))
    if subresource in CONNECT_SUBRESOURCES:
        return f"k8s.{segment(resource)}.{subresource}"
    if isinstance(subresource, str) and subresource:
        return f"k8s.{segment(resource)}.{segment(subresource)}.{segment(verb)}"
    return f"k8s.{segment(resource)}.{segment(verb)}"


def category_for(verb: str, ref: dict[str, Any]) -> str:
    """The event category for a verb on an objectRef (see module doc)."""
    resource, subresource = _text(ref.get("resource")), _text(ref.get("subresource"))
    if subresource in CONNECT_SUBRESOURCES:
        return "session"
    if resource == "tokenreviews":
        return "authentication"
    if resource in AUTHZ_REVIEWS or verb == "impersonate":
        return "authorization"
    if verb in READ_VERBS:
        return "data_access"
    if resource in RBAC_RESOURCES:
        return "authorization"
    if resource in ACCOUNT_RESOURCES:
        return "account"
    return "config"


def _text(value: Any) -> str | None:
    """A string value, else None (a list or object in its place must not reach a set lookup)."""
    return value if isinstance(value, str) else None


def _object(item: dict[str, Any], key: str) -> dict[str, Any]:
    """item[key] if it is an object, else an empty one."""
    value = item.get(key)
    return value if isinstance(value, dict) else {}


def _texts(values: list[Any], longest: int) -> bool:
    """Whether every value is a string of at most `longest` characters."""
    for value in values:
        if not isinstance(value, str) or len(value) > longest:
            return False
    return True


def _check_kind(item: dict[str, Any]) -> None:
    api_version, kind = item.get("apiVersion"), item.get("kind")
    if api_version is not None and not (
        isinstance(api_version, str) and api_version.startswith("audit.k8s.io/")
    ):
        raise FormatError(f"not an audit event: apiVersion {str(api_version)[:64]!r}")
    if kind is not None and kind != "Event":
        raise FormatError(f"not an audit event: kind {str(kind)[:64]!r}")


def _required(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise FormatError(f"audit Event has no {key}")
    return value


def _event_id(audit_id: str, stage: str) -> str:
    event_id = f"k8s:{audit_id}:{stage}"
    if not _ID_RE.match(event_id):
        raise FormatError(f"auditID/stage not usable as an event id: {event_id[:80]!r}")
    return event_id


def _actor(user: dict[str, Any], item: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """The authenticated user: type by username, groups as roles, client ip and user agent."""
    name = user["username"]
    if name == "system:anonymous":
        kind = "anonymous"
    elif name.startswith("system:serviceaccount:"):
        kind = "service"
    elif name.startswith("system:"):
        kind = "system"
    else:
        kind = "user"
    actor: dict[str, Any] = {"id": short(name, "actor.id"), "type": kind}
    groups = user.get("groups")
    if isinstance(groups, list) and groups and _texts(groups, 1024):
        actor["roles"] = groups[:256]
    ips = item.get("sourceIPs")
    if isinstance(ips, list) and ips and _texts(ips, sys.maxsize):
        ip = client_ip(ips, ctx.get("trusted_proxies") or ())
        if ip:
            actor["ip"] = short(ip, "actor.ip")
    agent = item.get("userAgent")
    if isinstance(agent, str) and agent:
        actor["user_agent"] = agent
    return actor


def _target(ref: dict[str, Any]) -> dict[str, str] | None:
    """objectRef as target: type = resource, name = namespace/name (or name), id = uid."""
    resource, name, namespace, uid = (
        ref.get("resource"),
        ref.get("name"),
        ref.get("namespace"),
        ref.get("uid"),
    )
    if namespace and name and resource != "namespaces":
        name = f"{namespace}/{name}"
    target = {}
    for key, value in (("type", resource), ("name", name), ("id", uid)):
        if isinstance(value, str) and value:
            target[key] = value
    return target or None


def _reason(status: dict[str, Any], item: dict[str, Any]) -> str | None:
    annotations = item.get("annotations") if isinstance(item.get("annotations"), dict) else {}
    for value in (
        status.get("message"),
        status.get("reason"),
        annotations.get("authorization.k8s.io/reason"),
    ):
        if isinstance(value, str) and value:
            return value
    return None


def _attributes(
    item: dict[str, Any], ref: dict[str, Any], verb: str, stage: str, safe: Callable[[Any], Any]
) -> dict[str, Any]:
    """The audit fields an investigation or a Sigma rule needs, under k8s.*."""
    attributes: dict[str, Any] = {"k8s.verb": verb, "k8s.stage": stage}
    for key, name in (
        ("level", "k8s.audit_level"),
        ("apiVersion", "k8s.api_version"),
        ("annotations", "k8s.annotations"),
        ("impersonatedUser", "k8s.impersonated_user"),
    ):
        value = item.get(key)
        if value:
            attributes[name] = safe(value)
    status = item.get("responseStatus")
    if isinstance(status, dict):
        attributes["k8s.response_status"] = safe({k: v for k, v in status.items() if k != "metadata"})
    if ref:
        attributes["k8s.object_ref"] = safe(ref)
        if isinstance(ref.get("namespace"), str):
            attributes["k8s.namespace"] = ref["namespace"]
    user = item["user"]
    extra = (
        {k: v for k, v in user.items() if k not in _NAME_AND_GROUPS and v}
        if not user.keys() <= _NAME_AND_GROUPS
        else None
    )
    if extra:
        attributes["k8s.user"] = safe(extra)
    ips = item.get("sourceIPs")
    if isinstance(ips, list) and len(ips) > 1:
        attributes["k8s.source_ips"] = safe(ips)
    if item.get("requestObject") is not None:
        attributes["k8s.request_object"] = _request_object(item["requestObject"], ref.get("resource"), safe)
    return attributes


def _request_object(body: Any, resource: Any, safe: Callable[[Any], Any]) -> Any:
    """The request body, with Secret data values omitted and large bodies replaced by their size."""
    if resource == "secrets" and isinstance(body, dict):
        body = {
            k: ({key: "[omitted]" for key in v} if k in ("data", "stringData") and isinstance(v, dict) else v)
            for k, v in body.items()
        }
    encoded = msgspec.json.encode(body)
    if len(encoded) > MAX_OBJECT_BYTES:
        return {"omitted": f"request body of {len(encoded)} bytes is over {MAX_OBJECT_BYTES}"}
    return safe(body)

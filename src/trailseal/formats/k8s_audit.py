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
    SHORT_MAX,
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
# A sealable record this short has no request body whose JSON is over MAX_OBJECT_BYTES (re-encoding a
# decoded value gives at most 4.5 times its source text: 1e15 becomes 1000000000000000.0; strings do not
# grow, omitted secret values grow less), so _request_object skips the encoding that measures it.
_SMALL_RAW = MAX_OBJECT_BYTES // 8
_RULES: dict[tuple[str, str | None, str | None], tuple[str, str]] = {}  # see _rule


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
    items = _items(doc)
    small = sealable and len(raw) <= _SMALL_RAW
    return collect(items, _event, digest, ctx, safe, small)


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
    return _event(item, digest, ctx, safe, False)


def _event(
    item: Any,
    digest: str,
    ctx: dict[str, Any],
    safe: Callable[[Any], Any],
    small: bool,
) -> dict[str, Any]:
    """audit_event, told whether the record is small (see _SMALL_RAW)."""
    if not isinstance(item, dict):
        raise FormatError(f"an audit Event must be an object, not {type(item).__name__}")
    get = item.get
    api_version = _check_kind(item)
    audit_id, stage, verb = get("auditID"), get("stage"), get("verb")
    if not isinstance(audit_id, str) or not audit_id:
        raise FormatError("audit Event has no auditID")
    if not isinstance(stage, str) or not stage:
        raise FormatError("audit Event has no stage")
    if not isinstance(verb, str) or not verb:
        raise FormatError("audit Event has no verb")
    user = get("user")
    name = user.get("username") if isinstance(user, dict) else None
    if not isinstance(name, str) or not name:
        raise FormatError("audit Event has no user.username")
    ref = get("objectRef")
    if not isinstance(ref, dict):
        ref = {}
    status = get("responseStatus")
    if not isinstance(status, dict):
        status = None
    code = status.get("code") if status is not None else None
    if not (isinstance(code, int) and 0 <= code <= 999):
        code = None
    outcome = "error" if stage == "Panic" else api_outcome(code)
    event_id = f"k8s:{audit_id}:{stage}"
    if not _ID_RE.match(event_id):
        raise FormatError(f"auditID/stage not usable as an event id: {event_id[:80]!r}")
    time = rfc3339(get("stageTimestamp") or get("requestReceivedTimestamp") or get("timestamp"))
    resource, subresource = ref.get("resource"), ref.get("subresource")
    if not isinstance(resource, str):
        resource = None
    if not isinstance(subresource, str):
        subresource = None
    category, action = _RULES.get((verb, resource, subresource)) or _rule(verb, resource, subresource)
    actor = _actor(name, user, item, ctx)
    origin = source(ctx, FORMAT, "kubernetes", "kube-apiserver")
    event: dict[str, Any] = {
        "id": event_id,
        "time": time,
        "category": category,
        "action": action,
        "outcome": outcome,
        "actor": actor,
        "source": origin,
        "raw_hash": digest,
        "attributes": _attributes(item, user, ref, status, api_version, verb, stage, safe, small),
    }
    path = get("requestURI")
    if isinstance(path, str) and path:
        event["request"] = {"path": path, "status": code} if code is not None else {"path": path}
    elif code is not None:
        event["request"] = {"status": code}
    target = _target(ref) if ref else None
    if target:
        event["target"] = target
    reason = _reason(status or {}, item) if outcome != "success" else None
    if reason:
        event["reason"] = reason
    if _may_be_too_long(actor, path, target, reason):
        return bounded(event)
    return event


def _may_be_too_long(
    actor: dict[str, Any], path: Any, target: dict[str, str] | None, reason: str | None
) -> bool:
    """Whether bounded() may refuse the event: only these fields can be over their limits (actor.id and
    actor.ip are checked by short(), the source is checked by _common.source)."""
    return (
        len(actor.get("user_agent", "")) > SHORT_MAX
        or (isinstance(path, str) and len(path) > SHORT_MAX)
        or (target is not None and max(map(len, target.values())) > SHORT_MAX)
        or (reason is not None and len(reason) > SHORT_MAX)
    )


def _rule(verb: str, resource: str | None, subresource: str | None) -> tuple[str, str]:
    """(category, action) for a verb on an objectRef's resource and subresource (text, else None);
    kept in _RULES when the names are short (a cluster has few), which is emptied at 4096 entries."""
    ref = {"resource": resource, "subresource": subresource}
    rule = category_for(verb, ref), action_for(verb, ref)
    if len(verb) + len(resource or "") + len(subresource or "") <= 256:
        if len(_RULES) >= 4096:
            _RULES.clear()
        _RULES[verb, resource, subresource] = rule
    return rule


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


def _texts(values: list[Any], longest: int) -> bool:
    """Whether every value is a string of at most `longest` characters."""
    for value in values:
        if not isinstance(value, str) or len(value) > longest:
            return False
    return True


def _check_kind(item: dict[str, Any]) -> Any:
    """The item's apiVersion; FormatError if it or the kind is not an audit Event's."""
    api_version, kind = item.get("apiVersion"), item.get("kind")
    if api_version is not None and not (
        isinstance(api_version, str) and api_version.startswith("audit.k8s.io/")
    ):
        raise FormatError(f"not an audit event: apiVersion {str(api_version)[:64]!r}")
    if kind is not None and kind != "Event":
        raise FormatError(f"not an audit event: kind {str(kind)[:64]!r}")
    return api_version


def _actor(name: str, user: dict[str, Any], item: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """The authenticated user: type by username, groups as roles, client ip and user agent."""
    if name == "system:anonymous":
        kind = "anonymous"
    elif name.startswith("system:"):
        kind = "service" if name.startswith("system:serviceaccount:") else "system"
    else:
        kind = "user"
    if len(name) > SHORT_MAX:
        short(name, "actor.id")
    actor: dict[str, Any] = {"id": name, "type": kind}
    groups = user.get("groups")
    if isinstance(groups, list) and groups and _texts(groups, 1024):
        actor["roles"] = groups[:256]
    ips = item.get("sourceIPs")
    if isinstance(ips, list) and ips and _texts(ips, sys.maxsize):
        trusted = ctx.get("trusted_proxies")
        ip = client_ip(ips, trusted) if trusted else ips[-1]
        if ip:
            actor["ip"] = short(ip, "actor.ip") if len(ip) > SHORT_MAX else ip
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
    if isinstance(resource, str) and resource:
        target["type"] = resource
    if isinstance(name, str) and name:
        target["name"] = name
    if isinstance(uid, str) and uid:
        target["id"] = uid
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
    item: dict[str, Any],
    user: dict[str, Any],
    ref: dict[str, Any],
    status: Any,
    api_version: Any,
    verb: str,
    stage: str,
    safe: Callable[[Any], Any],
    small: bool,
) -> dict[str, Any]:
    """The audit fields an investigation or a Sigma rule needs, under k8s.*."""
    get = item.get
    attributes: dict[str, Any] = {"k8s.verb": verb, "k8s.stage": stage}
    level = get("level")
    if level:
        attributes["k8s.audit_level"] = safe(level)
    if api_version:
        attributes["k8s.api_version"] = safe(api_version)
    annotations = get("annotations")
    if annotations:
        attributes["k8s.annotations"] = safe(annotations)
    impersonated = get("impersonatedUser")
    if impersonated:
        attributes["k8s.impersonated_user"] = safe(impersonated)
    if isinstance(status, dict):
        if "metadata" in status:
            status = status.copy()
            del status["metadata"]
        attributes["k8s.response_status"] = safe(status)
    if ref:
        attributes["k8s.object_ref"] = safe(ref)
        namespace = ref.get("namespace")
        if isinstance(namespace, str):
            attributes["k8s.namespace"] = namespace
    if len(user) > 2 or (len(user) == 2 and "groups" not in user):  # keys other than username, groups
        extra = {k: v for k, v in user.items() if k not in _NAME_AND_GROUPS and v}
        if extra:
            attributes["k8s.user"] = safe(extra)
    ips = get("sourceIPs")
    if isinstance(ips, list) and len(ips) > 1:
        attributes["k8s.source_ips"] = safe(ips)
    body = get("requestObject")
    if body is not None:
        attributes["k8s.request_object"] = _request_object(body, ref.get("resource"), safe, small)
    return attributes


def _request_object(body: Any, resource: Any, safe: Callable[[Any], Any], small: bool = False) -> Any:
    """The request body, with Secret data values omitted and large bodies replaced by their size
    (small: the record is too short for the body to be large)."""
    if resource == "secrets" and isinstance(body, dict):
        body = {
            k: ({key: "[omitted]" for key in v} if k in ("data", "stringData") and isinstance(v, dict) else v)
            for k, v in body.items()
        }
    if not small:
        encoded = msgspec.json.encode(body)
        if len(encoded) > MAX_OBJECT_BYTES:
            return {"omitted": f"request body of {len(encoded)} bytes is over {MAX_OBJECT_BYTES}"}
    return safe(body)

"""AWS CloudTrail: log files ``{"Records": [...]}``, single records, and EventBridge envelopes.

Each record -> one event: action ``aws.<service>.<event_name_snake>`` (``ec2.amazonaws.com`` /
``StartInstances`` -> ``aws.ec2.start_instances``); id ``cloudtrail:<eventID>`` when the record has
one, so a re-sent file dedupes. Outcome: an ``errorCode`` is a failure (``Server.*`` and internal or
unavailable errors are ``error``), a ``{"ConsoleLogin": "Failure"}``-style response a failure, else
success. Category: console sign-in and STS credential calls -> authentication (PasswordUpdated ->
account); read-only calls -> data_access; IAM policy/role/permission writes -> authorization, other
IAM writes -> account; data events -> data_change; other management writes -> config; Insights
events -> finding (``aws.cloudtrail.insight``). The actor is ``userIdentity`` (id principalId, name
userName or role, type service for AWS services); ``sourceIPAddress`` is actor.ip when it is an IP.
All other record fields are kept as ``attributes['aws.<field_snake>']``.

A digest file (the hourly hash manifest) is not events: it is rejected with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from trailseal.formats import FormatError
from trailseal.formats._common import (
    SHORT_MAX,
    all_or_error,
    as_is,
    bounded,
    collect,
    is_ip,
    json_safe,
    load_sealable_json,
    rfc3339,
    segment,
    sha256_hex,
    short,
    snake,
    source,
)

FORMAT = "cloudtrail"
_CONSUMED = {"eventTime", "sourceIPAddress", "userAgent"}
_SERVER_ERRORS = {
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceFailure",
}
_READ_PREFIXES = (
    "Get",
    "List",
    "Describe",
    "Head",
    "Lookup",
    "Search",
    "BatchGet",
    "Select",
    "Scan",
    "Query",
)
_STS_AUTH = ("AssumeRole", "GetSessionToken", "GetFederationToken")
_IAM_AUTHZ_WORDS = ("Policy", "Role", "PermissionsBoundary", "Permission")
_TARGET_KEYS = (
    ("userName", "AWS::IAM::User"),
    ("roleName", "AWS::IAM::Role"),
    ("groupName", "AWS::IAM::Group"),
    ("policyArn", "AWS::IAM::Policy"),
    ("bucketName", "AWS::S3::Bucket"),
    ("keyName", "AWS::EC2::KeyPair"),
    ("functionName", "AWS::Lambda::Function"),
    ("name", None),
)

_TARGET_KEY_SET = frozenset(key for key, _ in _TARGET_KEYS)


def split(data: bytes) -> list[bytes]:
    """A CloudTrail file is one record: the whole JSON document."""
    return [data] if data.strip() else []


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """All records of a log file (or one record); FormatError if any record cannot be mapped."""
    return all_or_error(parse_batch(raw, **ctx), "record")


def parse_batch(raw: bytes, **ctx: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(events, [(record index, reason)]) for a log file, a single record or an EventBridge envelope."""
    doc, sealable = load_sealable_json(raw, 1)
    safe = as_is if sealable else json_safe
    digest = sha256_hex(raw)
    return collect(_records(doc), record_event, digest, ctx, safe)


def _records(doc: Any) -> list[Any]:
    """The records in a decoded document; FormatError for digests and anything else."""
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        raise FormatError("not a CloudTrail document: expected a JSON object")
    if "Records" in doc:
        if not isinstance(doc["Records"], list):
            raise FormatError("CloudTrail 'Records' must be a list")
        return doc["Records"]
    if "digestStartTime" in doc and "logFiles" in doc:
        raise FormatError(
            "CloudTrail digest file: a signed hash manifest of log files, not events; "
            "validate it with CloudTrail log file validation and ingest the log files it lists"
        )
    if isinstance(doc.get("detail"), dict) and "eventName" in doc["detail"]:
        return [doc["detail"]]
    if "eventTime" in doc:
        return [doc]
    raise FormatError("not a CloudTrail document: no 'Records' and no eventTime")


def record_event(
    record: Any, digest: str, ctx: dict[str, Any], safe: Callable[[Any], Any] = json_safe
) -> dict[str, Any]:
    """One CloudTrail record -> one event (safe: json_safe, or as_is for a sealable document)."""
    if not isinstance(record, dict):
        raise FormatError(f"a CloudTrail record must be an object, not {type(record).__name__}")
    get = record.get
    event_type = get("eventType")
    if event_type == "AwsCloudTrailInsight":
        return _insight(record, digest, ctx, safe)
    event_source, name = get("eventSource"), get("eventName")
    if event_source.__class__ is not str or not event_source:
        event_source = _text(record, "eventSource")
    if name.__class__ is not str or not name:
        name = _text(record, "eventName")
    service, action = _service_action(event_source, name)
    outcome, reason = _outcome(record, name)
    attributes = _attributes(record, safe)
    time = rfc3339(get("eventTime"))
    actor = _actor(record, attributes)  # after the time: a record wrong in both is refused for its time
    event: dict[str, Any] = {
        "time": time,
        "category": _category(record, event_type, service, name),
        "action": action,
        "outcome": outcome,
        "actor": actor,
        "source": (
            source(ctx, FORMAT, "cloud", event_source)
            if ctx or len(event_source) > SHORT_MAX
            else {"component": event_source, "kind": "cloud", "format": FORMAT}
        ),
        "raw_hash": digest,
        "attributes": attributes,
    }
    if reason:
        event["reason"] = reason
    target = _target(record)
    if target:
        event["target"] = target
    _set_id(event, get("eventID"))
    if _may_be_too_long(actor, target, reason):
        return bounded(event)
    return event


def _may_be_too_long(actor: dict[str, Any], target: dict[str, str] | None, reason: str | None) -> bool:
    """Whether bounded could refuse the event: actor.id, actor.name and the source are checked as
    they are taken, and every limit of the others is at least SHORT_MAX characters."""
    return (
        len(actor.get("user_agent", "")) > SHORT_MAX
        or len(actor.get("ip", "")) > SHORT_MAX
        or (reason is not None and len(reason) > SHORT_MAX)
        or (target is not None and max(map(len, target.values())) > SHORT_MAX)
    )


@lru_cache(maxsize=1024)
def _service_action(event_source: str, name: str) -> tuple[str, str]:
    """('ec2', 'aws.ec2.start_instances') for ('ec2.amazonaws.com', 'StartInstances')."""
    service = segment(event_source.removesuffix(".amazonaws.com"))
    return service, f"aws.{service}.{snake(name)}"


def _insight(
    record: dict[str, Any], digest: str, ctx: dict[str, Any], safe: Callable[[Any], Any]
) -> dict[str, Any]:
    """A CloudTrail Insights record: unusual API activity found by CloudTrail -> a finding."""
    details = record.get("insightDetails") if isinstance(record.get("insightDetails"), dict) else {}
    event = {
        "time": rfc3339(record.get("eventTime")),
        "category": "finding",
        "action": "aws.cloudtrail.insight",
        "outcome": "unknown",
        "actor": {"id": "cloudtrail.amazonaws.com", "type": "service"},
        "source": source(ctx, FORMAT, "cloud", "cloudtrail.amazonaws.com"),
        "raw_hash": digest,
        "attributes": _attributes(record, safe),
    }
    target = None
    if details.get("eventSource") or details.get("eventName"):
        target = event["target"] = {
            "type": "aws_api",
            "name": f"{details.get('eventSource', '')}:{details.get('eventName', '')}",
        }
    _set_id(event, record.get("eventID"))
    if target is not None and len(target["name"]) > SHORT_MAX:
        return bounded(event)  # the only value that can be too long
    return event


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise FormatError(f"CloudTrail record has no {key}")
    return value


def _set_id(event: dict[str, Any], event_id: Any) -> None:
    """id 'cloudtrail:<eventID>' when the eventID is printable ASCII but the space ([!-~]{1,100})."""
    if (
        event_id.__class__ is str
        and 0 < len(event_id) <= 100
        and event_id.isascii()
        and event_id.isprintable()
        and " " not in event_id
    ):
        event["id"] = f"cloudtrail:{event_id}"


def _outcome(record: dict[str, Any], name: str) -> tuple[str, str | None]:
    """(outcome, reason) from errorCode/errorMessage or a sign-in style Success/Failure response."""
    code = record.get("errorCode")
    if not code:
        response = record.get("responseElements")
        if isinstance(response, dict) and response.get(name) == "Failure":
            message = record.get("errorMessage")
            return "failure", str(message) if message else "Failure"
        return "success", None
    message = record.get("errorMessage")
    reason = str(message or code)
    server = str(code).startswith("Server.") or str(code) in _SERVER_ERRORS
    return ("error" if server else "failure"), reason


def _category(record: dict[str, Any], event_type: Any, service: str, name: str) -> str:
    """Category by kind of call; see the module docstring for the rule."""
    if (
        event_type == "AwsConsoleSignIn"
        or service == "signin"
        or (service == "sts" and name.startswith(_STS_AUTH))
    ):
        return "account" if name == "PasswordUpdated" else "authentication"
    read_only = record.get("readOnly")
    if isinstance(read_only, str):
        read_only = read_only.lower() == "true"
    if read_only is None:
        read_only = name.startswith(_READ_PREFIXES)
    if read_only:
        return "data_access"
    if service == "iam":
        return "authorization" if any(word in name for word in _IAM_AUTHZ_WORDS) else "account"
    if record.get("eventCategory") == "Data":
        return "data_change"
    return "config"


def _actor(record: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    """The caller from userIdentity, with source IP and user agent."""
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        identity = _NOTHING
    get = identity.get
    kind = get("type")
    if kind == "AWSService":
        actor = {
            "id": short(str(get("invokedBy") or record.get("eventSource") or "aws"), "actor.id"),
            "type": "service",
        }
    else:
        principal = get("principalId") or get("arn") or get("accountId") or "unknown"
        if principal.__class__ is not str:
            principal = str(principal)
        actor = {"id": principal, "type": "service" if get("invokedBy") else "user"}
        name = get("userName")
        if name.__class__ is not str or not name:
            name = _identity_name(identity, kind)
        if name:
            actor["name"] = name if len(name) <= SHORT_MAX else short(name, "actor.name")
        if len(principal) > SHORT_MAX:
            short(principal, "actor.id")
    address = record.get("sourceIPAddress")
    if address.__class__ is str and address:
        if is_ip(address):
            actor["ip"] = address
        else:
            attributes["client.address"] = address
    agent = record.get("userAgent")
    if agent.__class__ is str and agent:
        actor["user_agent"] = agent
    return actor


_NOTHING: dict[str, Any] = {}  # read only


def _identity_name(identity: dict[str, Any], kind: Any) -> str | None:
    """A readable name: userName, 'root', or the role behind an assumed-role session."""
    user_name = identity.get("userName")
    if user_name:
        return str(user_name)
    if kind == "Root":
        return "root"
    context = identity.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
    if isinstance(issuer, dict) and issuer.get("userName"):
        return str(issuer["userName"])
    arn = identity.get("arn")
    return str(arn).rsplit("/", 1)[-1] if arn else None


def _target(record: dict[str, Any]) -> dict[str, str] | None:
    """The resource acted on: the first of 'resources', else a well-known request parameter."""
    resources = record.get("resources")
    if isinstance(resources, list) and resources and isinstance(resources[0], dict):
        first = resources[0]
        target = {"type": first.get("type"), "id": first.get("ARN") or first.get("arn")}
        return {k: str(v) for k, v in target.items() if v} or None
    params = record.get("requestParameters")
    if not isinstance(params, dict):
        return None
    get = params.get
    if not _TARGET_KEY_SET.isdisjoint(params):
        for key, kind in _TARGET_KEYS:
            value = get(key)
            if isinstance(value, str) and value:
                return {"type": kind, "name": value} if kind else {"name": value}
    instances = get("instancesSet")
    items = (instances or {}).get("items") if isinstance(instances, dict) else None
    if (
        isinstance(items, list)
        and len(items) == 1
        and isinstance(items[0], dict)
        and items[0].get("instanceId")
    ):
        return {"type": "AWS::EC2::Instance", "id": str(items[0]["instanceId"])}
    return None


def _attributes(record: dict[str, Any], safe: Callable[[Any], Any]) -> dict[str, Any]:
    """Every other non-null field as aws.<snake_name>."""
    names = _ATTRIBUTE_KEYS
    if safe is as_is:  # the consumed fields are named _TAKEN, and that one entry dropped at the end
        attributes = {names[key]: value for key, value in record.items() if value is not None}
        attributes.pop(_TAKEN, None)
        return attributes
    return {
        names[key]: value if type(value) is str else safe(value)
        for key, value in record.items()
        if key not in _CONSUMED and value is not None
    }


@lru_cache(maxsize=1024)
def _attribute_key(key: str) -> str:
    """'awsRegion' -> 'aws.region', 'requestParameters' -> 'aws.request_parameters'."""
    return f"aws.{snake(key).removeprefix('aws_')}"


class _AttributeKeys(dict):
    """_attribute_key by subscript: CloudTrail's field names stay, at most 4096 of them."""

    def __missing__(self, key: str) -> str:
        name = _attribute_key(key)
        if len(self) < 4096:
            self[key] = name
        return name


_TAKEN = ""  # no attribute's name: they all start with "aws."
_ATTRIBUTE_KEYS = _AttributeKeys.fromkeys(_CONSUMED, _TAKEN)

"""The processing pipeline: Sigma field names and logsources onto trailseal events.

A rule's logsource picks a *profile* (web, kubernetes, cloudtrail, okta, github, native, foreign)
and decides which events the rule sees. A Sigma field name resolves, in that profile, to a chain
of trailseal paths; the first one present in the event is the value (coalesce). Names a profile
does not know fall back to ``attributes.<name>`` (formats keep original fields there) and to the
trailseal path of the same name. See docs/detection.md for the tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from trailseal.detect.derived import derived_fields
from trailseal.detect.paths import Accessor, first_present, path_getter

SCHEMA_ROOTS = frozenset(
    {
        "id",
        "time",
        "received",
        "log",
        "category",
        "action",
        "outcome",
        "reason",
        "severity",
        "actor",
        "source",
        "target",
        "request",
        "attributes",
        "raw_hash",
        "index",
    }
)

# Identity and authentication names used across SigmaHQ rule families.
COMMON = {
    "User": ("actor.id",),
    "user": ("actor.id",),
    "username": ("actor.id",),
    "UserName": ("actor.id",),
    "TargetUserName": ("attributes.TargetUserName", "target.name", "actor.id"),
    "SubjectUserName": ("attributes.SubjectUserName", "actor.id"),
    "src_ip": ("attributes.src_ip", "actor.ip"),
    "SourceIp": ("actor.ip",),
    "SourceIP": ("actor.ip",),
    "IpAddress": ("attributes.IpAddress", "actor.ip"),
    "ClientIP": ("actor.ip",),
    "client_ip": ("actor.ip",),
    "dst_ip": ("attributes.dst_ip", "attributes.dest_ip", "source.ip"),
    "DestinationIp": ("source.ip",),
    "UserAgent": ("actor.user_agent",),
    "user_agent": ("actor.user_agent",),
    "Hostname": ("source.host",),
    "ComputerName": ("source.host",),
    "host": ("attributes.host", "source.host"),
    "EventType": ("attributes.EventType", "action"),
}

WEB = {
    "c-uri": ("attributes.url.full", "attributes.url", "request.path"),
    "cs-uri": ("attributes.url.full", "attributes.url", "request.path"),
    "c-uri-query": ("attributes.url.query", "http_query"),
    "cs-uri-query": ("attributes.url.query", "http_query"),
    "c-uri-stem": ("http_path",),
    "cs-uri-stem": ("http_path",),
    "c-uri-path": ("http_path",),
    "c-uri-extension": ("http_extension",),
    "cs-method": ("request.method",),
    "sc-status": ("request.status",),
    "c-ip": ("actor.ip", "attributes.client.address"),
    "src_ip": ("actor.ip", "attributes.client.address"),
    "cs-user-agent": ("actor.user_agent",),
    "c-useragent": ("actor.user_agent",),
    "cs-host": ("attributes.server.address", "attributes.url.domain", "attributes.host", "source.host"),
    "r-dns": ("attributes.url.domain", "attributes.server.address", "attributes.host", "target.name"),
    "cs-referrer": ("attributes.http.request.header.referer", "attributes.referer"),
    "cs-referer": ("attributes.http.request.header.referer", "attributes.referer"),
    "cs-cookie": ("attributes.cookie",),
    "cs-username": ("actor.id",),
    "sc-bytes": ("request.bytes",),
    "cs-bytes": ("attributes.request_bytes",),
    "dst_ip": ("attributes.destination.ip", "attributes.dst_ip", "source.ip"),
}

KUBERNETES = {
    "verb": ("attributes.k8s.verb", "attributes.verb", "k8s_verb"),
    "objectRef.resource": (
        "attributes.k8s.object_ref.resource",
        "attributes.objectRef.resource",
        "target.type",
    ),
    "objectRef.namespace": (
        "attributes.k8s.object_ref.namespace",
        "attributes.objectRef.namespace",
        "attributes.k8s.namespace",
    ),
    "apiGroup": (
        "attributes.k8s.object_ref.apiGroup",
        "attributes.objectRef.apiGroup",
        "attributes.apiGroup",
    ),
    "user.username": ("attributes.user.username", "actor.id"),
    "user.groups": ("attributes.user.groups", "actor.roles"),
    "sourceIPs": ("attributes.k8s.source_ips", "attributes.sourceIPs", "actor.ip"),
    "userAgent": ("attributes.userAgent", "actor.user_agent"),
    "requestURI": ("attributes.requestURI", "request.path"),
    "annotations": ("attributes.k8s.annotations", "attributes.annotations"),
    "level": ("attributes.k8s.audit_level", "attributes.level"),
}

CLOUDTRAIL = {
    "sourceIPAddress": ("attributes.aws.source_ip_address", "attributes.sourceIPAddress", "actor.ip"),
    "userAgent": ("attributes.aws.user_agent", "attributes.userAgent", "actor.user_agent"),
    "userIdentity.arn": ("attributes.aws.user_identity.arn", "attributes.userIdentity.arn"),
    "userIdentity.userName": (
        "attributes.aws.user_identity.userName",
        "attributes.userIdentity.userName",
        "actor.name",
    ),
    "src_ip": ("attributes.src_ip", "attributes.sourceIPAddress", "actor.ip"),
    "src_country": ("attributes.src_country", "attributes.geo.country", "attributes.country"),
}

OKTA = {
    "actor.alternateId": ("attributes.actor.alternateId", "actor.id"),
    "actor.displayName": ("attributes.actor.displayName", "actor.name"),
    "client.ipAddress": ("attributes.client.ipAddress", "actor.ip"),
    "client.userAgent.rawUserAgent": ("attributes.client.userAgent.rawUserAgent", "actor.user_agent"),
}

GITHUB = {
    "action": ("attributes.action", "action"),
    "actor": ("attributes.actor", "actor.id"),
}

# Formats keep original fields as attributes['<prefix><snake_case of the top-level name>'].
PREFIXES = {"kubernetes": "k8s.", "cloudtrail": "aws.", "okta": "okta.", "github": "github."}

PROFILES: dict[str, dict[str, tuple[str, ...]]] = {
    "web": WEB,
    "kubernetes": KUBERNETES,
    "cloudtrail": CLOUDTRAIL,
    "okta": OKTA,
    "github": GITHUB,
    "native": {},
    "foreign": {},
}

# Logsource values with a fixed meaning; anything else matches event "tokens" (see below).
PRODUCT_KINDS = {"kubernetes": {"kubernetes"}, "trailseal": None}
PRODUCT_TOKENS = {
    "aws": {"cloudtrail", "aws"},
    "linux": {"linux", "syslog", "auth", "authlog", "auditd", "journald", "sshd", "sudo"},
    "sql": {"sql", "mysql", "mariadb", "postgresql", "postgres", "pgaudit", "mssql", "oracle", "sqlite"},
}
SERVICE_ALWAYS = frozenset({"audit"})
WEB_CATEGORIES = frozenset({"webserver", "proxy"})
TRAILSEAL_CATEGORIES = frozenset(
    {
        "authentication",
        "authorization",
        "account",
        "session",
        "data_access",
        "data_change",
        "config",
        "admin",
        "system",
        "finding",
    }
)
_SPLIT = re.compile(r"[-_./: ]+")


def profile_for(logsource) -> str:
    """Which field profile a rule's logsource uses."""
    product = (logsource.product or "").lower()
    service = (logsource.service or "").lower()
    category = (logsource.category or "").lower()
    if product == "kubernetes":
        return "kubernetes"
    if product == "aws" or service == "cloudtrail":
        return "cloudtrail"
    if product in ("okta", "github"):
        return product
    if category in WEB_CATEGORIES:
        return "web"
    if product in ("", "trailseal"):
        return "native"
    return "foreign"


# -- which events a logsource covers ------------------------------------------------------------

DispatchKey = tuple  # (source.kind, source.format, source.component, action, category, outcome)


def dispatch_key(event: dict) -> DispatchKey:
    """The fields that logsources and rule guards read; events with equal keys see the same rules."""
    source = event.get("source")
    if type(source) is not dict:
        source = {}
    return (
        source.get("kind"),
        source.get("format"),
        source.get("component"),
        event.get("action"),
        event.get("category"),
        event.get("outcome"),
    )


def _tokens(key: DispatchKey) -> frozenset[str]:
    """Lower-case words naming the event's source: kind, format, component and their parts."""
    words: set[str] = set()
    for value in key[:3]:
        if isinstance(value, str) and value:
            low = value.lower()
            words.add(low)
            words.update(w for w in _SPLIT.split(low) if w)
    return frozenset(words)


def _product_matches(product: str, key: DispatchKey, tokens: frozenset[str]) -> bool:
    if product in PRODUCT_KINDS:
        kinds = PRODUCT_KINDS[product]
        return kinds is None or key[0] in kinds or product in tokens
    if product in PRODUCT_TOKENS:
        kind = {"linux": "infra", "sql": "database"}.get(product)
        return bool(PRODUCT_TOKENS[product] & tokens) or (kind is not None and key[0] == kind)
    return product in tokens


def _service_matches(service: str, tokens: frozenset[str]) -> bool:
    return service in SERVICE_ALWAYS or service in tokens


def _category_matches(category: str, key: DispatchKey, tokens: frozenset[str]) -> bool:
    if category in WEB_CATEGORIES:
        return key[3] == "http.request"
    if category == "application":
        return key[0] != "trailseal"
    if category in TRAILSEAL_CATEGORIES:
        return key[4] == category
    return category in tokens


def logsource_predicate(logsource) -> Callable[[DispatchKey], bool]:
    """A test on an event's dispatch key: does this logsource cover the event?"""
    product = (logsource.product or "").lower()
    service = (logsource.service or "").lower()
    category = (logsource.category or "").lower()

    def covers(key: DispatchKey) -> bool:
        tokens = _tokens(key)
        if product and not _product_matches(product, key, tokens):
            return False
        if service and not _service_matches(service, tokens):
            return False
        return not category or _category_matches(category, key, tokens)

    return covers


# -- field names -------------------------------------------------------------------------------


@dataclass
class FieldPipeline:
    """Resolves Sigma field names to accessors; holds derived fields and extra mappings."""

    timezone: str | None = None
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.derived = derived_fields(self.timezone)

    def candidates(self, name: str, profile: str) -> tuple[str, ...]:
        """The trailseal paths (or derived names) tried in order for a Sigma field."""
        if name in self.extra:
            return self.extra[name]
        mapped = PROFILES.get(profile, {}).get(name) or COMMON.get(name)
        if name in self.derived:
            return (name,)
        native = (name,) if name.split(".", 1)[0] in SCHEMA_ROOTS else ()
        if profile in ("native", "web"):
            return mapped or native + (f"attributes.{name}",)
        originals = _prefixed(name, PREFIXES.get(profile)) + (f"attributes.{name}",)
        return _unique(originals + (mapped or ()) + native)

    def accessor(self, name: str, profile: str) -> Accessor:
        """One accessor that returns the first present candidate's value."""
        return first_present([self._single(path) for path in self.candidates(name, profile)])

    def _single(self, path: str) -> Accessor:
        return self.derived.get(path) or path_getter(path)


def snake(name: str) -> str:
    """camelCase to snake_case as the formats write attribute names: userIdentity -> user_identity."""
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", name)).lower()


_SNAKE_1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile(r"([a-z0-9])([A-Z])")


def _prefixed(name: str, prefix: str | None) -> tuple[str, ...]:
    """attributes.<prefix><snake(head)>[.<rest>] for a format that renames top-level fields."""
    if not prefix:
        return ()
    head, _, rest = name.partition(".")
    return (f"attributes.{prefix}{snake(head)}" + (f".{rest}" if rest else ""),)


def _unique(paths: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(paths))

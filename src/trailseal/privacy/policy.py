"""Privacy policy as configuration: which action applies to each detected kind and field.

A policy is a dict (usually loaded from TOML)::

    national_ids = ["ssn", "nino", "insee"]     # which national-id detectors run
    [kinds]                                     # action per detected kind, anywhere
    ip = "pseudonymize"
    [fields]                                    # per field path (dotted, `*` = one segment part, `**` = any)
    "attributes.customer.email" = "erasable"    # a string: the action for the whole value
    "attributes.*.notes" = { phone = "drop" }   # a table: per-kind actions inside this field
    [logs.payments.kinds]                       # the same `kinds` / `fields` shape per log ...
    card = "drop"
    [sources.billing-api.fields]                # ... and per source component
    "request.path" = "keep"

Precedence: a field rule beats a kind rule; within each, log beats source beats policy beats built-in;
within one layer the most specific glob (most literal characters) wins. Whole-value field actions are
`mask`, `drop`, `pseudonymize`, `erasable`, `keep` (trusted, not scanned) and `scan` (the default).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from trailseal.privacy.detectors import KINDS, NATIONAL_ID_KINDS, SECRET_KINDS, Scanner

POLICY_VERSION = 1
ACTIONS = ("mask", "drop", "pseudonymize", "erasable", "keep")
FIELD_ACTIONS = (*ACTIONS, "scan")
IDENTIFYING = ("erasable", "pseudonymize", "keep")  # what leaves a sealed value naming its subject
LAYER_KEYS = frozenset({"kinds", "fields"})
TOP_KEYS = frozenset({"national_ids", "kinds", "fields", "logs", "sources"})

# IPs are kept by default: CIDR search (`ip:10.0.0.0/8`) and incident response need them, and the one
# address that identifies a person, actor.ip, is erasable. Set `ip = "pseudonymize"` to change that.
BUILTIN: dict[str, Any] = {
    "national_ids": list(NATIONAL_ID_KINDS),
    "kinds": {kind: ("keep" if kind == "ip" else "mask") for kind in KINDS},
    "fields": {
        "actor.id": "erasable",
        "actor.name": "erasable",
        "actor.ip": "erasable",
        "actor.user_agent": "erasable",
        "actor.session": "pseudonymize",  # named like a secret, but timelines join on it
    },
}


class PolicyError(ValueError):
    """A policy document is malformed; the message says where."""


@dataclass(frozen=True)
class FieldRule:
    """One `fields` entry: a glob and either a whole-value action or per-kind actions."""

    glob: str
    whole: str | None
    kinds: Mapping[str, str]
    regex: re.Pattern[str]

    @property
    def specificity(self) -> tuple[int, int]:
        """More literal characters is more specific; then fewer wildcards."""
        literal = len(self.glob.replace("*", ""))
        return literal, -self.glob.count("*")


@dataclass(frozen=True)
class Layer:
    """The rules of one scope: built-in, the policy's own, one source, or one log."""

    name: str
    kinds: Mapping[str, str]
    fields: tuple[FieldRule, ...]

    def matching(self, path: str) -> list[FieldRule]:
        """Field rules whose glob matches path, least specific first."""
        return sorted((r for r in self.fields if r.regex.fullmatch(path)), key=lambda r: r.specificity)


@dataclass(frozen=True)
class Plan:
    """What to do with one field: a whole-value action, or `scan` with per-kind actions."""

    whole: str
    kinds: Mapping[str, str]

    def action(self, kind: str) -> str:
        return self.kinds[kind]


def glob_regex(glob: str) -> re.Pattern[str]:
    """`*` matches within one dotted segment, `**` across segments."""
    parts = [re.escape(p).replace(r"\*", "[^.]*") for p in glob.split("**")]
    return re.compile(".*".join(parts))


def _check_action(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise PolicyError(f"{where}: action must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _check_kinds(table: Any, where: str) -> dict[str, str]:
    if not isinstance(table, Mapping):
        raise PolicyError(f"{where}: expected a table of kind = action")
    for kind, action in table.items():
        if kind not in KINDS:
            raise PolicyError(f"{where}.{kind}: unknown kind (known: {', '.join(KINDS)})")
        _check_action(action, ACTIONS, f"{where}.{kind}")
    return dict(table)


def _field_rule(glob: str, value: Any, where: str) -> FieldRule:
    if isinstance(value, str):
        return FieldRule(glob, _check_action(value, FIELD_ACTIONS, where), {}, glob_regex(glob))
    return FieldRule(glob, None, _check_kinds(value, where), glob_regex(glob))


def _layer(name: str, data: Any) -> Layer:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{name}: expected a table")
    unknown = set(data) - LAYER_KEYS
    if unknown:
        raise PolicyError(f"{name}: unknown keys {sorted(unknown)} (expected kinds, fields)")
    fields = data.get("fields", {})
    if not isinstance(fields, Mapping):
        raise PolicyError(f"{name}.fields: expected a table of field glob = action")
    rules = tuple(_field_rule(glob, value, f"{name}.fields.{glob}") for glob, value in fields.items())
    return Layer(name, _check_kinds(data.get("kinds", {}), f"{name}.kinds"), rules)


def _scoped_layers(data: Mapping[str, Any], scope: str) -> dict[str, Layer]:
    table = data.get(scope, {})
    if not isinstance(table, Mapping):
        raise PolicyError(f"{scope}: expected a table of name = rules")
    return {name: _layer(f"{scope}.{name}", rules) for name, rules in table.items()}


class Policy:
    """A validated privacy policy; `plan(log, component, path)` says what to do with a field."""

    def __init__(self, data: Mapping[str, Any] | None = None):
        data = dict(data or {})
        unknown = set(data) - TOP_KEYS
        if unknown:
            raise PolicyError(f"unknown keys {sorted(unknown)} (expected {', '.join(sorted(TOP_KEYS))})")
        self.data = data
        self.builtin = _layer("built-in", {k: BUILTIN[k] for k in LAYER_KEYS})
        self.own = _layer("policy", {k: data[k] for k in LAYER_KEYS if k in data})
        self.logs = _scoped_layers(data, "logs")
        self.sources = _scoped_layers(data, "sources")
        self.national_ids = tuple(data.get("national_ids", BUILTIN["national_ids"]))
        try:
            self.scanner = Scanner(self.national_ids)
        except ValueError as exc:
            raise PolicyError(f"national_ids: {exc}") from None
        self._scopes: dict[tuple[str, str], Scope] = {}
        self._plans_cached = 0  # in all scopes; past MAX_PLANS every scope starts over
        self._wholes_seen: dict[tuple[str, str], frozenset[str]] = {}  # (log, path) -> _wholes

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        """Parse a TOML policy document."""
        try:
            return cls(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"invalid TOML: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read a TOML policy file."""
        return cls.from_toml(Path(path).read_text(encoding="utf-8"))

    def layers(self, log: str, component: str) -> list[Layer]:
        """The layers that apply, most precedent first: log, source, policy, built-in."""
        found = [self.logs.get(log), self.sources.get(component), self.own, self.builtin]
        return [layer for layer in found if layer is not None]

    def scope(self, log: str, component: str) -> Scope:
        """The rules of one log and source component, with their plans cached per path."""
        key = (log, component)
        scope = self._scopes.get(key)
        if scope is None:
            if len(self._scopes) > MAX_SCOPES:
                self._scopes.clear()
            scope = self._scopes[key] = Scope(self, self.layers(log, component))
        return scope

    def _planned(self) -> None:
        """Count one more cached plan; past MAX_PLANS, forget them all (memory stays bounded)."""
        self._plans_cached += 1
        if self._plans_cached > MAX_PLANS:
            self._plans_cached = 0
            for scope in list(self._scopes.values()):
                scope.forget_plans()

    def plan(self, log: str, component: str, path: str) -> Plan:
        """The whole-value action and per-kind actions for the field at path (cached)."""
        return self.scope(log, component).plan(path)

    def action(self, log: str, component: str, path: str, kind: str) -> str:
        """The action for a finding of kind inside the field at path."""
        return self.plan(log, component, path).action(kind)

    def _resolve(self, layers: list[Layer], path: str) -> Plan:
        whole = "scan"
        for layer in layers:
            rules = [r for r in layer.matching(path) if r.whole is not None]
            if rules:
                whole = rules[-1].whole
                break
        kinds: dict[str, str] = {}
        for layer in reversed(layers):
            kinds.update(layer.kinds)
        for layer in reversed(layers):
            for rule in layer.matching(path):
                kinds.update(rule.kinds)
        return Plan(whole, kinds)

    def identifies_actor(self, log: str) -> bool:
        """Whether every event of ``log`` is sealed with an ``actor.id`` that names its subject (kept, a
        pseudonym or a commitment), whatever its source: masked or dropped, it names nobody."""
        return all(whole in IDENTIFYING for whole in self._wholes(log, "actor.id"))

    def seals(self, log: str, path: str) -> bool:
        """Whether some source's events of ``log`` have the field at ``path`` sealed as a commitment or a
        pseudonym (a search for its value must look for those forms)."""
        return any(whole in ("erasable", "pseudonymize") for whole in self._wholes(log, path))

    def _wholes(self, log: str, path: str) -> frozenset[str]:
        """The whole-value actions for ``path`` in ``log``, over every source (and none); remembered."""
        key = (log, path)
        found = self._wholes_seen.get(key)
        if found is None:
            if len(self._wholes_seen) > MAX_SCOPES:
                self._wholes_seen.clear()
            found = self._wholes_seen[key] = frozenset(
                self._resolve(self.layers(log, component), path).whole for component in ["", *self.sources])
        return found

    def canonical(self) -> dict[str, Any]:
        """The document the fingerprint covers: format version, built-in defaults and this policy."""
        return {"version": POLICY_VERSION, "builtin": BUILTIN, "policy": self.data}

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON (RFC 8785) of the policy and the defaults it builds on."""
        return hashlib.sha256(rfc8785.dumps(self.canonical())).hexdigest()

    def describe(self) -> str:
        """A human-readable summary for `trailseal privacy show`."""
        lines = [
            f"privacy policy {self.fingerprint()}",
            "precedence: field rule > kind rule; log > source > policy > built-in; most specific glob wins",
            f"national ids detected: {', '.join(self.national_ids) or 'none'}",
        ]
        for layer in [*self.logs.values(), *self.sources.values(), self.own, self.builtin]:
            lines.extend(_describe_layer(layer))
        return "\n".join(lines)


def _describe_layer(layer: Layer) -> list[str]:
    if not layer.kinds and not layer.fields:
        return []
    lines = [f"[{layer.name}]"]
    secrets = {k: a for k, a in layer.kinds.items() if k in SECRET_KINDS}
    if secrets and len(set(secrets.values())) == 1 and len(secrets) == len(SECRET_KINDS):
        lines.append(f"  secrets ({len(secrets)} kinds)  -> {next(iter(secrets.values()))}")
    else:
        lines.extend(f"  {kind:<22} -> {action}" for kind, action in secrets.items())
    lines.extend(f"  {kind:<22} -> {a}" for kind, a in layer.kinds.items() if kind not in SECRET_KINDS)
    for rule in layer.fields:
        target = rule.whole or ", ".join(f"{k}: {a}" for k, a in rule.kinds.items())
        lines.append(f"  field {rule.glob:<16} -> {target}")
    return lines


MAX_SCOPES = 4096  # (log, component) pairs cached; past that the cache starts over
MAX_PLANS = 50_000  # plans cached, in all scopes of a policy together


class Scope:
    """The layers that apply to one (log, component), and the plan of each field path, cached.

    `attributes` is the one plan of every path under `attributes.` when no field rule of these
    layers can match there (the default policy's rules name actor fields only), else None.
    """

    __slots__ = ("_layers", "_plans", "_policy", "attributes", "memo")

    def __init__(self, policy: Policy, layers: list[Layer]):
        self._layers = layers
        self._policy = policy
        self._plans: dict[str, Plan] = {}
        reachable = any(
            _may_match_under(rule.glob, "attributes.") for layer in layers for rule in layer.fields
        )
        self.attributes = None if reachable else policy._resolve(layers, "attributes.")
        self.memo: dict[Any, Any] = {}  # what callers derive from this scope (protect: its plans per Keys)

    def plan(self, path: str) -> Plan:
        """The plan of the field at path."""
        plan = self._plans.get(path)
        if plan is None:
            plan = self._plans[path] = self._policy._resolve(self._layers, path)
            self._policy._planned()
        return plan

    def forget_plans(self) -> None:
        self._plans = {}


def _may_match_under(glob: str, prefix: str) -> bool:
    """Could glob match a path that starts with prefix? (Its literal start must agree with prefix.)"""
    literal = glob.split("*", 1)[0]
    return literal.startswith(prefix) or prefix.startswith(literal)


DEFAULT_POLICY = Policy()

"""Apply a privacy policy to an event before it is sealed, and join vault values back for reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from trailseal.event import Event, EventError
from trailseal.privacy import names
from trailseal.privacy.detectors import KINDS, Finding
from trailseal.privacy.keyring import Keys
from trailseal.privacy.masks import mask
from trailseal.privacy.policy import Plan, Policy
from trailseal.privacy.tokens import COMMITMENT_RE, new_commitment, pseudonym, search_token
from trailseal.privacy.validators import looks_random
from trailseal.privacy.vault import VaultRow

# Fields whose schema admits no personal data, or that must not change (`id` is the idempotency key).
UNSCANNED = frozenset(
    {
        "id",
        "time",
        "received",
        "log",
        "category",
        "action",
        "outcome",
        "severity",
        "raw_hash",
        "actor.type",
        "source.kind",
        "source.format",
        "request.method",
    }
)
REQUIRED = frozenset({"actor.id", "source.component"})
DROPPED = "[dropped]"
_DROP = object()


class Protected(NamedTuple):
    """The event as it will be sealed, and the vault rows its erasable values went to."""

    event: Event
    vault_rows: list[VaultRow]


@dataclass
class _Walk:
    """What every step of one protect() call needs."""

    policy: Policy
    keys: Keys
    log: str
    component: str
    subject: str
    rows: list[VaultRow] = field(default_factory=list)

    def plan(self, path: str) -> Plan:
        return self.policy.plan(self.log, self.component, path)


def protect(event: Event, policy: Policy, keys: Keys) -> Protected:
    """Mask, drop, pseudonymize or commit every personal value of event, as policy says."""
    walk = _Walk(policy, keys, event.log or "default", event.source.component, event.actor.id)
    data = msgspec.to_builtins(event)
    protected = _protect_mapping(data, "", walk, None)
    try:
        return Protected(msgspec.convert(protected, Event), walk.rows)
    except msgspec.ValidationError as exc:
        raise EventError(f"event no longer valid after privacy protection: {exc}") from None


def _child_key_kind(key: str, inherited: str | None) -> str | None:
    """'password'/'secret' if secret by name, 'weak' if only when random, or the personal kind it names."""
    if inherited in ("password", "secret"):
        return inherited
    kind = names.classify_key(key)
    if kind is None and not key.startswith("["):
        return names.personal_kind(key)
    return kind


def _protect_mapping(data: dict[str, Any], path: str, walk: _Walk, key_kind: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        child = f"{path}.{key}" if path else key
        if child in UNSCANNED:
            out[key] = value
            continue
        new_key = _protect_key(key, child, walk) if path.startswith("attributes") else key
        if new_key is _DROP:
            continue
        child = f"{path}.{new_key}" if path else new_key
        result = _protect_value(value, child, walk, _child_key_kind(key, key_kind))
        if result is _DROP:
            if child in REQUIRED:
                out[new_key] = DROPPED
            continue
        out[_unique(new_key, out)] = result
    return out


def _unique(key: str, taken: Mapping[str, Any]) -> str:
    """key, or key~2, key~3... when masking made two keys equal."""
    n, candidate = 1, key
    while candidate in taken:
        n += 1
        candidate = f"{key}~{n}"
    return candidate


def _protect_key(key: str, path: str, walk: _Walk) -> Any:
    """An attribute name carrying personal data is protected like a value (drop removes the entry)."""
    findings = walk.policy.scanner.scan(key)
    if not findings:
        return key
    return _apply_findings(key, findings, path, walk)


def _protect_value(value: Any, path: str, walk: _Walk, key_kind: str | None) -> Any:
    if isinstance(value, str):
        return _protect_string(value, path, walk, key_kind)
    if isinstance(value, dict):
        return _protect_mapping(value, path, walk, key_kind)
    if isinstance(value, list):
        items = (_protect_value(item, path, walk, key_kind) for item in value)
        return [item for item in items if item is not _DROP]
    if isinstance(value, int | float) and not isinstance(value, bool) and key_kind in ("password", "secret"):
        return _protect_string(str(value), path, walk, key_kind)
    return value


def _protect_string(value: str, path: str, walk: _Walk, key_kind: str | None) -> Any:
    plan = walk.plan(path)
    if plan.whole == "keep":
        return value
    if plan.whole != "scan":
        return _replace(plan.whole, None, value, path, walk)
    if key_kind in ("password", "secret") or (key_kind == "weak" and looks_random(value)):
        kind = "password" if key_kind == "password" else "secret"
        return _replace(plan.action(kind), kind, value, path, walk)
    findings = walk.policy.scanner.scan(value)
    if not findings and key_kind in KINDS and value.strip():
        findings = [Finding(key_kind, 0, len(value))]  # `{"phone": "555 0132"}`: the name says what it is
    return _apply_findings(value, findings, path, walk) if findings else value


def _apply_findings(text: str, findings: list[Finding], path: str, walk: _Walk) -> Any:
    """Replace each finding as its kind's action says; any `drop` removes the whole field."""
    plan = walk.plan(path)
    actions = [plan.action(f.kind) for f in findings]
    if "drop" in actions:
        return _DROP
    pieces, last = [], 0
    for finding, action in zip(findings, actions, strict=True):
        pieces.append(text[last : finding.start])
        pieces.append(_replace(action, finding.kind, text[finding.start : finding.end], path, walk))
        last = finding.end
    pieces.append(text[last:])
    return "".join(pieces)


def _replace(action: str, kind: str | None, value: str, path: str, walk: _Walk) -> Any:
    """The sealed form of one value under one action."""
    if action == "keep":
        return value
    if action == "drop":
        return _DROP
    if action == "mask":
        return mask(kind, value)
    if action == "pseudonymize":
        return pseudonym(value, walk.log, walk.keys)
    commitment, salt = new_commitment(value)
    token = search_token(value, walk.log, walk.keys)
    walk.rows.append(VaultRow(walk.subject, walk.log, commitment, salt, value, path, token))
    return commitment


def commitments_in(data: Any) -> set[str]:
    """Every `pd:` commitment in a (decoded) event: the vault rows a read needs."""
    found: set[str] = set()
    _collect(data, found)
    return found


def _collect(data: Any, found: set[str]) -> None:
    if isinstance(data, str):
        found.update(COMMITMENT_RE.findall(data))
    elif isinstance(data, dict):
        for key, value in data.items():
            _collect(key, found)
            _collect(value, found)
    elif isinstance(data, list):
        for item in data:
            _collect(item, found)


def reveal(event: Mapping[str, Any], rows: Iterable[VaultRow] | Mapping[str, VaultRow]) -> dict[str, Any]:
    """A copy of a sealed event (as a dict) with each commitment still in the vault replaced by its value."""
    held = rows.values() if isinstance(rows, Mapping) else rows
    values = {row.commitment: row.value for row in held}
    return _reveal(dict(event), values)


def _reveal(data: Any, values: Mapping[str, str]) -> Any:
    if isinstance(data, str):
        return (
            COMMITMENT_RE.sub(lambda m: values.get(m.group(0), m.group(0)), data) if "pd:" in data else data
        )
    if isinstance(data, dict):
        return {_reveal(k, values): _reveal(v, values) for k, v in data.items()}
    if isinstance(data, list):
        return [_reveal(item, values) for item in data]
    return data

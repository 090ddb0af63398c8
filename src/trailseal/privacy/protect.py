"""Apply a privacy policy to an event before it is sealed, and join vault values back for reads.

protect() walks the event's Struct fields directly (no round trip through builtins), resolves the
policy once per (log, component), skips strings that provably hold nothing a detector could find
(`might_match`, plus a bounded cache of strings already found clean), and copies only what changed.
Anything the fast walk is not sure to handle exactly as the reference walk would (a value of a type
JSON does not have, a protected value too long for its field...) is handed to the reference walk,
`_protect_reference`, which is the plain algorithm: builtins -> walk -> msgspec.convert.
"""

from __future__ import annotations

import hashlib
import linecache
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from trailseal.event import MAX_DEPTH, Event, EventError
from trailseal.privacy import names
from trailseal.privacy.detectors import _ASCII_GATE, _CLASSES, KINDS, Finding, Scanner, might_match
from trailseal.privacy.keyring import Keys
from trailseal.privacy.masks import mask
from trailseal.privacy.policy import Plan, Policy, Scope
from trailseal.privacy.tokens import (
    COMMITMENT_PREFIX,
    COMMITMENT_RE,
    PSEUDONYM_HEX,
    PSEUDONYM_PREFIX,
    _salts,
    fresh_salt,
    new_commitment,
    pseudonym,
    search_token,
)
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
_SECRET = ("password", "secret")


class Protected(NamedTuple):
    """The event as it will be sealed, and the vault rows its erasable values went to."""

    event: Event
    vault_rows: list[VaultRow]


def protect(event: Event, policy: Policy, keys: Keys, held: Mapping[tuple[str, str, str], str | VaultRow] | None = None
            ) -> Protected:
    """Mask, drop, pseudonymize or commit every personal value of event, as policy says.

    The input event is left unchanged. The result is a new Event; whatever of the input needed no
    change (a nested Struct, dict, list or string) is shared with it, not copied, so treat both as
    read-only (finalize() the input before protecting it, as the ingest pipeline does).
    ``held`` maps (log, subject, value) to the commitment of a value the vault already holds: such a
    value is sealed under that commitment again, and gets no new vault row; or to the VaultRow of a value
    whose row is not yet known to be written: that row comes back again, with this event's rows.
    """
    log = event.log or "default"
    scope = policy._scopes.get((log, event.source.component)) or policy.scope(log, event.source.component)
    prepared = scope.memo.get(keys) or _prepared(policy, keys, log, event.source.component)
    found = _Found()
    found.held, found.log, found.subject = held, log, event.actor.id
    try:
        protected = _walk_event(event, prepared, found)
    except _Unsure:
        return _protect_reference(event, policy, keys)
    if protected is event:
        protected = event.__copy__()
    rows = []
    if found:
        subject = event.actor.id
        rows = [VaultRow(subject, log, c, salt, v, path, t) for c, salt, v, path, t in found]
    return _new_tuple(Protected, (protected, rows))  # Protected(protected, rows), without its Python __new__


# -- the fast walk -------------------------------------------------------------------------------


class _Found(list):
    """The vault rows one walk found, as (commitment, salt, value, path, token), and what a walk
    needs to reuse the commitment of a value already held (see protect's ``held``)."""

    __slots__ = ("held", "log", "subject")


class _Unsure(Exception):
    """The fast walk met something only the reference walk is sure to handle exactly."""


class _Prepared:
    """What the fast walk needs for one (log, component) scope and one set of keys; read-only."""

    __slots__ = ("plans", "attributes", "plan", "scan", "clean", "names", "inner_copy", "outer_copy", "pseudonyms")

    def __init__(self, scope: Scope, scanner: Scanner, keys: Keys, log: str):
        self.plans: tuple[Plan, ...] = tuple(scope.plan(path) for path in _PATHS)  # aligned with _PATHS
        self.attributes: Plan | None = scope.attributes  # the plan of every attribute, if only one
        self.plan = scope.plan
        self.scan = scanner.scan
        self.clean = scanner.clean
        self.names = scanner.clean_names  # attribute names found clean -> _child_key_kind(name)
        inner, outer = keys.mac(log).pads()  # HMAC-SHA256 states after the padded log key
        self.inner_copy, self.outer_copy = inner.copy, outer.copy
        self.pseudonyms: dict[str, str] = {}  # value -> its pseudonym, remembered (a session id recurs)


def _prepared(policy: Policy, keys: Keys, log: str, component: str) -> _Prepared:
    """The _Prepared of a policy's (log, component) scope and these keys (made once, then remembered)."""
    memo = policy.scope(log, component).memo
    prepared = memo.get(keys)
    if prepared is None:
        if len(memo) >= 16:
            memo.clear()
        prepared = memo[keys] = _Prepared(policy.scope(log, component), policy.scanner, keys, log)
    return prepared


_new_tuple = tuple.__new__


# Strings the scanner found nothing in (Scanner.clean), so the next event's `node-1` or `latency_ms`
# costs a set lookup. Only strings sealed as they are go in (never one masked for its field's name).
CLEAN_MAX_ENTRIES = 32_768
PSEUDONYMS_MAX_ENTRIES = 32_768  # pseudonyms remembered per (log, component) scope and key
CLEAN_MAX_CHARS = 256


def _is_clean(text: str, clean: set[str]) -> bool:
    """True if no detector can find anything in text (remembered); False if text needs a full scan."""
    if text.isascii():  # might_match(text), inlined for the common case
        data = text.encode()
        if not (data.isalnum() and data.islower()) and _ascii_gate((b"/" + data).translate(_CLASSES)):
            return False
    elif might_match(text):
        return False
    _remember_clean(text, clean)
    return True


def _remember_clean(text: str, clean: set[str]) -> None:
    """Remember a string no detector finds anything in (short ones; the set is emptied when full)."""
    if len(text) <= CLEAN_MAX_CHARS:
        if len(clean) >= CLEAN_MAX_ENTRIES:
            clean.clear()
        clean.add(text)


def _child_key_kind(key: str, inherited: str | None) -> str | None:
    """'password'/'secret' if secret by name, 'weak' if only when random, or the personal kind it names."""
    if inherited in _SECRET:
        return inherited
    kind = names.classify_key(key)
    if kind is None and not key.startswith("["):
        return names.personal_kind(key)
    return kind


# The Struct part of the walk is generated from the Event schema (msgspec.inspect), one function per
# Struct type with one straight block per field: Python spends most of a protect() call on
# per-field bookkeeping, and a generic loop over field descriptors doubled it. A field of a type the
# generator has no block for makes every event that sets it go to the reference walk. The source is
# in _WALK_SOURCE (and shows in tracebacks).


_UNSUPPORTED: list[str] = []  # fields the generator has no block for (events setting them go slow)


def _unwrap(info: Any) -> Any:
    """The one non-None type of an optional field (None if there are several)."""
    options = [
        t for t in getattr(info.type, "types", (info.type,)) if not isinstance(t, msgspec.inspect.NoneType)
    ]
    return options[0] if len(options) == 1 else None


def _length_check(t: Any, var: str) -> str:
    """A condition true when a changed string var breaks the field's constraints (or may)."""
    if t.pattern is not None or t.min_length:
        return "True"
    return f"len({var}) > {t.max_length}" if t.max_length is not None else "False"


def _generate(struct: type, prefix: str, inherited: str | None, paths: list[str], out: list[str]) -> str:
    """Append the source of the walk function of a Struct type (and of those it holds) to out."""
    ins = msgspec.inspect
    name = f"_walk_{_type_name(struct)}"
    if struct.__struct_config__.frozen:  # the walk sets changed fields on a copy
        raise TypeError(f"{struct.__name__} is frozen: the generated privacy walk cannot change its copies")
    body = []
    for info in ins.type_info(struct).fields:
        path = f"{prefix}.{info.encode_name}" if prefix else info.encode_name
        if path in UNSCANNED:
            continue
        key_kind = _child_key_kind(info.encode_name, inherited)
        t = _unwrap(info)
        plain = info.default in (None, msgspec.NODEFAULT) and info.default_factory is msgspec.NODEFAULT
        paths.append(path)
        index = len(paths) - 1
        attr = info.name
        body.append(f"    # {path}")
        body.append(f"    value = obj.{attr}")
        if isinstance(t, ins.StrType) and plain:
            dropped = repr(DROPPED) if path in REQUIRED else "None"
            # a string of a field whose name says nothing: sealed as it is when no detector can match
            clean = "whole == 'scan' and (value in clean or _is_clean(value, clean))"
            body += [
                "    if value is not None:",
                "        if type(value) is not str:",
                "            raise _Unsure",
                f"        plan = plans[{index}]",
                "        whole = plan.whole",
                f"        if {clean if key_kind is None else 'False'}:",
                "            new = value",
                "        elif whole == 'erasable' and found.held is not None and "
                "(known := found.held.get((found.log, found.subject, value))) is not None:",
                "            new = known if type(known) is str else _carry(known, found)  # same commitment",
                "        elif whole == 'erasable':  # _erasable(), inlined",
                "            data = value.encode('utf-8', 'surrogatepass')",
                "            try:",
                "                salt = _next_salt()",
                "            except IndexError:",
                "                salt = _fresh_salt()",
                f"            new = {COMMITMENT_PREFIX!r} + _sha256(salt + data).hexdigest()",
                "            inner = prepared.inner_copy()",
                "            inner.update(data)",
                "            outer = prepared.outer_copy()",
                "            outer.update(inner.digest())",
                f"            found.append((new, salt, value, {path!r}, outer.hexdigest()))",
                "        elif whole == 'pseudonymize':",
                "            new = prepared.pseudonyms.get(value) or _pseudonym(value, prepared)",
                "        else:",
                f"            new = _string(value, {path!r}, plan, {key_kind!r}, prepared, found)",
                "        if new is not value:",
                "            if new is _DROP:",
                f"                new = {dropped}",
                f"            elif {_length_check(t, 'new')}:",
                "                raise _Unsure",
                "            if changed is None:",
                "                changed = obj.__copy__()",
                f"            changed.{attr} = new",
            ]
        elif isinstance(t, ins.StructType) and plain:
            inner = _generate(t.cls, path, key_kind, paths, out)
            body += [
                "    if value is not None:",
                f"        if type(value) is not {_type_name(t.cls)}:",
                "            raise _Unsure",
                f"        new = {inner}(value, prepared, found)",
                "        if new is not value:",
                "            if changed is None:",
                "                changed = obj.__copy__()",
                f"            changed.{attr} = new",
            ]
        elif (
            isinstance(t, ins.ListType)
            and isinstance(t.item_type, ins.StrType)
            and plain
            and t.max_length is None
        ):
            body += [
                "    if value is not None:",
                "        if type(value) is not list:",
                "            raise _Unsure",
                f"        plan = plans[{index}]",
                f"        if {'False' if key_kind else 'plan.whole == ' + repr('scan') + ' and _all_clean(value, clean)'}:",
                "            new = value",
                "        else:",
                f"            new = _list(value, {path!r}, plan, {key_kind!r}, prepared, found, False)",
                "        if new is not value:",
                "            for item in new:",
                f"                if type(item) is not str or {_length_check(t.item_type, 'item')}:",
                "                    raise _Unsure",
                "            if changed is None:",
                "                changed = obj.__copy__()",
                f"            changed.{attr} = new",
            ]
        elif (
            isinstance(t, ins.DictType)
            and isinstance(t.key_type, ins.StrType)
            and isinstance(t.value_type, ins.AnyType)
            and t.min_length is None
            and t.max_length is None
        ):
            keys = path.startswith("attributes")
            body += [
                "    if value is not None:",
                "        if type(value) is not dict:",
                "            raise _Unsure",
                "        if value:",
                f"            new = _dict(value, {path!r}, {key_kind!r}, prepared, found, {keys})",
                "            if new is not value:",
                "                if changed is None:",
                "                    changed = obj.__copy__()",
                f"                changed.{attr} = new",
            ]
        elif isinstance(t, ins.IntType) and plain and key_kind not in _SECRET:
            # a number only changes (into a string) under a secret name
            body += ["    if value is not None and type(value) is not int:", "        raise _Unsure"]
        else:
            _UNSUPPORTED.append(path)
            body += ["    if value is not None:", "        raise _Unsure"]
    out += [
        f"def {name}(obj, prepared, found):",
        f'    """{struct.__name__}, protected (generated): obj itself if nothing changed, else a new one."""',
        "    plans = prepared.plans",
        "    clean = prepared.clean",
        "    changed = None  # a shallow copy of obj, made at the first change",
        *body,
        "    return obj if changed is None else changed",
        "",
        "",
    ]
    return name


def _compile_walk() -> tuple[Any, tuple[str, ...], str]:
    paths: list[str] = []
    lines: list[str] = []
    entry = _generate(Event, "", None, paths, lines)
    source = "\n".join(lines)
    filename = "<trailseal.privacy.protect: generated walk>"
    namespace: dict[str, Any] = {
        **{_type_name(t): t for t in (Event, *_struct_types(Event))},
        "_Unsure": _Unsure,
        "_DROP": _DROP,
        "_is_clean": _is_clean,
        "_next_salt": _salts.popleft,
        "_fresh_salt": fresh_salt,
        "_sha256": hashlib.sha256,
        "_string": _string,
        "_pseudonym": _pseudonym,
        "_list": _list,
        "_all_clean": _all_clean,
        "_dict": _dict,
        "_carry": _carry,
    }
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return namespace[entry], tuple(paths), source


def _type_name(struct: type) -> str:
    """The name a Struct type goes by in the generated source (unique, whatever its __name__)."""
    return f"{struct.__name__}_{id(struct):x}"


def _struct_types(struct: type) -> list[type]:
    """The Struct types a Struct type holds, at any depth."""
    found = []
    for info in msgspec.inspect.type_info(struct).fields:
        t = _unwrap(info)
        if isinstance(t, msgspec.inspect.StructType):
            found += [t.cls, *_struct_types(t.cls)]
    return found


def _dict(data: dict, path: str, key_kind: str | None, prepared: _Prepared, found: list, keys: bool) -> Any:
    """data protected (the same dict if nothing changed); its keys too if keys (under `attributes`)."""
    out = None
    constant = prepared.attributes if keys else None
    clean = prepared.clean
    names = prepared.names
    secret = key_kind in _SECRET
    for key, value in data.items():
        new_key = key
        child_kind = names.get(key, _DROP) if keys else _DROP
        if child_kind is _DROP:  # a key not seen clean before
            if type(key) is not str:
                raise _Unsure
            child_kind = _child_key_kind(key, None)
            if keys:
                if _is_clean(key, clean):
                    if len(names) >= CLEAN_MAX_ENTRIES:
                        names.clear()
                    names[key] = child_kind
                else:
                    new_key = _key(key, f"{path}.{key}", prepared, found)
                    if new_key is _DROP:
                        if out is None:
                            out = _first(data, key)
                        continue
        if secret:
            child_kind = key_kind
        kind = type(value)
        if kind is str:
            if child_kind is None and constant is not None and (value in clean or _is_clean(value, clean)):
                result = value
            else:
                child = f"{path}.{new_key}"
                result = _string(value, child, constant or prepared.plan(child), child_kind, prepared, found)
        elif kind is dict:
            result = _dict(value, f"{path}.{new_key}", child_kind, prepared, found, keys)
        elif kind is list:
            if child_kind is None and constant is not None and _all_clean(value, clean):
                result = value
            else:
                child = f"{path}.{new_key}"
                result = _list(
                    value, child, constant or prepared.plan(child), child_kind, prepared, found, keys
                )
        elif kind is int or kind is float:
            if child_kind in _SECRET:
                child = f"{path}.{new_key}"
                plan = constant or prepared.plan(child)
                result = _string(str(value), child, plan, child_kind, prepared, found)
            else:
                result = value
        elif kind is bool or value is None:
            result = value
        else:
            raise _Unsure
        if out is None:
            if new_key is key and result is value:
                continue
            out = _first(data, key)
        if result is _DROP:
            continue
        out[_unique(new_key, out)] = result
    return data if out is None else out


def _all_clean(items: list, clean: set[str]) -> bool:
    """True if every item is a string already found clean (so a scanned list stays as it is)."""
    try:
        return clean.issuperset(items)
    except TypeError:  # an unhashable item (a dict or list): walk the list
        return False


def _first(data: dict, stop: str) -> dict:
    """A new dict of the items of data before key stop (unchanged so far, so their keys are distinct)."""
    out = {}
    for key, value in data.items():
        if key is stop:
            break
        out[key] = value
    return out


def _list(
    items: list, path: str, plan: Plan, key_kind: str | None, prepared: _Prepared, found: list, keys: bool
) -> Any:
    """items protected, dropped ones left out (the same list if nothing changed)."""
    out = None
    clean = prepared.clean
    scan_only = key_kind is None and plan.whole == "scan"
    i = -1
    for item in items:
        i += 1
        kind = type(item)
        if kind is str:
            if scan_only and (item in clean or _is_clean(item, clean)):
                result = item
            else:
                result = _string(item, path, plan, key_kind, prepared, found)
        elif kind is dict:
            result = _dict(item, path, key_kind, prepared, found, keys)
        elif kind is list:
            result = _list(item, path, plan, key_kind, prepared, found, keys)
        elif kind is int or kind is float:
            result = (
                _string(str(item), path, plan, key_kind, prepared, found) if key_kind in _SECRET else item
            )
        elif kind is bool or item is None:
            result = item
        else:
            raise _Unsure
        if out is None:
            if result is item:
                continue
            out = items[:i]
        if result is not _DROP:
            out.append(result)
    return items if out is None else out


def _key(key: str, path: str, prepared: _Prepared, found: list) -> Any:
    """An attribute name carrying personal data is protected like a value (drop removes the entry)."""
    findings = prepared.scan(key)
    if not findings:
        return key
    return _apply(key, findings, path, prepared.plan(path), prepared, found)


def _string(value: str, path: str, plan: Plan, key_kind: str | None, prepared: _Prepared, found: list) -> Any:
    """The sealed form of one string value at path."""
    whole = plan.whole
    if whole != "scan":
        return value if whole == "keep" else _sealed(whole, None, value, path, prepared, found)
    if key_kind is None:
        return _findings(value, path, plan, prepared, found)
    if key_kind in _SECRET or (key_kind == "weak" and looks_random(value)):
        kind = "password" if key_kind == "password" else "secret"
        return _sealed(plan.kinds[kind], kind, value, path, prepared, found)
    findings = prepared.scan(value)
    if not findings and key_kind in KINDS and value.strip():
        findings = [Finding(key_kind, 0, len(value))]  # `{"phone": "555 0132"}`: the name says what it is
    return _apply(value, findings, path, plan, prepared, found) if findings else value


def _findings(value: str, path: str, plan: Plan, prepared: _Prepared, found: list) -> Any:
    """value with what the detectors find in it replaced (value itself if they find nothing)."""
    findings = prepared.scan(value)
    if not findings:
        _remember_clean(value, prepared.clean)  # the next `AUTH` or `GET` costs a set lookup, not a scan
        return value
    return _apply(value, findings, path, plan, prepared, found)


def _apply(
    text: str, findings: list[Finding], path: str, plan: Plan, prepared: _Prepared, found: list
) -> Any:
    """Replace each finding as its kind's action says; any `drop` removes the whole field."""
    actions = [plan.kinds[f.kind] for f in findings]
    if "drop" in actions:
        return _DROP
    if actions.count("keep") == len(actions):  # the same string object: nothing around it is copied
        return text
    pieces, last = [], 0
    for finding, action in zip(findings, actions, strict=True):
        pieces.append(text[last : finding.start])
        pieces.append(_sealed(action, finding.kind, text[finding.start : finding.end], path, prepared, found))
        last = finding.end
    pieces.append(text[last:])
    return "".join(pieces)


def _sealed(action: str, kind: str | None, value: str, path: str, prepared: _Prepared, found: list) -> Any:
    """The sealed form of one value under one action."""
    if action == "mask":
        return mask(kind, value)
    if action == "pseudonymize":
        return _pseudonym(value, prepared)
    if action == "keep":
        return value
    if action == "drop":
        return _DROP
    return _erasable(value, path, prepared, found)  # as the reference walk: any other action commits


def _pseudonym(value: str, prepared: _Prepared) -> str:
    """`ps:` + 128 bits of HMAC-SHA256 under the log's key (tokens.pseudonym, with the key prepared),
    remembered for short values (a session or user id recurs in event after event)."""
    inner = prepared.inner_copy()
    inner.update(value.encode("utf-8", "surrogatepass"))
    outer = prepared.outer_copy()
    outer.update(inner.digest())
    pseudonym = PSEUDONYM_PREFIX + outer.hexdigest()[:PSEUDONYM_HEX]
    if len(value) <= CLEAN_MAX_CHARS:
        remembered = prepared.pseudonyms
        if len(remembered) >= PSEUDONYMS_MAX_ENTRIES:
            remembered.clear()
        remembered[value] = pseudonym
    return pseudonym


def _erasable(value: str, path: str, prepared: _Prepared, found: list) -> str:
    """Send value to the vault (found collects the rows) and return its commitment."""
    if found.held is not None and (known := found.held.get((found.log, found.subject, value))) is not None:
        return known if type(known) is str else _carry(known, found)
    data = value.encode("utf-8", "surrogatepass")
    try:
        salt = _salts.popleft()  # fresh_salt() without the call, when the pool has one
    except IndexError:
        salt = fresh_salt()
    commitment = COMMITMENT_PREFIX + _sha256(salt + data).hexdigest()
    inner = prepared.inner_copy()  # HMAC-SHA256 under the log's key: the search token
    inner.update(data)
    outer = prepared.outer_copy()
    outer.update(inner.digest())
    found.append((commitment, salt, value, path, outer.hexdigest()))
    return commitment


def _carry(row: VaultRow, found: list) -> str:
    """The commitment of a value held but not yet known to be written: the event carries a copy of its
    vault row, so it never depends on a row that may never be written (the store keeps one per commitment)."""
    found.append((row.commitment, row.salt, row.value, row.field, row.token))
    return row.commitment


_sha256 = hashlib.sha256
_ascii_gate = _ASCII_GATE.search
_walk_event, _PATHS, _WALK_SOURCE = _compile_walk()


def _unique(key: str, taken: Mapping[str, Any]) -> str:
    """key, or key~2, key~3... when masking made two keys equal."""
    n, candidate = 1, key
    while candidate in taken:
        n += 1
        candidate = f"{key}~{n}"
    return candidate


# -- the reference walk: builtins -> walk -> convert (exact for anything, and slow) ----------------


@dataclass
class _Walk:
    """What every step of one reference protect needs."""

    policy: Policy
    keys: Keys
    log: str
    component: str
    subject: str
    rows: list[VaultRow] = field(default_factory=list)

    def plan(self, path: str) -> Plan:
        return self.policy.plan(self.log, self.component, path)


def _protect_reference(event: Event, policy: Policy, keys: Keys) -> Protected:
    """protect() the plain way; the fast walk hands over to this whenever it is unsure."""
    walk = _Walk(policy, keys, event.log or "default", event.source.component, event.actor.id)
    if event.attributes:
        _refuse_unsupported(event.attributes, "attributes")
    data = msgspec.to_builtins(event)
    protected = _protect_mapping(data, "", walk, None)
    try:
        return Protected(msgspec.convert(protected, Event), walk.rows)
    except msgspec.ValidationError as exc:
        raise EventError(f"event no longer valid after privacy protection: {exc}") from None


def _refuse_unsupported(value: Any, path: str, depth: int = 1) -> None:
    """Refuse a value JSON has no type for (a datetime, bytes, a set, a key that is not text), naming it as
    encode_event does, rather than let to_builtins turn it into text; the rest is left to encode_event."""
    kind = type(value)
    if kind is dict or kind is list:
        if depth > MAX_DEPTH:
            return  # encode_event refuses the nesting itself
        items = value.items() if kind is dict else enumerate(value)
        for key, item in items:
            if kind is dict and type(key) is not str:
                raise EventError(f"key {key!r} is not a string", path)
            _refuse_unsupported(item, f"{path}.{key}" if kind is dict else f"{path}[{key}]", depth + 1)
    elif not (kind is str or kind is int or kind is float or kind is bool or value is None):
        raise EventError(f"unsupported type {kind.__name__}", path)


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


def _protect_key(key: str, path: str, walk: _Walk) -> Any:
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
    if isinstance(value, int | float) and not isinstance(value, bool) and key_kind in _SECRET:
        return _protect_string(str(value), path, walk, key_kind)
    return value


def _protect_string(value: str, path: str, walk: _Walk, key_kind: str | None) -> Any:
    plan = walk.plan(path)
    if plan.whole == "keep":
        return value
    if plan.whole != "scan":
        return _replace(plan.whole, None, value, path, walk)
    if key_kind in _SECRET or (key_kind == "weak" and looks_random(value)):
        kind = "password" if key_kind == "password" else "secret"
        return _replace(plan.action(kind), kind, value, path, walk)
    findings = walk.policy.scanner.scan(value)
    if not findings and key_kind in KINDS and value.strip():
        findings = [Finding(key_kind, 0, len(value))]
    return _apply_findings(value, findings, path, walk) if findings else value


def _apply_findings(text: str, findings: list[Finding], path: str, walk: _Walk) -> Any:
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


# -- reads ---------------------------------------------------------------------------------------


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

"""Custom JSON sources mapped by a declarative TOML file, so a new source needs configuration only.

Pass the mapping as ``ctx['mapping']``: TOML text, a dict of the same shape, or a compiled
:class:`Mapping` (``load_mapping(text)``; compile once, reuse). The shape:

    [source]                    # constants for event.source; format defaults to "mapping"
    component = "billing-api"
    kind = "app"

    [records]
    path = "events"             # where the list of records is; default: the document itself
                                # (an object is one record, an array is many)
    [fields]                    # event field = path in the record: dotted keys, [n] list items,
    time = "ts"                 # ["key.with.dots"] for keys that contain dots
    action = "type"
    outcome = "result"
    "actor.id" = "user.email"
    "actor.ip" = "client.ip"
    "request.status" = "http.status"
    "target.name" = "resource"
    id = "event_id"

    [constants]                 # fixed values
    category = "data_access"

    [defaults]                  # used when the path is missing, null or ""
    "actor.type" = "user"

    [values.outcome]            # value maps, applied to the extracted value (as text)
    ok = "success"
    denied = "failure"

    [time]
    format = "rfc3339"          # rfc3339 | unix | unix_ms | unix_us | unix_ns | a strptime pattern
    timezone = "UTC"            # for strptime patterns without %z (IANA name or +HH:MM)

    [attributes]
    rest = true                 # copy top-level fields no path above used into attributes
    "billing.plan" = "account.plan"   # attribute = path

    [options]
    id_prefix = "billing:"      # prefixed to a mapped id
    http_outcome = true         # no outcome mapped: derive it from request.status (401/403, 5xx)

Event fields that can be mapped: id, time, log, category, action, outcome, reason, severity,
actor.{id,type,name,session,roles,ip,user_agent}, target.{type,id,name},
request.{method,path,status,bytes,trace_id,span_id}, source.{component,kind,host,ip,endpoint}.
A mapping error (unknown field, bad path) raises MappingError when the mapping is loaded; a record
that lacks a required field or has a value the schema forbids raises FormatError.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache, partial
from typing import Any

from trailseal.event import ACTION_PATTERN, CATEGORIES, FIELD_PATHS, OUTCOMES, SEVERITIES, SourceKind
from trailseal.formats import FormatError
from trailseal.formats._common import (
    all_or_error,
    as_is,
    bounded,
    collect,
    from_unix_nanos,
    http_outcome,
    json_safe,
    load_sealable_json,
    rfc3339,
    sha256_hex,
    utc_text,
    zone,
)

FORMAT = "mapping"
FIELDS = frozenset(FIELD_PATHS) - {"received", "raw_hash", "attributes"}  # what a mapping may set
INT_FIELDS = frozenset({"request.status", "request.bytes"})
CHOICES = {
    "category": CATEGORIES,
    "outcome": OUTCOMES,
    "severity": SEVERITIES,
    "actor.type": ("user", "service", "anonymous", "system"),
    "source.kind": SourceKind.__args__,
}
REQUIRED = ("time", "category", "action", "outcome", "actor.id", "source.component", "source.kind")
TIME_SCALES = {"unix": 1_000_000_000, "unix_ms": 1_000_000, "unix_us": 1_000, "unix_ns": 1}
_TOKEN = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)|(\.)')
_BAD_DOTS = re.compile(r"^\.|\.\.|\.$|\.\[|\](?![.\[]|$)")
_ACTION_RE = re.compile(ACTION_PATTERN)
_REQUIRED = frozenset(REQUIRED)
_PARTS = {name: name.partition(".") for name in FIELDS}  # _nest's split of each event field
Path = tuple[str | int, ...]


class MappingError(ValueError):
    """A mapping file is invalid; the message names the table and key."""


@dataclass(frozen=True)
class Mapping:
    """A compiled mapping: paths parsed, tables checked."""

    fields: dict[str, Path]
    constants: dict[str, Any]
    defaults: dict[str, Any]
    values: dict[str, dict[str, Any]]
    attributes: dict[str, Path]
    records_path: Path | None = None
    rest: bool = False
    time_format: str = "rfc3339"
    timezone: str | None = None
    id_prefix: str = ""
    http_outcome: bool = True
    used_keys: frozenset[str] = field(default_factory=frozenset)

    @cached_property
    def plan(self) -> _Plan:
        """The mapping arranged for map_record (built on first use, kept with the mapping)."""
        return _Plan(self)


def load_mapping(spec: str | dict[str, Any]) -> Mapping:
    """Compile a mapping from TOML text or a dict of the same shape; MappingError if it is invalid."""
    if isinstance(spec, str):
        return _load_text(spec)
    return _compile(spec)


@lru_cache(maxsize=32)
def _load_text(text: str) -> Mapping:
    try:
        return _compile(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping is not valid TOML: {exc}") from None


def _compile(doc: dict[str, Any]) -> Mapping:
    unknown = set(doc) - {
        "source",
        "records",
        "fields",
        "constants",
        "defaults",
        "values",
        "time",
        "attributes",
        "options",
    }
    if unknown:
        raise MappingError(f"unknown mapping table(s): {', '.join(sorted(unknown))}")
    constants = {f"source.{k}": v for k, v in _table(doc, "source").items()}
    constants.setdefault("source.format", FORMAT)
    constants.update(_table(doc, "constants"))
    fields = {name: parse_path(path, f"fields.{name}") for name, path in _table(doc, "fields").items()}
    defaults = dict(_table(doc, "defaults"))
    values = {name: dict(table) for name, table in _table(doc, "values").items()}
    for table_name, names in (
        ("fields", fields),
        ("constants", constants),
        ("defaults", defaults),
        ("values", values),
    ):
        bad = set(names) - FIELDS
        if bad:
            raise MappingError(f"[{table_name}] names unknown event field(s): {', '.join(sorted(bad))}")
    constants, defaults = _typed_table(constants, "constants"), _typed_table(defaults, "defaults")
    attributes_table = dict(_table(doc, "attributes"))
    rest = bool(attributes_table.pop("rest", False))
    attributes = {name: parse_path(path, f"attributes.{name}") for name, path in attributes_table.items()}
    records = _table(doc, "records")
    time_table, options = _table(doc, "time"), _table(doc, "options")
    used = frozenset(str(p[0]) for p in [*fields.values(), *attributes.values()] if p)
    return Mapping(
        fields=fields,
        constants=constants,
        defaults=defaults,
        values=values,
        attributes=attributes,
        records_path=parse_path(records["path"], "records.path") if "path" in records else None,
        rest=rest,
        time_format=str(time_table.get("format", "rfc3339")),
        timezone=time_table.get("timezone"),
        id_prefix=str(options.get("id_prefix", "")),
        http_outcome=bool(options.get("http_outcome", True)),
        used_keys=used,
    )


def _typed_table(table: dict[str, Any], name: str) -> dict[str, Any]:
    """Constants or defaults converted to their field types once, at load; MappingError if invalid."""
    try:
        return {field_name: _typed(field_name, value) for field_name, value in table.items()}
    except FormatError as exc:
        raise MappingError(f"[{name}]: {exc.reason}") from None


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise MappingError(f"[{name}] must be a table")
    return value


def parse_path(path: Any, where: str) -> Path:
    """'a.b[0]["c.d"]' -> ('a', 'b', 0, 'c.d'); MappingError if malformed."""
    if not isinstance(path, str) or not path:
        raise MappingError(f"{where}: a path must be a non-empty string")
    parts: list[str | int] = []
    pos = 0
    for match in _TOKEN.finditer(path):
        if match.start() != pos:
            break
        quoted, index, key, _dot = match.groups()
        if quoted is not None:
            parts.append(quoted.replace('\\"', '"'))
        elif index is not None:
            parts.append(int(index))
        elif key is not None:
            parts.append(key)
        pos = match.end()
    if pos != len(path) or not parts or _BAD_DOTS.search(path):
        raise MappingError(f"{where}: cannot parse path {path!r}")
    return tuple(parts)


def lookup(record: Any, path: Path) -> Any:
    """The value at path in a record, or None where any step is missing."""
    value = record
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and -len(value) <= step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def split(data: bytes) -> list[bytes]:
    """A mapped document is one record: the whole JSON document."""
    return [data] if data.strip() else []


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """All records of a document, mapped; FormatError if any record cannot be mapped."""
    return all_or_error(parse_batch(raw, **ctx), "record")


def parse_batch(raw: bytes, **ctx: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(events, [(record index, reason)]) for a JSON document under ctx['mapping']."""
    spec = ctx.get("mapping")
    if spec is None:
        raise FormatError("the mapping format needs ctx['mapping'] (TOML text, dict or Mapping)")
    mapping = spec if isinstance(spec, Mapping) else load_mapping(spec)
    doc, sealable = load_sealable_json(raw, 1)
    safe = as_is if sealable else json_safe
    records = lookup(doc, mapping.records_path) if mapping.records_path else doc
    if mapping.records_path and not isinstance(records, list):
        raise FormatError(f"no list of records at path {'.'.join(map(str, mapping.records_path))}")
    digest = sha256_hex(raw)
    return collect(
        records if isinstance(records, list) else [records], _map_record, mapping.plan, digest, ctx, safe
    )


def map_record(
    mapping: Mapping, record: Any, digest: str, ctx: dict[str, Any], safe: Callable[..., Any] = json_safe
) -> dict[str, Any]:
    """One source record -> one event dict, by the mapping (safe: json_safe, or as_is for a sealable
    document)."""
    return _map_record(record, mapping.plan, digest, ctx, safe)


class _Plan:
    """A mapping arranged so a record is mapped without reading its tables: per field the step to
    look up, the value map and a quick test that the value needs no conversion. Built once per
    Mapping, whose tables are not to be changed after it is first used."""

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self.constants = mapping.constants
        self.fields = tuple(
            (
                name,
                path[0] if len(path) == 1 and isinstance(path[0], str) else None,
                path,
                mapping.values.get(name),
                _as_is_test(name),
            )
            for name, path in mapping.fields.items()
        )
        self.defaults = tuple(mapping.defaults.items())
        self.time = _time_reader(mapping.time_format, mapping.timezone)
        self.id_prefix = mapping.id_prefix
        self.http_outcome = mapping.http_outcome
        self.rest, self.used_keys = mapping.rest, mapping.used_keys
        self.attributes = tuple(mapping.attributes.items())
        self.constants_fit = _fit(self.constants, mapping.defaults)


def _map_record(
    record: Any, plan: _Plan, digest: str, ctx: dict[str, Any], safe: Callable[..., Any]
) -> dict[str, Any]:
    """map_record with the arguments in collect's order."""
    if not isinstance(record, dict):
        raise FormatError(f"a record must be a JSON object, not {type(record).__name__}")
    flat = _flat_fields(plan, record)
    component = ctx.get("component")
    if component:
        flat["source.component"] = ctx["component"]
    if "outcome" not in flat and plan.http_outcome and "request.status" in flat:
        flat["outcome"] = http_outcome(flat["request.status"])
    if not flat.keys() >= _REQUIRED:
        _missing(plan.mapping, flat)
    flat["time"] = plan.time(flat["time"])
    if "id" in flat:
        flat["id"] = plan.id_prefix + flat["id"]
    event = _nest(flat)
    event["raw_hash"] = digest
    attributes = _attributes(plan, record, safe)
    if attributes:
        event["attributes"] = attributes
    # Mapped values passed _typed, whose length limits are bounded's except request.method's: only a
    # ctx component, a constant load_mapping did not check or a method can fail bounded.
    if component or not plan.constants_fit or "request.method" in flat:
        return bounded(event)
    return event


def _missing(mapping: Mapping, flat: dict[str, Any]) -> None:
    """FormatError naming the required fields a record lacks."""
    missing = [name for name in REQUIRED if name not in flat]
    where = {name: ".".join(map(str, mapping.fields[name])) for name in missing if name in mapping.fields}
    raise FormatError(f"record has no {', '.join(missing)}" + (f" (paths {where})" if where else ""))


def _fit(constants: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """Whether the constants and defaults pass bounded (they always do when load_mapping made them)."""
    try:
        bounded(_nest(constants))
        bounded(_nest(defaults))
    except Exception:  # noqa: BLE001 (any failure: then every event goes through bounded)
        return False
    return True


def _flat_fields(plan: _Plan, record: dict[str, Any]) -> dict[str, Any]:
    """Constants, then mapped paths (through value maps, checked and typed), then defaults."""
    flat = dict(plan.constants)
    for name, key, path, table, as_is_test in plan.fields:
        value = record.get(key) if key is not None else lookup(record, path)
        if table is not None and value is not None:
            value = table.get(str(value).lower() if isinstance(value, bool) else str(value), value)
        if value is not None and value != "":
            flat[name] = value if as_is_test(value) else _typed(name, value)
    for name, value in plan.defaults:
        flat.setdefault(name, value)
    return flat


def _as_is_test(name: str) -> Callable[[Any], bool]:
    """A quick test that _typed(name, value) gives back the value itself; a value that fails it goes
    through _typed (for its conversion or its error). Partials of module functions: a plan pickles."""
    if name == "time":
        return _always
    if name in INT_FIELDS:
        return partial(_small_int, 999 if name == "request.status" else 2**53)
    if name == "actor.roles":
        return _never
    if name in CHOICES:
        return partial(_choice, frozenset(CHOICES[name]))
    if name == "action":
        return _action
    return partial(_short_text, _text_limit(name))


def _always(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


def _small_int(limit: int, value: Any) -> bool:
    return type(value) is int and 0 <= value <= limit


def _choice(choices: frozenset[str], value: Any) -> bool:
    return type(value) is str and value in choices


def _action(value: Any) -> bool:
    return type(value) is str and len(value) <= 1024 and _ACTION_RE.match(value) is not None


def _short_text(limit: int, value: Any) -> bool:
    return type(value) is str and len(value) <= limit


def _typed(name: str, value: Any) -> Any:
    """A value converted to the type its event field needs, or FormatError."""
    if name == "time":
        return value
    if name in INT_FIELDS:
        number = int(value) if isinstance(value, str) and value.isdecimal() else value
        limit = 999 if name == "request.status" else 2**53
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= limit:
            raise FormatError(f"{name} must be an integer from 0 to {limit}, got {str(value)[:32]!r}")
        return number
    if name == "actor.roles":
        roles = value if isinstance(value, list) else [value]
        return [str(role) for role in roles][:256]
    if isinstance(value, dict | list):
        raise FormatError(f"{name} must be a single value, got a {type(value).__name__}")
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if name in CHOICES and text not in CHOICES[name]:
        raise FormatError(f"{name} must be one of {', '.join(CHOICES[name])}; got {text[:40]!r}")
    if name == "action" and not _ACTION_RE.match(text):
        raise FormatError(f"action {text[:64]!r} is not a dotted lower-case name")
    if len(text) > _text_limit(name):
        raise FormatError(f"{name} is {len(text)} characters long")
    return text


def _text_limit(name: str) -> int:
    return (
        8192 if name in ("reason", "target.id", "target.name", "request.path", "actor.user_agent") else 1024
    )


def _time_reader(fmt: str, timezone: str | None) -> Callable[[Any], str]:
    """The function that reads a mapped time in the mapping's time format, as UTC RFC 3339."""
    if fmt == "rfc3339":
        return rfc3339
    if fmt in TIME_SCALES:
        return partial(_unix_time, fmt)
    return partial(_pattern_time, fmt, timezone)


def _unix_time(fmt: str, value: Any) -> str:
    """A number of seconds (or ms, us, ns: fmt) since the epoch as UTC RFC 3339."""
    try:
        number = float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise FormatError(f"time {str(value)[:32]!r} is not a number ({fmt})") from None
    if isinstance(number, float) and number != number:
        raise FormatError("time is NaN")
    scale = TIME_SCALES[fmt]
    return from_unix_nanos(int(number * scale) if isinstance(number, float) else number * scale)


def _pattern_time(fmt: str, timezone: str | None, value: Any) -> str:
    """A time read with a strptime pattern (in the mapping's zone if it has no %z) as UTC RFC 3339."""
    try:
        moment = datetime.strptime(str(value), fmt)
    except ValueError:
        raise FormatError(f"time {str(value)[:40]!r} does not match {fmt!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(timezone))
    return utc_text(moment, str(value))


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'actor.id': x} -> {'actor': {'id': x}}."""
    event: dict[str, Any] = {}
    for name, value in flat.items():
        head, _, tail = _PARTS.get(name) or name.partition(".")
        if not tail:
            event[head] = value
        elif head in event:
            event[head][tail] = value
        else:
            event[head] = {tail: value}
    return event


def _attributes(plan: _Plan, record: dict[str, Any], safe: Callable[..., Any]) -> dict[str, Any]:
    used = plan.used_keys
    attributes = {k: v for k, v in record.items() if k not in used and v is not None} if plan.rest else {}
    for name, path in plan.attributes:
        value = lookup(record, path)
        if value is not None:
            attributes[name] = value
    return safe(attributes, 1)

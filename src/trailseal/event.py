"""The canonical audit event (schema v1) and its one sealed byte form.

An event arrives as JSON (or a dict), is validated strictly, normalized (UTC timestamps with
microseconds, an id when the producer gave none, ``received`` from our clock) and encoded into
canonical bytes: UTF-8 JSON, sorted keys, no insignificant whitespace (RFC 8785-compatible).
Those bytes are what the ledger seals.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time as _time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import rfc8785

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 65535  # tlog-tiles entry bundles carry a uint16 length per entry
MAX_DEPTH = 16  # nesting allowed inside `attributes`
MAX_SAFE_INT = 2**53 - 1  # RFC 8785 numbers are IEEE 754 doubles

Category = Literal[
    "authentication", "authorization", "account", "session", "data_access",
    "data_change", "config", "admin", "system", "finding",
]
Outcome = Literal["success", "failure", "error", "unknown"]
Severity = Literal["info", "low", "medium", "high", "critical"]
ActorType = Literal["user", "service", "anonymous", "system"]
SourceKind = Literal[
    "app", "iast", "scanner", "database", "kubernetes", "cloud", "infra", "gateway", "trailseal",
]

CATEGORIES: tuple[str, ...] = Category.__args__
OUTCOMES: tuple[str, ...] = Outcome.__args__
SEVERITIES: tuple[str, ...] = Severity.__args__

LOG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
ACTION_PATTERN = r"^[a-z0-9_*-]+(\.[a-z0-9_*-]+)*$"
ID_PATTERN = r"^[\x21-\x7e]{1,128}$"

Str = Annotated[str, msgspec.Meta(max_length=8192)]
ShortStr = Annotated[str, msgspec.Meta(max_length=1024)]
LogName = Annotated[str, msgspec.Meta(pattern=LOG_PATTERN, description="ledger name (tenant or stream)")]
Action = Annotated[str, msgspec.Meta(pattern=ACTION_PATTERN, max_length=256,
                                     description="dotted lower-case verb, e.g. user.login")]
EventId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, description="idempotency key, printable ASCII")]
Timestamp = Annotated[str, msgspec.Meta(max_length=64, description="RFC 3339; stored as UTC, µs, Z")]


class _Base(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Actor(_Base):
    id: ShortStr
    type: ActorType | None = None  # filled in as "user" when sealed
    name: ShortStr | None = None
    session: ShortStr | None = None
    roles: list[ShortStr] | None = None
    ip: ShortStr | None = None
    user_agent: Str | None = None


class Source(_Base):
    component: ShortStr
    kind: SourceKind
    format: ShortStr | None = None  # filled in as "json" when sealed
    host: ShortStr | None = None
    ip: ShortStr | None = None
    endpoint: ShortStr | None = None


class Target(_Base):
    type: ShortStr | None = None
    id: Str | None = None
    name: Str | None = None


class Request(_Base):
    method: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    path: Str | None = None
    status: Annotated[int, msgspec.Meta(ge=0, le=999)] | None = None
    bytes: Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)] | None = None
    trace_id: ShortStr | None = None
    span_id: ShortStr | None = None


class Event(_Base):
    """One audit event, schema v1. Field names are stable API."""

    time: Timestamp
    category: Category
    action: Action
    outcome: Outcome
    actor: Actor
    source: Source
    id: EventId | None = None
    received: Timestamp | None = None
    log: LogName | None = None  # filled in as "default" when sealed
    reason: Str | None = None
    severity: Severity | None = None  # filled in as "info" when sealed
    target: Target | None = None
    request: Request | None = None
    attributes: dict[str, Any] = {}
    raw_hash: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None


_PARTS = {"actor": Actor, "source": Source, "target": Target, "request": Request}
# every field path of the schema, dotted for the nested objects ("actor.id", "request.status", ...)
FIELD_PATHS = tuple(path for name in Event.__struct_fields__
                    for path in ([f"{name}.{sub}" for sub in _PARTS[name].__struct_fields__]
                                 if name in _PARTS else [name]))


class EventError(ValueError):
    """An event was rejected; ``field`` names where, the message says why."""

    def __init__(self, reason: str, field: str | None = None):
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class Sealable(msgspec.Struct, frozen=True):
    """A validated, normalized event ready to be sealed: its id, log and canonical bytes."""

    id: str
    log: str
    event: Event
    canonical: bytes
    vault: tuple = ()  # privacy vault rows for this event's erasable values (trailseal.privacy.VaultRow)
    protected: bool = False  # the privacy stage has run (see trailseal.protection)
    assigned: bool = False  # trailseal made the id on receipt (none was sent): new, so the sealer does not
    # look it up among the sealed ids (a UUIDv7 with 62 random bits; a re-send gets an id of its own anyway)


_decoder = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder(order="sorted")
_FIELD_RE = re.compile(r"at `\$\.?([^`]*)`")


_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def utc_now() -> str:
    """The trusted clock, as an RFC 3339 UTC timestamp with microseconds."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def normalize_time(value: str, field: str = "time") -> str:
    """Parse RFC 3339 (any offset) and return UTC with microseconds and ``Z``."""
    if _CANONICAL_TIME.fullmatch(value):
        try:
            if 1970 <= datetime.fromisoformat(value[:-1]).year <= 9998:
                return value
        except ValueError:
            raise EventError(f"not an RFC 3339 timestamp: {value!r}", field) from None
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EventError(f"not an RFC 3339 timestamp: {value[:64]!r}", field) from None
    if moment.tzinfo is None:
        raise EventError(f"timestamp has no UTC offset: {value[:64]!r}", field)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise EventError(f"timestamp out of range: {value[:64]!r}", field) from None
    if not 1970 <= moment.year <= 9998:
        raise EventError(f"timestamp out of range (years 1970-9998): {value[:64]!r}", field)
    return format_time(moment)


_id_lock = threading.Lock()
_id_state = [0, 0, ""]  # last millisecond, sequence within it, that millisecond as "xxxxxxxx-xxxx"
_HEX_CHUNK = 16 * 4096  # random hex digits drawn ahead: one system call per ~3,400 ids. os.urandom lets go
# of the GIL for getrandom(), so each draw can leave serve's event loop waiting behind the sealer thread
_hex = ["", 0]  # os.urandom bytes as hex digits, and the read position
_SEQ_HEX = [f"7{n:03x}" for n in range(4096)]  # the version digit and a sequence, ready to join
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}  # RFC 9562 variant 0b10 + 2 random bits


def _random_hex(count: int) -> str:
    """``count`` random hex digits from the operating system's CSPRNG; call with ``_id_lock`` held."""
    pool, at = _hex
    if at + count > len(pool):
        pool, at = os.urandom(_HEX_CHUNK // 2).hex(), 0
    _hex[0], _hex[1] = pool, at + count
    return pool[at:at + count]


def new_id() -> str:
    """A UUIDv7 (RFC 9562), monotonic within this process (12-bit sequence per millisecond). Built from
    strings (random hex drawn ahead, the millisecond formatted once): integer formatting is most of
    the cost of an id made the obvious way."""
    with _id_lock:
        ms = _time.time_ns() // 1_000_000
        last, seq, stamp = _id_state
        rand = _random_hex(19)
        if ms <= last:
            ms, seq = (last, seq + 1) if seq < 0xFFF else (last + 1, 0)
            if ms != last:
                stamp = _stamp(ms)
        else:
            seq = int(rand[:3], 16) & 0x7FF  # a random 11-bit start leaves room to count up within the millisecond
            stamp = _stamp(ms)
        _id_state[0], _id_state[1], _id_state[2] = ms, seq, stamp
    return f"{stamp}-{_SEQ_HEX[seq]}-{_VARIANT[rand[3]]}{rand[4:7]}-{rand[7:19]}"


def _stamp(ms: int) -> str:
    """The 48-bit millisecond of a UUIDv7 as its first two groups."""
    digits = f"{ms & 0xFFFFFFFFFFFF:012x}"
    return f"{digits[:8]}-{digits[8:]}"


def check_value(value: Any, path: str, depth: int = 1) -> bool:
    """Public name of the attribute check (the SDK validates with it before sending)."""
    return _check_value(value, path, depth)


def _check_value(value: Any, path: str, depth: int) -> bool:
    """Reject values RFC 8785 cannot represent; return True if the fast encoder would differ."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return False
    if depth > MAX_DEPTH:
        raise EventError(f"nested deeper than {MAX_DEPTH} levels", path)
    if kind is int:
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return False
        raise EventError("integer beyond ±(2^53-1) cannot be sealed exactly; send it as a string", path)
    if kind is float:
        if not math.isfinite(value):
            raise EventError("number is not finite", path)
        # inside, the shortest repr is the same as JCS's, but for a whole number (left a float above 2^53-1:
        # msgspec writes 2^53 as 9007199254740992.0, JCS as 9007199254740992)
        return value.is_integer() or not 1e-4 <= abs(value) < 1e16
    if kind is dict:
        slow = False
        for key, item in value.items():
            if type(item) is float and item.is_integer() and abs(item) <= MAX_SAFE_INT:
                value[key] = item = int(item)  # JCS writes 2.0 as 2
            if type(item) is not str:
                slow |= _check_value(item, f"{path}.{key}", depth + 1)
            if type(key) is not str:  # a Python dict's: JSON has only text keys
                raise EventError(f"key {key!r} is not a string", path)
            if not key.isascii():
                slow = True
        return slow
    if kind is list:
        slow = False
        for i, item in enumerate(value):
            if type(item) is float and item.is_integer() and abs(item) <= MAX_SAFE_INT:
                value[i] = item = int(item)
            if type(item) is not str:
                slow |= _check_value(item, f"{path}[{i}]", depth + 1)
        return slow
    raise EventError(f"unsupported type {kind.__name__}", path)


_PATTERN_HELP = {
    "action": "must be a dotted lower-case verb like user.login",
    "log": "must be 1-63 of a-z 0-9 . _ - starting with a letter or digit",
    "id": "must be 1-128 printable ASCII characters without spaces",
    "raw_hash": "must be 64 lower-case hex digits (a SHA-256)",
}


def _error_from_msgspec(exc: msgspec.ValidationError | msgspec.DecodeError) -> EventError:
    text = str(exc)
    match = _FIELD_RE.search(text)
    field = match.group(1) if match else None
    reason = _FIELD_RE.sub("", text).rstrip(" -")
    if "matching regex" in reason and field in _PATTERN_HELP:
        reason = _PATTERN_HELP[field]
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        reason = f"malformed JSON: {reason}"
    return EventError(reason, field or None)


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 canonical JSON for any JSON value (the slow, exact path)."""
    return rfc8785.dumps(msgspec.to_builtins(obj))


def finalize(event: Event, received: str | None = None) -> Sealable:
    """Normalize a decoded event and produce the bytes that get sealed."""
    event = normalize(event, received)
    return Sealable(event.id, event.log, event, encode_event(event))


def normalize(event: Event, received: str | None = None) -> Event:
    """Fill in the defaults, ``received`` and an id, and normalize ``time`` (in place; returns it)."""
    event.time = normalize_time(event.time, "time")
    event.log = event.log or "default"
    event.severity = event.severity or "info"
    event.actor.type = event.actor.type or "user"
    event.source.format = event.source.format or "json"
    event.received = received or utc_now()
    if event.id is None:
        event.id = new_id()
    if event.actor.roles is not None and len(event.actor.roles) > 256:
        raise EventError("more than 256 roles", "actor.roles")
    return event


def encode_event(event: Event) -> bytes:
    """The canonical bytes of a finalized event, within the size an entry bundle can carry."""
    slow = _check_value(event.attributes, "attributes", 1) if event.attributes else False
    data = canonical_bytes(event) if slow else _encoder.encode(event)
    if len(data) > MAX_EVENT_BYTES:
        raise EventError(f"event is {len(data)} bytes sealed; the limit is {MAX_EVENT_BYTES}")
    return data


def parse_json(raw: bytes | str, received: str | None = None) -> Sealable:
    """Decode one JSON event, validate it strictly and finalize it."""
    event = parse_event(raw, received)
    return Sealable(event.id, event.log, event, encode_event(event))


def parse_event(raw: bytes | str, received: str | None = None) -> Event:
    """Decode one JSON event, validate it strictly and normalize it (not yet encoded: the privacy
    stage encodes it once, after protection; see Protection.seal_form)."""
    return normalize(decode_event(raw), received)


def decode_event(raw: bytes | str) -> Event:
    """Decode one JSON event and validate it strictly, not yet normalized (its id None if none was sent)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > 4 * MAX_EVENT_BYTES:
        raise EventError(f"record is {len(raw)} bytes; the limit is {4 * MAX_EVENT_BYTES}")
    try:
        event = _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        _check_utf8(raw)
        raise _error_from_msgspec(exc) from None
    except RecursionError:
        raise EventError(f"nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as exc:
        raise EventError(f"invalid UTF-8 at byte {exc.start}") from None
    return event


def _check_utf8(raw: bytes) -> None:
    """Name invalid UTF-8 as such rather than as malformed JSON."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError(f"invalid UTF-8 at byte {exc.start}") from None


def from_dict(data: dict[str, Any] | Event, received: str | None = None) -> Sealable:
    """Validate a Python mapping (or an Event) and finalize it."""
    return finalize(to_event(data), received)


def to_event(data: dict[str, Any] | Event) -> Event:
    """Validate a Python mapping (or copy an Event), not yet normalized."""
    if isinstance(data, Event):
        return msgspec.structs.replace(data)
    if not isinstance(data, dict):
        raise EventError(f"an event must be a JSON object, not {type(data).__name__}")
    try:
        return msgspec.convert(data, Event)
    except msgspec.ValidationError as exc:
        raise _error_from_msgspec(exc) from None


def decode_sealed(data: bytes) -> Event:
    """Decode canonical bytes back into an Event (no re-validation of time or id)."""
    return msgspec.json.decode(data, type=Event)


def to_dict(event: Event) -> dict[str, Any]:
    return msgspec.to_builtins(event)


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of event v1."""
    schema = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://trailseal.dev/schema/event/v1.json"
    schema["title"] = "trailseal event v1"
    return schema


def parse_ndjson(lines: Iterable[bytes], received: Callable[[], str] = utc_now):
    """Yield (line_number, Sealable | EventError) for each non-blank NDJSON line."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, parse_json(line.rstrip(b"\r\n"), received())
        except EventError as exc:
            yield number, exc

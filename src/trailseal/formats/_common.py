"""Helpers every format shares: hashing, decoding, time, outcomes, names, value limits."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Annotated, Any, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from trailseal.event import MAX_DEPTH, MAX_EVENT_BYTES, MAX_SAFE_INT, EventError, normalize_time
from trailseal.formats import FormatError

MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
SHORT_MAX = 1024  # event.ShortStr
_UTC_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d{1,6}))?Z\Z", re.ASCII)  # ASCII digits only
_IPV4_RE = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}\Z")
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[\w.-]+)?\Z")
_SNAKE_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_SNAKE_2 = re.compile(r"([a-z0-9])([A-Z])")
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")
_json_decoder = msgspec.json.Decoder()


def sha256_hex(raw: bytes) -> str:
    """The raw_hash of a record: SHA-256 hex of its exact bytes."""
    return hashlib.sha256(raw).hexdigest()


def text(raw: bytes) -> str:
    """Decode a text log line; bytes that are not UTF-8 become \\xNN escapes (raw_hash keeps the original)."""
    if len(raw) > MAX_EVENT_BYTES:
        raise FormatError(f"record is {len(raw)} bytes; an event holds at most {MAX_EVENT_BYTES}")
    return raw.decode("utf-8", "backslashreplace")


def load_json(raw: bytes) -> Any:
    """Decode a JSON document or raise FormatError."""
    try:
        return _json_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise FormatError(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise FormatError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"invalid UTF-8 at byte {exc.start}") from None


def load_sealable_json(raw: bytes, depth: int) -> tuple[Any, bool]:
    """load_json, and whether json_safe(value, depth + k) gives back every value k levels down as it is
    (then a parser may keep them without the walk: one typed decode checks the whole document in C).
    The check is never laxer than asked, and stricter for depth < CHECKED_FROM: a document nested
    more than MAX_DEPTH - CHECKED_FROM levels is reported False and walked."""
    try:
        return _sealable_decoder(max(depth, CHECKED_FROM)).decode(raw), True
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return load_json(raw), False


# The typed check's type tree doubles with each level of nesting it unrolls (list and dict of the next
# level): 11 levels build in 0.03 s, 13 in 0.3 s, 18 in 10 s. It starts at json_safe depth 5 at the least.
CHECKED_FROM = 5


def as_is(value: Any, depth: int = 2) -> Any:
    """json_safe for a value already known to need no change."""
    return value


@lru_cache(maxsize=4)
def _sealable_decoder(depth: int) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(_sealable_type(depth))


def _sealable_type(depth: int) -> Any:
    """The msgspec type of exactly the JSON values that json_safe(value, depth) gives back as they are."""
    scalar = Union[str, bool, None, _SAFE_INT, float]  # noqa: UP007 (msgspec takes a Union of Annotated)
    if depth > MAX_DEPTH - 1:
        return scalar
    child = _sealable_type(depth + 1)
    return Union[scalar, list[child], dict[str, child]]  # noqa: UP007


_SAFE_INT = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]


def lines(data: bytes) -> list[bytes]:
    """Non-blank LF-separated lines with any trailing CR removed."""
    return [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]


def continued_lines(data: bytes) -> list[bytes]:
    """Lines, where a line starting with a space or tab continues the record before it."""
    records: list[bytes] = []
    for line in data.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        if records and line[:1] in (b" ", b"\t"):
            records[-1] += b"\n" + line
        else:
            records.append(line)
    return records


def utc_text(moment: datetime, value: str) -> str:
    """RFC 3339 UTC with microseconds and Z (the sealed form); FormatError outside years 1970-9998."""
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        moment = None
    if moment is None or not 1970 <= moment.year <= 9998:
        raise FormatError(f"timestamp out of range (years 1970-9998): {value[:64]!r}")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(value: Any) -> str:
    """Normalize an RFC 3339 timestamp to UTC with microseconds, or raise FormatError."""
    if not isinstance(value, str):
        raise FormatError(f"timestamp must be a string, not {type(value).__name__}")
    match = _UTC_RE.match(value)
    if match:
        problem = _utc_second_problem(value[:19])
        if problem:
            raise FormatError(f"{problem}: {value[:64]!r}")
        fraction = match.group(1)
        if fraction is not None and len(fraction) == 6:
            return value
        return f"{value[:19]}.{(fraction or '').ljust(6, '0')}Z"
    try:
        return normalize_time(value)
    except EventError as exc:
        raise FormatError(exc.reason) from None


@lru_cache(maxsize=4096)
def _utc_second_problem(second: str) -> str | None:
    """What is wrong with 'YYYY-MM-DDTHH:MM:SS' as a moment in years 1970-9998, or None (cached per second)."""
    try:
        datetime(
            int(second[:4]),
            int(second[5:7]),
            int(second[8:10]),
            int(second[11:13]),
            int(second[14:16]),
            int(second[17:19]),
        )
    except ValueError:
        return "not a valid RFC 3339 timestamp"
    if not 1970 <= int(second[:4]) <= 9998:
        return "timestamp out of range (years 1970-9998)"
    return None


def from_unix_nanos(nanos: int) -> str:
    """UTC timestamp from nanoseconds since the epoch."""
    seconds, rest = divmod(nanos, 1_000_000_000)
    if not 0 <= seconds < 253370764800:  # before 9999-01-01
        raise FormatError(f"timestamp out of range: {nanos} ns since the epoch")
    return f"{_utc_second(seconds)}.{rest // 1000:06d}Z"


@lru_cache(maxsize=4096)
def _utc_second(seconds: int) -> str:
    """'YYYY-MM-DDTHH:MM:SS' of a second since the epoch (cached: a batch shares few seconds)."""
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


@lru_cache(maxsize=64)
def zone(name: str | None) -> tzinfo:
    """A time zone by IANA name (or UTC/Z/±HH:MM); None is UTC."""
    if not name or name in ("UTC", "Z", "GMT"):
        return UTC
    offset = numeric_offset(name)
    if offset is not None:
        return timezone(timedelta(seconds=offset))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FormatError(f"unknown time zone {name!r}") from None


def numeric_offset(value: str) -> int | None:
    """Seconds east of UTC for '+02', '+0200', '+02:00', '-0530'; None if not numeric."""
    if len(value) < 3 or value[0] not in "+-":
        return None
    digits = value[1:].replace(":", "")
    if not digits.isdecimal() or len(digits) not in (2, 4):
        return None
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if value[0] == "-" else 1
    return sign * (hours * 3600 + minutes * 60)


def local_time(year: int, month: int, day: int, clock: str, micros: int, tz: tzinfo, value: str) -> str:
    """UTC timestamp of a wall-clock time (HH:MM:SS) in a zone, or FormatError."""
    try:
        hour, minute, second = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])
        moment = datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError:
        raise FormatError(f"not a valid date/time: {value[:64]!r}") from None
    return utc_text(moment, value)


def ctx_year(ctx: dict[str, Any]) -> int:
    """The year to assume for formats that omit it: ctx['year'] or the current UTC year."""
    year = ctx.get("year")
    return int(year) if year else datetime.now(UTC).year


def ctx_zone(ctx: dict[str, Any]) -> tzinfo:
    """The zone to assume for formats that omit it: ctx['default_tz'] or UTC."""
    value = ctx.get("default_tz")
    return value if isinstance(value, tzinfo) else zone(value)


def http_outcome(status: int | None) -> str:
    """HTTP status to outcome for request logs: 401/403 failure, 5xx error, anything else success."""
    if status is None:
        return "unknown"
    if status in (401, 403):
        return "failure"
    if status >= 500:
        return "error"
    return "success"


def api_outcome(status: int | None) -> str:
    """HTTP status to outcome for API audit events: any 4xx failure (the action did not happen), 5xx error."""
    if status is None or status == 0:
        return "unknown"
    if status >= 500:
        return "error"
    if status >= 400:
        return "failure"
    return "success"


@lru_cache(maxsize=8192)
def snake(name: str) -> str:
    """CamelCase or any name to a lower-case action segment: 'CreateKeyPair' -> 'create_key_pair'."""
    value = _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", name)).lower()
    return _NOT_NAME.sub("_", value).strip("_") or "unknown"


@lru_cache(maxsize=8192)
def segment(name: str) -> str:
    """A lower-case action segment from free text (no dots)."""
    return _NOT_NAME.sub("_", name.lower()).strip("_") or "unknown"


def is_ip(value: str) -> bool:
    """True if the text looks like an IPv4 or IPv6 address (cheap check, no DNS; short texts cached:
    addresses repeat, and a hostile long text must not sit in the cache)."""
    return _looks_like_ip(value) if len(value) <= 64 else _looks_like_ip.__wrapped__(value)


@lru_cache(maxsize=4096)
def _looks_like_ip(value: str) -> bool:
    return bool(_IPV4_RE.match(value) or (":" in value and _IPV6_RE.match(value)))


def client_ip(addresses: list[str], trusted: Iterable[str] = ()) -> str | None:
    """The client of a proxy chain: the rightmost address not in a trusted proxy network."""
    if not trusted:
        return addresses[-1] if addresses else None
    networks = _networks(tuple(trusted))
    for address in reversed(addresses):
        if not networks or not _in_networks(address, networks):
            return address
    return addresses[0] if addresses else None


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)
    except ValueError as exc:
        raise FormatError(f"bad trusted_proxies entry: {exc}") from None


def _in_networks(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def short(value: str, field: str) -> str:
    """A value bound for a 1024-character event field, or FormatError if longer."""
    if len(value) > SHORT_MAX:
        raise FormatError(f"{field} is {len(value)} characters; the limit is {SHORT_MAX}")
    return value


def source(
    ctx: dict[str, Any], fmt: str, kind: str, component: str | None = None, host: str | None = None
) -> dict[str, str]:
    """The event's source: component and host from ctx first, then from the record, then the format."""
    if ctx and ("component" in ctx or "kind" in ctx or "host" in ctx):
        component, kind, host = (
            ctx.get("component") or component,
            ctx.get("kind") or kind,
            ctx.get("host") or host,
        )
    component = component or fmt
    if len(component) > SHORT_MAX:
        short(component, "source.component")
    result = {"component": component, "kind": kind, "format": fmt}
    if host:
        result["host"] = host if len(host) <= SHORT_MAX else short(host, "source.host")
    return result


def json_safe(value: Any, depth: int = 2) -> Any:
    """A JSON value made sealable: big ints and non-finite floats as strings, deep nesting as JSON text.
    A value that needs none of that (nearly all) is given back as it is, not copied."""
    return value if _sealable(value, depth) else _made_safe(value, depth)


def _sealable(value: Any, depth: int) -> bool:
    """Whether json_safe would give back an equal value: one walk, nothing built."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -MAX_SAFE_INT <= value <= MAX_SAFE_INT
    if kind is float:
        return math.isfinite(value)
    if depth > MAX_DEPTH - 1:
        return False
    depth += 1
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) is not str and not _sealable(item, depth)):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) is not str and not _sealable(item, depth):
                return False
        return True
    return False


def _made_safe(value: Any, depth: int) -> Any:
    """json_safe's copy, for a value that needs a change somewhere (copied whole: no subtree is walked
    twice)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if depth > MAX_DEPTH - 1:
        return msgspec.json.encode(value).decode()
    depth += 1
    if kind is dict:
        return {
            k if type(k) is str else str(k): v if type(v) is str else _made_safe(v, depth)
            for k, v in value.items()
        }
    if kind is list:
        return [v if type(v) is str else _made_safe(v, depth) for v in value]
    return str(value)


def add_process_attributes(attributes: dict[str, Any], program: str | None, pid: str | None) -> None:
    """Add process.name and process.pid to attributes (pid as a number when it is one)."""
    if program:
        attributes["process.name"] = program
    if pid:
        attributes["process.pid"] = int(pid) if pid.isdecimal() and len(pid) < 16 else pid


@lru_cache(maxsize=4096)
def category_for_action(action: str) -> str | None:
    """A category implied by a well-known action prefix (user.login -> authentication), else None."""
    for prefix, category in _ACTION_CATEGORIES:
        if action == prefix or action.startswith(prefix + "."):
            return category
    return None


_ACTION_CATEGORIES = (
    ("user.login", "authentication"),
    ("user.logout", "authentication"),
    ("user.authenticate", "authentication"),
    ("auth", "authentication"),
    ("login", "authentication"),
    ("session", "session"),
    ("account", "account"),
    ("group", "account"),
    ("user.create", "account"),
    ("user.delete", "account"),
    ("privilege", "authorization"),
    ("permission", "authorization"),
    ("role", "authorization"),
    ("access", "authorization"),
    ("http.request", "data_access"),
    ("db.query", "data_access"),
    ("config", "config"),
    ("admin", "admin"),
    ("finding", "finding"),
)


def collect(
    items: Iterable[Any], build: Any, *args: Any
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """``build(item, *args)`` for each item; a FormatError becomes (index, reason) instead of ending the
    batch (pass the arguments rather than a lambda: one call per item, not two)."""
    events: list[dict[str, Any]] = []
    rejected: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        try:
            events.append(build(item, *args))
        except FormatError as exc:
            rejected.append((index, exc.reason))
    return events, rejected


def all_or_error(
    batch: tuple[list[dict[str, Any]], list[tuple[int, str]]], noun: str
) -> list[dict[str, Any]]:
    """The events of a batch, or FormatError naming the first rejected item and how many failed."""
    events, rejected = batch
    if rejected:
        index, reason = rejected[0]
        raise FormatError(
            f"{len(rejected)} of {len(events) + len(rejected)} {noun}s rejected; {noun} {index}: {reason}"
        )
    return events


_LIMITS = (
    ("actor", (("id", 1024), ("name", 1024), ("session", 1024), ("ip", 1024), ("user_agent", 8192))),
    ("source", (("component", 1024), ("host", 1024), ("ip", 1024), ("endpoint", 1024))),
    ("target", (("type", 1024), ("id", 8192), ("name", 8192))),
    ("request", (("method", 32), ("path", 8192), ("trace_id", 1024), ("span_id", 1024))),
)


def bounded(event: dict[str, Any], raw: bytes | None = None) -> dict[str, Any]:
    """The event, or FormatError if a string field is longer than the schema allows.

    Given the raw text record, a record of at most 256 bytes is known to fit (no field of a text
    format is longer than its record, \\xNN escapes included), so the check is skipped."""
    if raw is not None and len(raw) <= 256:
        return event
    for part, limits in _LIMITS:
        values = event.get(part)
        if values:
            for name, limit in limits:
                value = values.get(name)
                if value is not None and len(value) > limit:
                    raise FormatError(f"{part}.{name} is {len(value)} characters; the limit is {limit}")
    reason = event.get("reason")
    if reason is not None and len(reason) > 8192:
        raise FormatError(f"reason is {len(reason)} characters; the limit is 8192")
    return event


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}\Z")


def traceparent(value: Any) -> tuple[str, str] | None:
    """(trace id, span id) of a W3C `traceparent` header value, or None."""
    match = _TRACEPARENT.match(value) if isinstance(value, str) else None
    return (match.group(1), match.group(2)) if match else None


def split_document(data: bytes) -> list[bytes]:
    """A format whose record is the whole JSON document (a report, not a stream)."""
    return [data] if data.strip() else []

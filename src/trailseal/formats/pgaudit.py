"""PostgreSQL logs with pgAudit, in csvlog or stderr form.

A pgAudit entry (``AUDIT: SESSION|OBJECT,statement_id,substatement_id,CLASS,COMMAND,object_type,
object_name,statement,parameter[,rows]``) becomes action ``db.<class>.<command>`` (``db.read.select``,
``db.role.grant``, ``db.ddl.create_table``) with category by class: READ and MISC -> data_access,
WRITE and FUNCTION -> data_change, DDL -> config, ROLE -> account (GRANT/REVOKE -> authorization).
Outcome is ``unknown``: pgAudit logs a statement as it starts, before it succeeds or fails (a failure
is the ERROR entry that follows in the same session, ``db.session_id``). The actor is the database
user (session = session id), the target the audited object, or else the database.

The other entries of the same log are kept, not bounced: ``connection authorized`` -> ``db.login``
success; FATAL 28P01/28000 (bad password, no pg_hba.conf entry) -> ``db.login`` failure;
``disconnection`` -> ``db.logout`` (session); ERROR/FATAL/PANIC -> ``db.error`` (system, outcome
error); anything else -> ``db.log`` (system, outcome unknown). In stderr form the auxiliary lines
(DETAIL, HINT, CONTEXT, STATEMENT, QUERY, LOCATION) belong to the entry before them and are rejected
with that reason. stderr lines are read with ``ctx['line_prefix']`` (PostgreSQL's log_line_prefix,
default ``'%m [%p] '``); a time zone abbreviation other than UTC/GMT is read in ``ctx['default_tz']``.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from trailseal.formats import FormatError
from trailseal.formats._common import (
    bounded,
    continued_lines,
    ctx_zone,
    from_unix_nanos,
    is_ip,
    local_time,
    numeric_offset,
    segment,
    sha256_hex,
    short,
    source,
    text,
    zone,
)

FORMAT = "pgaudit"
CSV_FIELDS = (
    "time",
    "user",
    "database",
    "pid",
    "remote",
    "session",
    "line",
    "command_tag",
    "session_start",
    "vxid",
    "xid",
    "level",
    "sqlstate",
    "message",
    "detail",
    "hint",
    "internal_query",
    "internal_query_pos",
    "context",
    "query",
    "query_pos",
    "location",
    "application",
)
CLASS_CATEGORY = {
    "READ": "data_access",
    "WRITE": "data_change",
    "FUNCTION": "data_change",
    "DDL": "config",
    "ROLE": "account",
    "MISC": "data_access",
    "MISC_SET": "data_access",
}
COMMAND_CATEGORY = {
    "GRANT": "authorization",
    "REVOKE": "authorization",
    "GRANT ROLE": "authorization",
    "REVOKE ROLE": "authorization",
    "ALTER DEFAULT PRIVILEGES": "authorization",
}
LEVEL_SEVERITY = {"WARNING": "low", "ERROR": "medium", "FATAL": "high", "PANIC": "critical"}
AUXILIARY = ("DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION")
_CSV_START = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?(?: [A-Za-z0-9+:-]+)?,")
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?: (\S+))?\Z")
_LOCAL_SECOND = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z")  # _TIME's date and clock
_ZONE_TEXT = re.compile(r"\S+\Z")  # _TIME's zone
_ROW_ATTRIBUTES = (("database", "db.name"), ("session", "db.session_id"), ("application", "db.application"))
_ROW_NUMBERS = (("pid", "process.pid"), ("line", "db.session_line"))
_FITS = 512  # no event field is longer than twice its line (lower() of U+0130 doubles), so <= 1024
_LOGIN = re.compile(r"connection authorized: user=(\S+)(?: database=(\S+))?")
_LOGOUT = re.compile(r"disconnection: session time: (\S+) user=(\S+) database=(\S+)")
_PREFIX_ESCAPES = {
    "m": r"(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}(?: [A-Za-z0-9+:-]+)?)",
    "t": r"(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?: [A-Za-z0-9+:-]+)?)",
    "n": r"(?P<epoch>\d{1,12}(?:\.\d{1,6})?)",
    "p": r"(?P<pid>\d+)",
    "P": r"(?P<leader_pid>\d*)",
    "u": r"(?P<user>[^\s@]*?)",
    "d": r"(?P<database>[^\s@]*?)",
    "a": r"(?P<application>.*?)",
    "r": r"(?P<remote>\S*?)",
    "h": r"(?P<remote>\S*?)",
    "c": r"(?P<session>[0-9a-f]+\.[0-9a-f]+)",
    "l": r"(?P<line>\d+)",
    "i": r"(?P<command_tag>.*?)",
    "e": r"(?P<sqlstate>[0-9A-Z]{5})",
    "s": r"(?P<session_start>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \S+)",
    "v": r"(?P<vxid>\S*?)",
    "x": r"(?P<xid>\d+)",
    "b": r"(?P<backend_type>.*?)",
    "Q": r"(?P<query_id>-?\d+)",
}


def split(data: bytes) -> list[bytes]:
    """Entries of a log file: CSV records (quoted newlines kept) or tab-continued stderr lines."""
    if _CSV_START.match(data[:64].decode("utf-8", "replace")):
        return csv_records(data)
    return continued_lines(data)


def csv_records(data: bytes) -> list[bytes]:
    """CSV records of a csvlog file; a record ends at a newline outside double quotes."""
    records: list[bytes] = []
    pending: list[bytes] = []
    quotes = 0
    for line in data.split(b"\n"):
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            record = b"\n".join(pending).rstrip(b"\r")
            if record.strip():
                records.append(record)
            pending, quotes = [], 0
    if pending and b"".join(pending).strip():
        records.append(b"\n".join(pending))
    return records


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """One csvlog record or stderr entry -> one event."""
    line = text(raw).rstrip("\r\n")
    form = ctx.get("pg_form") or ("csv" if _CSV_START.match(line) else "stderr")
    row = csv_row(line) if form == "csv" else stderr_row(line, ctx.get("line_prefix") or "%m [%p] ")
    event = _event(raw, row, ctx)
    return [event if len(line) <= _FITS else bounded(event, raw)]


def _csv_values(line: str) -> list[str]:
    """The values of one csvlog record (23 to 26 columns, PostgreSQL 9.0 to 17; named by CSV_FIELDS)."""
    try:
        values = next(csv.reader([line]), [])
    except csv.Error as exc:
        raise FormatError(f"malformed csvlog record: {exc}") from None
    if not 23 <= len(values) <= 26:
        raise FormatError(f"csvlog record has {len(values)} fields; expected 23 to 26")
    return values


def csv_row(line: str) -> dict[str, str]:
    """The CSV_FIELDS of one csvlog record that events use (16 of 23: a dict display of 16 is half the cost)."""
    v = _csv_values(line)
    return {
        "time": v[0],
        "user": v[1],
        "database": v[2],
        "pid": v[3],
        "remote": v[4],
        "session": v[5],
        "line": v[6],
        "level": v[11],
        "sqlstate": v[12],
        "message": v[13],
        "detail": v[14],
        "hint": v[15],
        "internal_query": v[16],
        "context": v[18],
        "query": v[19],
        "application": v[22],
    }


def stderr_row(line: str, prefix: str) -> dict[str, str]:
    """The fields of one stderr entry, read with the server's log_line_prefix."""
    match = _stderr_pattern(prefix).match(line)
    if not match:
        raise FormatError(f"not a PostgreSQL stderr entry for log_line_prefix {prefix!r}")
    row = {k: v for k, v in match.groupdict().items() if v is not None}
    if row["level"] in AUXILIARY:
        raise FormatError(f"{row['level']} line belongs to the entry before it; not an entry of its own")
    row["message"] = row["message"].replace("\n\t", "\n")
    return row


@lru_cache(maxsize=16)
def _stderr_pattern(prefix: str) -> re.Pattern[str]:
    """A regex for 'prefix LEVEL:  message' from a log_line_prefix such as '%m [%p] %q%u@%d '."""
    parts, optional, seen = [], 0, set()
    for literal, escape in re.findall(r"([^%]*)(?:%-?\d*(.)|$)", prefix):
        parts.append(re.escape(literal))
        if escape == "q":
            parts.append("(?:")
            optional += 1
        elif escape == "%":
            parts.append("%")
        elif escape in _PREFIX_ESCAPES:
            pattern = _PREFIX_ESCAPES[escape]
            name = pattern[4 : pattern.index(">")]
            parts.append(pattern if name not in seen else pattern.replace(f"?P<{name}>", "?:"))
            seen.add(name)
        elif escape:
            parts.append(r"\S*?")
    parts.append(")?" * optional)
    body = r"(?P<level>DEBUG[1-5]?|INFO|NOTICE|WARNING|ERROR|LOG|FATAL|PANIC|" + "|".join(AUXILIARY) + r"):  "
    return re.compile("".join(parts) + body + r"(?P<message>.*)\Z", re.S)


def _event(raw: bytes, row: dict[str, str], ctx: dict[str, Any]) -> dict[str, Any]:
    """The event for one log entry: a pgAudit statement, a login/logout, an error or a plain log line."""
    message = row["message"]
    if message.startswith("AUDIT: "):
        fields = _audit(message[7:], row)
    else:
        fields = _server_entry(message, row)
    attributes = fields.setdefault("attributes", {})
    attributes["db.system"] = "postgresql"
    get = row.get
    for key, name in _ROW_ATTRIBUTES:
        value = get(key)
        if value:
            attributes[name] = value
    client = _client(get("remote", ""))
    client_is_ip = bool(client) and is_ip(client)
    if client and not client_is_ip:
        attributes["client.address"] = client
    for key, name in _ROW_NUMBERS:
        value = get(key, "")
        if value.isdecimal() and len(value) < 16:
            attributes[name] = int(value)
    return {
        "time": _row_time(row, ctx),
        "actor": _actor(row, client if client_is_ip else None),
        "source": source(ctx, FORMAT, "database", "postgresql"),
        "raw_hash": sha256_hex(raw),
        **fields,
    }


def _audit(entry: str, row: dict[str, str]) -> dict[str, Any]:
    """Fields of a pgAudit entry: action db.<class>.<command>, category by class, the object as target."""
    values = _audit_values(entry)
    if len(values) not in (9, 10):
        raise FormatError(f"pgAudit entry has {len(values)} fields; expected 9 or 10")
    kind, statement_id, substatement_id, klass, command, object_type, object_name, statement, parameter = (
        values[:9]
    )
    if klass not in CLASS_CATEGORY:
        raise FormatError(f"unknown pgAudit class {klass[:32]!r}")
    attributes: dict[str, Any] = {
        "pgaudit.type": kind,
        "pgaudit.class": klass,
        "pgaudit.command": command,
        "db.statement": statement,
        "pgaudit.statement_id": _number(statement_id),
        "pgaudit.substatement_id": _number(substatement_id),
    }
    if parameter not in ("<not logged>", "<none>", ""):
        attributes["db.parameters"] = parameter
    if len(values) == 10:
        attributes["pgaudit.rows"] = _number(values[9])
    if object_name:
        target = {"type": object_type.lower() or "object", "name": object_name}
    else:
        target = {"type": "database", "name": row.get("database") or "unknown"}
    category, action = _classified(klass, command)
    return {
        "category": category,
        "action": action,
        "outcome": "unknown",
        "target": target,
        "attributes": attributes,
    }


@lru_cache(maxsize=1024)
def _classified(klass: str, command: str) -> tuple[str, str]:
    """(category, action) of a pgAudit class and command (few pairs in a log: cached)."""
    return COMMAND_CATEGORY.get(command, CLASS_CATEGORY[klass]), f"db.{segment(klass)}.{segment(command)}"


def _audit_values(entry: str) -> list[str]:
    """The comma-separated values of a pgAudit entry: a plain split where no quote or line break can
    make the csv module read it differently, else the csv module."""
    if entry and '"' not in entry and "\n" not in entry and "\r" not in entry:
        if len(entry) <= csv.field_size_limit():  # a longer value is the csv module's error
            return entry.split(",")
    try:
        return next(csv.reader([entry]), [])
    except csv.Error as exc:
        raise FormatError(f"malformed pgAudit entry: {exc}") from None


def _number(value: str) -> int | str:
    """A decimal id or count as an int (up to 15 digits), anything else as it is."""
    return int(value) if value.isdecimal() and len(value) < 16 else value


def _server_entry(message: str, row: dict[str, str]) -> dict[str, Any]:
    """Fields of a non-pgAudit entry: login, failed login, logout, error or plain log line."""
    level = row.get("level", "")
    database = {"type": "database", "name": row["database"]} if row.get("database") else None
    login = _LOGIN.match(message)
    if login:
        return _with_target(
            {"category": "authentication", "action": "db.login", "outcome": "success"}, database
        )
    if level == "FATAL" and row.get("sqlstate") in ("28P01", "28000"):
        return _with_target(
            {
                "category": "authentication",
                "action": "db.login",
                "outcome": "failure",
                "reason": message,
                "severity": "high",
            },
            database,
        )
    if _LOGOUT.match(message):
        return _with_target(
            {
                "category": "session",
                "action": "db.logout",
                "outcome": "success",
                "attributes": {"message": message},
            },
            database,
        )
    attributes: dict[str, Any] = {"message": message, "db.level": level}
    if row.get("sqlstate") and row["sqlstate"] != "00000":
        attributes["db.sqlstate"] = row["sqlstate"]
    for key, name in (
        ("detail", "db.detail"),
        ("hint", "db.hint"),
        ("context", "db.context"),
        ("query", "db.statement"),
        ("internal_query", "db.internal_query"),
    ):
        if row.get(key):
            attributes[name] = row[key]
    fields: dict[str, Any] = {"category": "system", "attributes": attributes}
    if level in ("ERROR", "FATAL", "PANIC"):
        fields.update(action="db.error", outcome="error", reason=message)
    else:
        fields.update(action="db.log", outcome="unknown")
    if level in LEVEL_SEVERITY:
        fields["severity"] = LEVEL_SEVERITY[level]
    return _with_target(fields, database)


def _with_target(fields: dict[str, Any], target: dict[str, str] | None) -> dict[str, Any]:
    if target:
        fields["target"] = target
    return fields


def _actor(row: dict[str, str], ip: str | None) -> dict[str, Any]:
    """The database user with session id and client ip, or the server itself."""
    user = row.get("user")
    actor: dict[str, Any] = (
        {"id": short(user, "actor.id"), "type": "user"} if user else {"id": "postgres", "type": "system"}
    )
    session = row.get("session")
    if session:
        actor["session"] = short(session, "actor.session")
    if ip:
        actor["ip"] = ip
    return actor


def _client(remote: str) -> str | None:
    """The client host of csvlog 'host:port' or stderr %r 'host(port)'; None for [local] or empty."""
    if not remote or remote == "[local]":
        return None
    if remote.endswith(")") and "(" in remote:
        return remote[: remote.rindex("(")]
    host, sep, port = remote.rpartition(":")
    return host if sep and port.isdecimal() else remote


def _row_time(row: dict[str, str], ctx: dict[str, Any]) -> str:
    if row.get("epoch"):
        seconds, _, frac = row["epoch"].partition(".")
        return from_unix_nanos(int(seconds) * 1_000_000_000 + int(frac.ljust(9, "0")))
    if not row.get("time"):
        raise FormatError("PostgreSQL entry has no timestamp (log_line_prefix needs %m, %t or %n)")
    return _pg_time(row["time"], ctx_zone(ctx))


def _pg_time(value: str, default_zone: Any) -> str:
    """'2015-08-12 16:13:44.809 UTC' -> '2015-08-12T16:13:44.809000Z'."""
    rest = value[19:]  # after 'YYYY-MM-DD HH:MM:SS': '', '.809', ' UTC' or '.809 UTC'
    if rest[:1] == ".":
        frac, space, zone_text = rest[1:].partition(" ")
        second = _utc_second(value[:19], zone_text if space else None, default_zone)
        if second and 0 < len(frac) <= 6 and frac.isascii() and frac.isdigit():
            return f"{second}.{frac.ljust(6, '0')}Z"
    elif rest[:1] == " " or not rest:
        second = _utc_second(value[:19], rest[1:] if rest else None, default_zone)
        if second:
            return f"{second}.000000Z"
    return _full_pg_time(value, default_zone)


def _full_pg_time(value: str, default_zone: Any) -> str:
    """_pg_time for any value: its error, or a zone _utc_second does not take."""
    match = _TIME.match(value)
    if not match:
        raise FormatError(f"bad PostgreSQL timestamp {value[:40]!r}")
    year, month, day, clock, frac, zone_text = match.groups()
    micros = int(frac.ljust(6, "0")) if frac else 0
    return local_time(
        int(year), int(month), int(day), clock, micros, _time_zone(zone_text, default_zone), value
    )


@lru_cache(maxsize=4096)
def _utc_second(local: str, zone_text: str | None, default_zone: Any) -> str | None:
    """'YYYY-MM-DDTHH:MM:SS' in UTC of a valid local second, where the zone's offsets are whole seconds
    (so the fraction is added as it is; cached: the entries of a log share few seconds), or None: then
    _full_pg_time reads the value."""
    if not _LOCAL_SECOND.match(local) or not (zone_text is None or _ZONE_TEXT.match(zone_text)):
        return None
    tz = _time_zone(zone_text, default_zone)
    if not (tz is UTC or type(tz) is ZoneInfo or (type(tz) is timezone and _whole_seconds(tz))):
        return None
    try:
        moment = local_time(int(local[:4]), int(local[5:7]), int(local[8:10]), local[11:], 0, tz, local)
    except FormatError:
        return None
    return moment[:19]


def _whole_seconds(tz: timezone) -> bool:
    """Whether a fixed offset has no microseconds (a ctx default_tz may have)."""
    offset = tz.utcoffset(None)
    return offset is not None and offset.microseconds == 0


def _time_zone(zone_text: str | None, default_zone: Any) -> Any:
    """The zone of a timestamp: UTC/GMT/Z or a numeric offset as written, else the default zone."""
    if zone_text is not None and (zone_text in ("UTC", "GMT", "Z") or numeric_offset(zone_text) is not None):
        return zone(zone_text)
    return default_zone

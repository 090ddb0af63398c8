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
from functools import lru_cache
from typing import Any

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
    return [_event(raw, row, ctx)]


def csv_row(line: str) -> dict[str, str]:
    """The named fields of one csvlog record (23 to 26 columns, PostgreSQL 9.0 to 17)."""
    try:
        values = next(csv.reader([line]), [])
    except csv.Error as exc:
        raise FormatError(f"malformed csvlog record: {exc}") from None
    if not 23 <= len(values) <= 26:
        raise FormatError(f"csvlog record has {len(values)} fields; expected 23 to 26")
    return dict(zip(CSV_FIELDS, values, strict=False))


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
    for key, name in (
        ("database", "db.name"),
        ("session", "db.session_id"),
        ("application", "db.application"),
    ):
        if row.get(key):
            attributes[name] = row[key]
    client = _client(row.get("remote", ""))
    if client and not is_ip(client):
        attributes["client.address"] = client
    for key, name in (("pid", "process.pid"), ("line", "db.session_line")):
        if row.get(key, "").isdecimal() and len(row[key]) < 16:
            attributes[name] = int(row[key])
    return bounded(
        {
            "time": _row_time(row, ctx),
            "actor": _actor(row),
            "source": source(ctx, FORMAT, "database", "postgresql"),
            "raw_hash": sha256_hex(raw),
            **fields,
        },
        raw,
    )


def _audit(entry: str, row: dict[str, str]) -> dict[str, Any]:
    """Fields of a pgAudit entry: action db.<class>.<command>, category by class, the object as target."""
    try:
        values = next(csv.reader([entry]), [])
    except csv.Error as exc:
        raise FormatError(f"malformed pgAudit entry: {exc}") from None
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
    }
    for name, value in (("pgaudit.statement_id", statement_id), ("pgaudit.substatement_id", substatement_id)):
        attributes[name] = int(value) if value.isdecimal() and len(value) < 16 else value
    if parameter not in ("<not logged>", "<none>", ""):
        attributes["db.parameters"] = parameter
    if len(values) == 10:
        attributes["pgaudit.rows"] = (
            int(values[9]) if values[9].isdecimal() and len(values[9]) < 16 else values[9]
        )
    if object_name:
        target = {"type": object_type.lower() or "object", "name": object_name}
    else:
        target = {"type": "database", "name": row.get("database") or "unknown"}
    return {
        "category": COMMAND_CATEGORY.get(command, CLASS_CATEGORY[klass]),
        "action": f"db.{segment(klass)}.{segment(command)}",
        "outcome": "unknown",
        "target": target,
        "attributes": attributes,
    }


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


def _actor(row: dict[str, str]) -> dict[str, Any]:
    """The database user with session id and client ip, or the server itself."""
    user = row.get("user")
    actor: dict[str, Any] = (
        {"id": short(user, "actor.id"), "type": "user"} if user else {"id": "postgres", "type": "system"}
    )
    if row.get("session"):
        actor["session"] = short(row["session"], "actor.session")
    client = _client(row.get("remote", ""))
    if client and is_ip(client):
        actor["ip"] = client
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


@lru_cache(maxsize=4096)
def _pg_time(value: str, default_zone: Any) -> str:
    """'2015-08-12 16:13:44.809 UTC' -> '2015-08-12T16:13:44.809000Z'."""
    match = _TIME.match(value)
    if not match:
        raise FormatError(f"bad PostgreSQL timestamp {value[:40]!r}")
    year, month, day, clock, frac, zone_text = match.groups()
    if zone_text is None:
        tz = default_zone
    elif zone_text in ("UTC", "GMT", "Z") or numeric_offset(zone_text) is not None:
        tz = zone(zone_text)
    else:
        tz = default_zone
    micros = int(frac.ljust(6, "0")) if frac else 0
    return local_time(int(year), int(month), int(day), clock, micros, tz, value)

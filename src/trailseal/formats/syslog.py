"""Syslog: RFC 5424 and RFC 3164 (BSD) messages, plus RFC 6587 framing for TCP/TLS streams.

A message becomes a ``system`` event, action ``syslog.message``, outcome ``unknown``, severity from
PRI (emerg/alert critical, crit high, err medium, warning low, notice/info/debug info), the app or
program as a system actor, the text in ``attributes.message`` and RFC 5424 structured data in
``attributes['syslog.structured_data']`` as ``{SD-ID: {param: value}}`` (a repeated param becomes a list).
Messages from sshd, sudo, su, pam_unix and the account tools are interpreted with the auth.log
rules (so an ``su`` failure over syslog is a ``privilege.su`` failure); ``format`` stays ``syslog``.
A BSD ``--- last message repeated N times ---`` marker is a ``syslog.repeated`` event.
RFC 3164 timestamps carry no year or zone: ``ctx['year']`` and ``ctx['default_tz']`` (default: this
year, UTC). An RFC 5424 NILVALUE timestamp takes our clock and sets ``syslog.time_missing``.
"""

from __future__ import annotations

import re
from hashlib import sha256
from typing import Any

from trailseal.event import utc_now
from trailseal.formats import FormatError
from trailseal.formats._bsd import header_fields, syslog_time
from trailseal.formats._common import (
    SHORT_MAX,
    add_process_attributes,
    bounded,
    continued_lines,
    short,
    source,
    text,
)
from trailseal.formats.auth_log import interpret

FORMAT = "syslog"
MAX_FRAME = 262144
FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)
SEVERITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
SEVERITIES = ("critical", "critical", "high", "medium", "low", "info", "info", "info")
_RFC5424 = re.compile(r"<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ")
_SD_ESCAPE = re.compile(r'\\(["\\\]])')
_SD_NAME = r'[^ =\]"]+'
# (?:[^"\\]|\\.)*, unrolled and possessive: the same text (a shorter run could only be followed by
# one more of its own characters, never by the backslash or quote that must come next), faster.
_SD_VALUE = r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"'
_SD_ELEMENT = re.compile(r"\[(" + _SD_NAME + r")((?: " + _SD_NAME + "=" + _SD_VALUE + r")*+)\]", re.S)
_SD_PARAM = re.compile(r" (" + _SD_NAME + ")=" + _SD_VALUE, re.S)
_REPEATED = re.compile(r"--- last message repeated (\d+) times? ---")


def split(data: bytes) -> list[bytes]:
    """Records of a capture: octet-counted frames if it starts with a length, else LF lines
    with space- or tab-indented continuation lines joined to the record before them."""
    if data[:1].isdigit():
        frames, rest = split_octet_counted(data)
        return frames + ([rest] if rest else [])
    return continued_lines(data)


def split_octet_counted(buffer: bytes, max_length: int = MAX_FRAME) -> tuple[list[bytes], bytes]:
    """RFC 6587 §3.4.1 octet counting: complete frames, and the incomplete rest to keep for later."""
    frames: list[bytes] = []
    pos, size = 0, len(buffer)
    while pos < size:
        space = buffer.find(b" ", pos, pos + 11)
        if space < 0:
            pending = buffer[pos:]
            if len(pending) <= 10 and pending.isdigit() and pending[:1] != b"0":
                break
            raise FormatError(f"bad octet count at byte {pos}: {pending[:12]!r}")
        count = buffer[pos:space]
        if not count.isdigit() or count[:1] == b"0":
            raise FormatError(f"bad octet count at byte {pos}: {count[:12]!r}")
        length = int(count)
        if length > max_length:
            raise FormatError(f"frame of {length} octets at byte {pos} exceeds the limit of {max_length}")
        end = space + 1 + length
        if end > size:
            break
        frames.append(buffer[space + 1 : end])
        pos = end
    return frames, buffer[pos:]


def split_lf(buffer: bytes) -> tuple[list[bytes], bytes]:
    """RFC 6587 §3.4.2 LF framing: complete non-blank lines (CR stripped), and the unterminated rest."""
    head, sep, rest = buffer.rpartition(b"\n")
    if not sep:
        return [], buffer
    return [line.rstrip(b"\r") for line in head.split(b"\n") if line.strip()], rest


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """One syslog message (RFC 5424 or RFC 3164) -> one event."""
    line = text(raw).rstrip("\r\n")
    header = _RFC5424.match(line) if line.startswith("<") else None
    if header:
        return [_rfc5424(raw, line, header, ctx)]
    return [_rfc3164(raw, line, ctx)]


def _rfc5424(raw: bytes, line: str, header: re.Match[str], ctx: dict[str, Any]) -> dict[str, Any]:
    """<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]."""
    pri, version, stamp, host, app, procid, msgid = header.groups()
    if version != "1":
        raise FormatError(f"unsupported syslog version {version}")
    data, pos = structured_data(line, header.end())
    if pos < len(line) and line[pos] != " ":
        raise FormatError(f"expected a space after structured data at character {pos}")
    message = line[pos + 1 :].removeprefix("\ufeff")
    attributes: dict[str, Any] = {}
    if stamp == "-":
        time, attributes["syslog.time_missing"] = utc_now(), True
    else:
        time = syslog_time(stamp)
    app = None if app == "-" else app
    host = None if host == "-" else host
    procid = None if procid == "-" else procid
    msgid = None if msgid == "-" else msgid
    if msgid:
        attributes["syslog.msgid"] = msgid
    if data:
        attributes["syslog.structured_data"] = data
    return _event(raw, ctx, time, _priority(pri), host, app, procid, message, attributes)


def _rfc3164(raw: bytes, line: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """[<PRI>]Mmm dd HH:MM:SS HOST TAG[PID]: MSG."""
    time, pri, host, program, pid, message, zone_text = header_fields(line, ctx)
    attributes: dict[str, Any] = {"syslog.timezone": zone_text} if zone_text else {}
    repeated = _REPEATED.match(message) if host is None else None
    if repeated:
        event = _event(raw, ctx, time, pri, None, None, None, message, attributes)
        event["action"] = "syslog.repeated"
        event["actor"] = {"id": "syslogd", "type": "system"}
        event["attributes"]["syslog.repeat_count"] = int(repeated.group(1))
        return event
    return _event(raw, ctx, time, pri, host, program, pid, message, attributes)


def _priority(pri: str) -> int:
    value = int(pri)
    if value > 191 or (len(pri) > 1 and pri[0] == "0"):
        raise FormatError(f"bad syslog PRI <{pri}>")
    return value


def _event(
    raw: bytes,
    ctx: dict[str, Any],
    time: str,
    pri: int | None,
    host: str | None,
    app: str | None,
    pid: str | None,
    message: str,
    attributes: dict[str, Any],
) -> dict[str, Any]:
    """The event for one message: interpreted auth fields if any, else system syslog.message."""
    fields = interpret(app, message, host) if app else None
    if fields:
        event = {
            "time": time,
            "source": source(ctx, FORMAT, "infra", app, host),
            "raw_hash": sha256(raw).hexdigest(),  # _common.sha256_hex
            **fields,
        }
        own = fields.get("attributes")  # the rule's own fresh dict: extended, not copied
        if own:
            own.update(attributes)
            attributes = own
    else:
        event = _system_event(raw, ctx, time, host, app)
    attributes["message"] = message
    if pri is not None:
        event["severity"] = SEVERITIES[pri & 7]
        attributes["syslog.facility"] = FACILITIES[pri >> 3]
        attributes["syslog.severity"] = SEVERITY_NAMES[pri & 7]
    add_process_attributes(attributes, app, pid)
    event["attributes"] = attributes
    return bounded(event, raw) if fields else event  # a system event's strings are checked as it is made


def _system_event(
    raw: bytes, ctx: dict[str, Any], time: str, host: str | None, app: str | None
) -> dict[str, Any]:
    """The event of a message no rule interprets, up to its attributes: system, syslog.message, outcome
    unknown, the app (else host) as actor. Its actor and source are checked against the limits here."""
    actor = app or host or "syslog"
    if len(actor) > SHORT_MAX:
        short(actor, "actor.id")
    return {
        "time": time,
        "source": source(ctx, FORMAT, "infra", app, host),
        "raw_hash": sha256(raw).hexdigest(),  # _common.sha256_hex
        "category": "system",
        "action": "syslog.message",
        "outcome": "unknown",
        "actor": {"id": actor, "type": "system"},
    }


def structured_data(line: str, pos: int) -> tuple[dict[str, dict[str, Any]], int]:
    """RFC 5424 STRUCTURED-DATA starting at pos: ({SD-ID: {name: value}}, position after it)."""
    if line.startswith("-", pos):
        return {}, pos + 1
    return _well_formed_data(line, pos) or _scanned_data(line, pos)


def _well_formed_data(line: str, pos: int) -> tuple[dict[str, dict[str, Any]], int] | None:
    """structured_data by regular expression, or None for anything unusual (the scanner then says why)."""
    data: dict[str, dict[str, Any]] = {}
    element = _SD_ELEMENT.match(line, pos)
    while element:
        sd_id, params_text, _ = element.groups()
        if sd_id in data:
            return None
        pairs = _SD_PARAM.findall(params_text)
        params: dict[str, Any] = dict(pairs)
        if len(params) < len(pairs) or "\\" in params_text:  # a repeated name or an escape
            params = _params(pairs)
        data[sd_id] = params
        pos = element.end()
        element = _SD_ELEMENT.match(line, pos)
    return (data, pos) if data and not line.startswith("[", pos) else None


def _params(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """SD-PARAMs as a dict: values unescaped, a repeated name's values in a list."""
    params: dict[str, Any] = {}
    for name, value in pairs:
        if "\\" in value:
            value = _SD_ESCAPE.sub(r"\1", value)
        if name in params:
            old = params[name]
            value = [*old, value] if isinstance(old, list) else [old, value]
        params[name] = value
    return params


def _scanned_data(line: str, pos: int) -> tuple[dict[str, dict[str, Any]], int]:
    """structured_data character by character, with a precise reason for malformed input."""
    data: dict[str, dict[str, Any]] = {}
    while line.startswith("[", pos):
        end = _token_end(line, pos + 1)
        sd_id = line[pos + 1 : end]
        if not sd_id or sd_id in data:
            raise FormatError(f"empty or repeated SD-ID at character {pos}")
        params: dict[str, Any] = {}
        pos = end
        while line.startswith(" ", pos):
            name_end = _token_end(line, pos + 1)
            name = line[pos + 1 : name_end]
            if not name or not line.startswith('="', name_end):
                raise FormatError(f"bad SD-PARAM at character {pos + 1}")
            value, pos = _param_value(line, name_end + 2)
            params[name] = (
                [*params[name], value]
                if isinstance(params.get(name), list)
                else ([params[name], value] if name in params else value)
            )
        if not line.startswith("]", pos):
            raise FormatError(f"expected ']' to close SD-ELEMENT at character {pos}")
        data[sd_id] = params
        pos += 1
    if not data:
        raise FormatError(f"expected '-' or '[' for structured data at character {pos}")
    return data, pos


def _token_end(line: str, pos: int) -> int:
    """End of an SD-NAME: the first space, '=', ']' or '\"' at or after pos."""
    end = pos
    while end < len(line) and line[end] not in ' =]"':
        end += 1
    return end


def _param_value(line: str, pos: int) -> tuple[str, int]:
    """A PARAM-VALUE from after its opening quote: (unescaped value, position after its closing quote)."""
    search = pos
    while True:
        quote = line.find('"', search)
        if quote < 0:
            raise FormatError("unterminated SD-PARAM value")
        backslashes = 0
        while quote - backslashes - 1 >= pos and line[quote - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            break
        search = quote + 1
    value = line[pos:quote]
    return (_SD_ESCAPE.sub(r"\1", value) if "\\" in value else value), quote + 1

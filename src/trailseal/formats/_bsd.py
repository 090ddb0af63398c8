"""The BSD syslog (RFC 3164) header shared by syslog and auth.log: [<PRI>]TIMESTAMP HOST TAG[PID]: MSG.

TIMESTAMP is ``Mmm dd HH:MM:SS`` (year from ctx, zone from ctx; a following ``TZ YYYY`` as in
RFC 3164 §5.4's third example is honoured for UTC/GMT and the US zones) or an RFC 3339 timestamp
as written by rsyslog's high-precision templates.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple

from trailseal.formats import FormatError
from trailseal.formats._common import MONTHS, ctx_year, ctx_zone, local_time, rfc3339

_HEADER = re.compile(
    r"(?:<(?P<pri>\d{1,3})>)?"
    r"(?:(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<clock>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,6}))?"
    r"(?: (?P<tzname>[A-Z]{1,5}) (?P<year>\d{4})(?= ))?"
    r"|(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})))"
    r"(?: (?P<rest>.*))?\Z",
    re.S,
)
_HOST_TAG = re.compile(
    r"(?P<host>\S+)"
    r"(?: (?:(?P<program>[^\s\[\]:]{1,64})(?:\[(?P<pid>[^\]\s]{0,32})\])?: ?)?(?P<message>.*))?\Z",
    re.S,
)
_REPEATED = re.compile(r"--- last message repeated (\d{1,9}) times? ---\s*\Z")
_ZONES = {
    "UTC": 0,
    "UT": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
}


class Header(NamedTuple):
    """A parsed BSD syslog line: UTC time, priority, host, program, pid and the message text."""

    time: str
    pri: int | None
    host: str | None
    program: str | None
    pid: str | None
    message: str
    zone_text: str | None = None


def parse_header(line: str, ctx: dict[str, Any]) -> Header:
    """Split a BSD syslog line into its header fields, or raise FormatError."""
    match = _HEADER.match(line)
    if not match:
        raise FormatError("not a BSD syslog line (expected 'Mmm dd HH:MM:SS host tag: message')")
    pri_text, month, day, clock, frac, zone_text, year, iso, rest = match.groups()
    pri = int(pri_text) if pri_text is not None else None
    if pri is not None and pri > 191:
        raise FormatError(f"syslog PRI {pri} is out of range (0-191)")
    if iso:
        moment = rfc3339(iso)
    else:
        zone = _zone(zone_text) or ctx_zone(ctx)
        micros = int(frac.ljust(6, "0")) if frac else 0
        moment = _bsd_time(month, int(day), clock, micros, int(year) if year else ctx_year(ctx), zone)
    rest = rest or ""
    if _REPEATED.match(rest):
        return Header(moment, pri, None, None, None, rest.strip(), zone_text)
    parts = _HOST_TAG.match(rest)
    if not parts:
        raise FormatError("BSD syslog line has no host after the timestamp")
    host, program, pid, message = parts.groups()
    return Header(moment, pri, host, program, pid or None, message or "", zone_text)


@lru_cache(maxsize=4096)
def _bsd_time(month: str, day: int, clock: str, micros: int, year: int, zone: tzinfo) -> str:
    number = MONTHS.get(month)
    if number is None:
        raise FormatError(f"unknown month {month!r}")
    return local_time(year, number, day, clock, micros, zone, f"{month} {day} {clock}")


@lru_cache(maxsize=16)
def _zone(name: str | None) -> tzinfo | None:
    if name not in _ZONES:
        return None
    return timezone(timedelta(hours=_ZONES[name]))

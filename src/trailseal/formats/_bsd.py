"""The BSD syslog (RFC 3164) header shared by syslog and auth.log: [<PRI>]TIMESTAMP HOST TAG[PID]: MSG.

TIMESTAMP is ``Mmm dd HH:MM:SS`` (year from ctx, zone from ctx; a following ``TZ YYYY`` as in
RFC 3164 §5.4's third example is honoured for UTC/GMT and the US zones) or an RFC 3339 timestamp
as written by rsyslog's high-precision templates.
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple

from trailseal.formats import FormatError
from trailseal.formats._common import (
    MONTHS,
    ctx_year,
    ctx_zone,
    local_time,
    rfc3339,
)

# An optional group is written (?:X|), not (?:X)?: the same matches and captures (X first, then
# nothing), but sre runs a branch in far fewer steps than a repeat (_LINE on a usual line: -30%).
_STAMP = (
    r"(?:<(?P<pri>\d{1,3})>|)"
    r"(?:(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<clock>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,6})|)"
    r"(?: (?P<tzname>[A-Z]{1,5}) (?P<year>\d{4})(?= )|)"
    r"|(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6}|)(?:Z|[+-]\d{2}:\d{2})))"
)
# Possessive runs: a shorter host, program or pid could only be followed by a character of its own
# class, never by the space, '[', ':' or ']' that must follow, so not backtracking changes nothing.
_HOST_TAG_TEXT = (
    r"(?P<host>\S++)"
    r"(?: (?:(?P<program>[^\s\[\]:]{1,64}+)(?:\[(?P<pid>[^\]\s]{0,32}+)\]|): ?|)(?P<message>.*)|)\Z"
)
_HEADER = re.compile(_STAMP + r"(?: (?P<rest>.*)|)\Z", re.S)
_HOST_TAG = re.compile(_HOST_TAG_TEXT, re.S)
# _HEADER then _HOST_TAG on its rest, in one match. The stamp is atomic: where _HEADER would have to
# backtrack into it (the stamp's first reading is not followed by a space), this fails and the
# two-step path decides, so a match here always reads the line exactly as the two steps do.
_LINE = re.compile("(?>" + _STAMP + ") " + _HOST_TAG_TEXT, re.S)
_SECOND_AND_ZONE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})\Z", re.ASCII)
_REPEATED = re.compile(r"--- last message repeated (\d{1,9}) times? ---\s*\Z")
_ZONES = {
    name: timezone(timedelta(hours=hours))
    for name, hours in {
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
    }.items()
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
    return Header(*header_fields(line, ctx))


def header_fields(
    line: str, ctx: dict[str, Any]
) -> tuple[str, int | None, str | None, str | None, str | None, str, str | None]:
    """parse_header as a plain tuple (time, pri, host, program, pid, message, zone_text): one match
    for an ordinary line, the two-step parse for anything else."""
    match = _LINE.match(line)
    if match is None:
        return _two_step(line, ctx)
    pri_text, month, day, clock, frac, zone_text, year, iso, host, program, pid, message = match.groups()
    if host == "---":  # maybe a '--- last message repeated' marker
        return _two_step(line, ctx)
    pri = _pri(pri_text) if pri_text else None
    moment = syslog_time(iso) if iso else _local_moment(month, day, clock, frac, zone_text, year, ctx)
    return moment, pri, host, program, pid or None, message or "", zone_text


def _two_step(
    line: str, ctx: dict[str, Any]
) -> tuple[str, int | None, str | None, str | None, str | None, str, str | None]:
    """header_fields by the header, then the host and tag: the reference reading, with its errors."""
    match = _HEADER.match(line)
    if not match:
        raise FormatError("not a BSD syslog line (expected 'Mmm dd HH:MM:SS host tag: message')")
    pri_text, month, day, clock, frac, zone_text, year, iso, rest = match.groups()
    pri = _pri(pri_text)
    moment = syslog_time(iso) if iso else _local_moment(month, day, clock, frac, zone_text, year, ctx)
    rest = rest or ""
    if rest.startswith("--- last") and _REPEATED.match(rest):
        return moment, pri, None, None, None, rest.strip(), zone_text
    parts = _HOST_TAG.match(rest)
    if not parts:
        raise FormatError("BSD syslog line has no host after the timestamp")
    host, program, pid, message = parts.groups()
    return moment, pri, host, program, pid or None, message or "", zone_text


def _pri(text: str | None) -> int | None:
    """The header's PRI as a number (None if absent), or FormatError above 191."""
    if text is None:
        return None
    pri = int(text)
    if pri > 191:
        raise FormatError(f"syslog PRI {pri} is out of range (0-191)")
    return pri


def _local_moment(
    month: str,
    day: str,
    clock: str,
    frac: str | None,
    zone_text: str | None,
    year: str | None,
    ctx: dict[str, Any],
) -> str:
    """UTC time of a 'Mmm dd HH:MM:SS[.frac] [TZ YYYY]' stamp: zone and year from the stamp, else ctx."""
    zone = _ZONES.get(zone_text) if zone_text else None
    if zone is None:
        zone = UTC if ctx.get("default_tz") is None else ctx_zone(ctx)
    if year:
        number = int(year)
    else:
        number = ctx.get("year")
        if type(number) is not int or not number:
            number = ctx_year(ctx)
    return _bsd_time(month, day, clock, frac, number, zone)


@lru_cache(maxsize=4096)
def _bsd_time(month: str, day: str, clock: str, frac: str | None, year: int, zone: tzinfo) -> str:
    """The UTC text of one local second (and fraction): cached, as a log's lines share few seconds."""
    number = MONTHS.get(month)
    if number is None:
        raise FormatError(f"unknown month {month!r}")
    micros = int(frac.ljust(6, "0")) if frac else 0
    return local_time(year, number, int(day), clock, micros, zone, f"{month} {int(day)} {clock}")


def syslog_time(stamp: str) -> str:
    """rfc3339(stamp), the UTC second of each 'YYYY-MM-DDTHH:MM:SS' and zone cached (a log's lines
    share few seconds); a fraction of up to 6 ASCII digits is carried over, as no offset moves it."""
    if len(stamp) < 20:
        return rfc3339(stamp)
    if stamp.endswith("Z"):
        zone, fraction = "Z", stamp[19:-1]
    else:
        zone, fraction = stamp[-6:], stamp[19:-6]
    if not fraction:
        fraction = "000000"
    elif fraction[0] == "." and 1 < len(fraction) <= 7 and fraction.isascii() and fraction[1:].isdigit():
        fraction = fraction[1:].ljust(6, "0")
    else:
        return rfc3339(stamp)
    utc = _utc_second(stamp[:19], zone)
    return rfc3339(stamp) if utc is None else f"{utc}.{fraction}Z"


@lru_cache(maxsize=4096)
def _utc_second(second: str, zone: str) -> str | None:
    """The UTC 'YYYY-MM-DDTHH:MM:SS' of a second in a zone ('Z' or '+HH:MM'), None if not one or if
    rfc3339 would refuse it."""
    if not _SECOND_AND_ZONE.match(second + zone):
        return None
    try:
        return rfc3339(second + zone)[:19]
    except FormatError:
        return None

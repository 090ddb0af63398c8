"""Fields that detection derives from an event because no producer writes them.

- ``time_hour`` / ``time_weekday``: hour (0-23) and ISO weekday (1 Monday .. 7 Sunday) of ``time``
  in the engine's business time zone (UTC unless configured).
- ``clock_skew_seconds``: ``|received - time|`` in seconds (producer clock against ours).
- ``http_query`` / ``http_path`` / ``http_extension``: ``request.path`` split at ``?`` and its file
  extension, for the web fields ``cs-uri-query``, ``cs-uri-stem`` and ``c-uri-extension``.
- ``k8s_verb``: the last segment of a ``k8s.*`` action, when the original verb was not kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from trailseal.detect.paths import MISSING, Accessor


@lru_cache(maxsize=4096)
def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime, or None."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def epoch_seconds(text: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (None if unreadable)."""
    micros = epoch_micros(text)
    return micros / 1_000_000 if micros is not None else None


def epoch_micros(text: object) -> int | None:
    """Microseconds since the epoch of an RFC 3339 timestamp (None if unreadable): exact, where
    float seconds lose microseconds in far years."""
    if not isinstance(text, str):
        return None
    if len(text) == 27:
        sealed = _sealed_stamp_micros(text)
        if sealed is not None:
            return sealed
    moment = parse_time(text)
    return (moment - EPOCH) // ONE_MICROSECOND if moment is not None else None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


def _sealed_stamp_micros(text: str) -> int | None:
    """epoch_micros of a stamp as trailseal seals it (`YYYY-MM-DDTHH:MM:SS.ffffffZ`) without
    building a datetime: the hour's start is remembered, the rest is integer arithmetic (None: not
    in that form)."""
    if text[13] != ":" or text[16] != ":" or text[19] != "." or text[26] != "Z":
        return None
    digits = text[14:16] + text[17:19] + text[20:26]
    if not (digits.isascii() and digits.isdigit()):
        return None
    hour = _hour_start(text[:13])
    minute, second = int(digits[0:2]), int(digits[2:4])
    if hour is None or minute > 59 or second > 59:
        return None
    return (hour + minute * 60 + second) * 1_000_000 + int(digits[4:])


@lru_cache(maxsize=1024)
def _hour_start(prefix: str) -> int | None:
    """Epoch seconds at the start of `YYYY-MM-DDTHH` (UTC), or None."""
    moment = parse_time(prefix + ":00:00Z")
    return int(moment.timestamp()) if moment is not None else None


def _local(event: dict, zone: tzinfo | None) -> datetime | None:
    moment = parse_time(event.get("time", ""))
    if moment is None or zone is None:
        return moment
    return moment.astimezone(zone)


def time_hour(zone: tzinfo | None) -> Accessor:
    """Hour of the event's time in zone (UTC when zone is None)."""

    def get(event: dict) -> object:
        text = event.get("time")
        if zone is None and isinstance(text, str) and len(text) > 19 and text[-1] == "Z":
            return int(text[11:13])
        moment = _local(event, zone)
        return moment.hour if moment is not None else MISSING

    return get


def time_weekday(zone: tzinfo | None) -> Accessor:
    """ISO weekday (1 = Monday) of the event's time in zone."""

    def get(event: dict) -> object:
        moment = _local(event, zone)
        return moment.isoweekday() if moment is not None else MISSING

    return get


def clock_skew_seconds(event: dict) -> object:
    """Absolute difference between ``received`` and ``time`` in seconds."""
    sent, got = event.get("time"), event.get("received")
    if sent == got:
        return 0.0 if epoch_micros(sent) is not None else MISSING
    if type(sent) is str and type(got) is str and len(sent) == 27 == len(got) and sent[:14] == got[:14]:
        near = _same_hour_difference(sent, got)
        if near is not None:
            return near
    start, end = epoch_micros(sent), epoch_micros(got)
    if start is None or end is None:
        return MISSING
    return abs(end - start) / 1_000_000


SKEW_SURELY_BELOW = 60.0  # what skew_surely_below_a_minute() proves: the skew is a number under this


def skew_surely_below_a_minute(event: dict) -> bool:
    """Whether clock_skew_seconds(event) is certainly a number below 60 s, without computing it:
    both stamps are sealed (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, well formed) and share the minute."""
    sent, got = event.get("time"), event.get("received")
    if type(sent) is not str or _SEALED_STAMP.match(sent) is None:
        return False
    minute = sent[:16]
    if not (_MINUTES_SEEN.get(minute) or _is_minute(minute)):
        return False
    if got == sent:
        return True
    return type(got) is str and len(got) == 27 and got[:16] == minute and _SEALED_SECONDS.match(got, 16) is not None


_SEALED_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z\Z")
_SEALED_SECONDS = re.compile(r":[0-5][0-9]\.[0-9]{6}Z\Z")  # `:SS.ffffffZ`, the end of a sealed stamp
_SEALED_MINUTES_SECONDS = re.compile(r"[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z\Z")  # `MM:SS.ffffffZ`
_MINUTES_SEEN: dict[str, bool] = {}


def _is_minute(prefix: str) -> bool:
    """Whether `YYYY-MM-DDTHH:MM` is a real UTC minute (remembered: a plain dict, the fastest cache)."""
    known = _MINUTES_SEEN.get(prefix)
    if known is None:
        if len(_MINUTES_SEEN) >= 4096:
            _MINUTES_SEEN.clear()
        known = _MINUTES_SEEN[prefix] = prefix[13:14] == ":" and prefix[14:16] in _MINUTES \
            and _hour_start(prefix[:13]) is not None
    return known


_MINUTES = frozenset(f"{m:02d}" for m in range(60))


def _same_hour_difference(sent: str, got: str) -> float | None:
    """|got - sent| for two canonical stamps of the same hour (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, as
    trailseal seals them) without parsing dates: exact, in integer microseconds (None: either
    stamp is not in that form, or the hour is not a real one)."""
    if sent[13] != ":" or _SEALED_MINUTES_SECONDS.match(sent, 14) is None:
        return None
    if _SEALED_MINUTES_SECONDS.match(got, 14) is None or _hour_start(sent[:13]) is None:
        return None
    if sent[14:16] == got[14:16]:  # same minute: only the seconds differ
        return round(abs(float(got[17:26]) - float(sent[17:26])), 6)
    start = (int(sent[14:16]) * 60 + int(sent[17:19])) * 1_000_000 + int(sent[20:26])
    end = (int(got[14:16]) * 60 + int(got[17:19])) * 1_000_000 + int(got[20:26])
    return abs(end - start) / 1_000_000


def _request_path(event: dict) -> str | None:
    request = event.get("request")
    path = request.get("path") if type(request) is dict else None
    return path if isinstance(path, str) else None


def http_query(event: dict) -> object:
    """The query string of ``request.path`` (without ``?``), empty if none."""
    path = _request_path(event)
    if path is None:
        return MISSING
    return path.split("?", 1)[1] if "?" in path else ""


def http_path(event: dict) -> object:
    """``request.path`` without its query string."""
    path = _request_path(event)
    return MISSING if path is None else path.split("?", 1)[0]


def http_extension(event: dict) -> object:
    """File extension of the requested path (without the dot), empty if none."""
    path = http_path(event)
    if path is MISSING:
        return MISSING
    leaf = path.rsplit("/", 1)[-1]
    return leaf.rsplit(".", 1)[1] if "." in leaf else ""


def k8s_verb(event: dict) -> object:
    """The verb of a ``k8s.<resource>[.<sub>].<verb>`` action."""
    action = event.get("action")
    if isinstance(action, str) and action.startswith("k8s."):
        return action.rsplit(".", 1)[1]
    return MISSING


def derived_fields(zone_name: str | None = None) -> dict[str, Callable[[dict], object]]:
    """Every derived field by name, with time fields in zone_name (None = UTC)."""
    zone = ZoneInfo(zone_name) if zone_name and zone_name.upper() != "UTC" else None
    return {
        "time_hour": time_hour(zone),
        "time_weekday": time_weekday(zone),
        "clock_skew_seconds": clock_skew_seconds,
        "http_query": http_query,
        "http_path": http_path,
        "http_extension": http_extension,
        "k8s_verb": k8s_verb,
    }

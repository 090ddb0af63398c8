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
        start = _MINUTE_STARTS.get(text[:16])
        if start is None:
            start = _minute_start(text[:16])
        if start is not False and _SEALED_SECONDS.match(text, 16) is not None:
            return start + int(text[17:19]) * 1_000_000 + int(text[20:26])
    moment = parse_time(text)
    return (moment - EPOCH) // ONE_MICROSECOND if moment is not None else None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


def _minute_start(prefix: str) -> int | bool:
    """Epoch microseconds at the start of a sealed stamp's minute `YYYY-MM-DDTHH:MM` (False: not a
    real UTC minute in that form), remembered in a plain dict (the fastest cache): a sealed stamp
    is then its minute's start plus integer seconds and microseconds, no datetime built."""
    known = _MINUTE_STARTS.get(prefix)
    if known is None:
        if len(_MINUTE_STARTS) >= 4096:
            _MINUTE_STARTS.clear()
        hour = _hour_start(prefix[:13]) if _SEALED_MINUTE.match(prefix) is not None else None
        known = _MINUTE_STARTS[prefix] = False if hour is None else (hour + int(prefix[14:16]) * 60) * 1_000_000
    return known


_MINUTE_STARTS: dict[str, int | bool] = {}
_SEALED_MINUTE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-5][0-9]\Z")  # `YYYY-MM-DDTHH:MM`


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
    sent = event.get("time")
    if type(sent) is not str or len(sent) != 27:
        return False
    minute = sent[:16]
    start = _MINUTE_STARTS.get(minute)
    if start is None:
        start = _minute_start(minute)
    if start is False or _SEALED_SECONDS.match(sent, 16) is None:
        return False
    got = event.get("received")
    if got == sent:
        return True
    return type(got) is str and len(got) == 27 and got[:16] == minute and _SEALED_SECONDS.match(got, 16) is not None


_SEALED_SECONDS = re.compile(r":[0-5][0-9]\.[0-9]{6}Z\Z")  # `:SS.ffffffZ`, the end of a sealed stamp
_SEALED_MINUTES_SECONDS = re.compile(r"[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z\Z")  # `MM:SS.ffffffZ`


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

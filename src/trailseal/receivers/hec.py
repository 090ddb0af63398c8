"""Splunk HTTP Event Collector bodies and answers.

``/services/collector/event`` takes event envelopes ``{"time", "host", "source", "sourcetype",
"index", "fields", "event"}`` as concatenated JSON objects (whitespace between them optional, as
Splunk allows); ``/services/collector/raw`` takes lines, with the metadata in the query string.
Answers are ``{"text": ..., "code": n}`` with Splunk's codes; an invalid event is named by
``invalid-event-number`` (0-based). Events before and after a refused one are still sealed, except
that nothing after malformed JSON can be read (its end cannot be found), as in Splunk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CODES: dict[int, tuple[int, str]] = {
    0: (200, "Success"),
    1: (403, "Token disabled"),
    2: (401, "Token is required"),
    3: (401, "Invalid authorization"),
    4: (403, "Invalid token"),
    5: (400, "No data"),
    6: (400, "Invalid data format"),
    7: (400, "Incorrect index"),
    8: (500, "Internal server error"),
    9: (503, "Server is busy"),
    12: (400, "Event field is required"),
    13: (400, "Event field cannot be blank"),
    15: (400, "Error in handling indexed fields"),
    17: (200, "HEC is healthy"),
    18: (503, "HEC is unhealthy, queues are full"),
}
META_KEYS = ("index", "source", "sourcetype")
_decoder = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


@dataclass
class HecEvent:
    """One envelope of a request: its position, the envelope, its raw bytes, or why it is refused."""

    position: int
    envelope: dict[str, Any] | None
    raw: bytes
    error: tuple[int, str] | None = None  # (HEC code, reason)


def answer(code: int, **extra: Any) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for a HEC code."""
    status, text = CODES[code]
    return status, {"text": text, "code": code, **extra}


def parse_events(body: bytes) -> list[HecEvent]:
    """The envelopes of an /event body; after malformed JSON, one last refused entry for the rest."""
    text = body.decode("utf-8", "surrogateescape")
    events: list[HecEvent] = []
    pos = _skip(text, 0)
    while pos < len(text):
        try:
            doc, end = _decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = (
                f"malformed JSON at character {getattr(exc, 'pos', pos)}: {getattr(exc, 'msg', 'too deep')}"
            )
            events.append(
                HecEvent(len(events), None, text[pos:].encode("utf-8", "surrogateescape"), (6, reason))
            )
            break
        raw = text[pos:end].encode("utf-8", "surrogateescape")
        events.append(check(HecEvent(len(events), doc if isinstance(doc, dict) else None, raw), doc))
        pos = _skip(text, end)
    return events


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def check(event: HecEvent, doc: Any) -> HecEvent:
    """Refuse an envelope Splunk would refuse: not an object, no event, blank event, bad fields, bad UTF-8."""
    if not _valid_utf8(event.raw):
        event.error = (6, "invalid UTF-8 in the event")
    elif not isinstance(doc, dict):
        event.error = (6, "an event envelope must be a JSON object")
    elif "event" not in doc:
        event.error = (12, "the envelope has no 'event' field")
    elif doc["event"] in (None, "", {}, []):
        event.error = (13, "the 'event' field is blank")
    elif "fields" in doc and not _valid_fields(doc["fields"]):
        event.error = (15, "'fields' must be an object of strings or lists of strings")
    elif any(k in doc and not isinstance(doc[k], str) for k in ("host", *META_KEYS)):
        event.error = (6, "host, index, source and sourcetype must be strings")
    return event


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _valid_fields(fields: Any) -> bool:
    if not isinstance(fields, dict):
        return False
    return all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
        for v in fields.values()
    )


def raw_lines(body: bytes) -> list[tuple[int, bytes]]:
    """The non-blank lines of a /raw body with their positions."""
    lines = (line.rstrip(b"\r") for line in body.split(b"\n"))
    return list(enumerate(line for line in lines if line.strip()))


def metadata(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope's Splunk metadata as ``splunk.*`` attributes."""
    meta = {f"splunk.{k}": envelope[k] for k in META_KEYS if isinstance(envelope.get(k), str)}
    if isinstance(envelope.get("fields"), dict) and envelope["fields"]:
        meta["splunk.fields"] = envelope["fields"]
    return meta

"""trailseal-native events, one JSON object per line: validated against schema v1 and passed through.

The producer's fields are kept as sent, except: ``time`` is normalized to UTC with microseconds,
``received`` is removed (only trailseal's clock sets it), ``source.format`` defaults to ``ndjson``,
and ``raw_hash`` is set to the line's SHA-256 unless the producer sent its own (which then refers to
its original record). A line that is not a valid v1 event is rejected with the schema's reason.
"""

from __future__ import annotations

from typing import Any

import msgspec

from trailseal.event import MAX_EVENT_BYTES, Event
from trailseal.formats import FormatError
from trailseal.formats._common import lines, rfc3339, sha256_hex

FORMAT = "ndjson"
_decoder = msgspec.json.Decoder(Event)


def split(data: bytes) -> list[bytes]:
    """The non-blank lines of an NDJSON stream."""
    return lines(data)


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """One NDJSON line -> the event it holds, validated."""
    if len(raw) > MAX_EVENT_BYTES:
        raise FormatError(f"record is {len(raw)} bytes; an event holds at most {MAX_EVENT_BYTES}")
    try:
        event = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise FormatError(f"not a valid event: {exc}") from None
    except msgspec.DecodeError as exc:
        raise FormatError(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise FormatError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"invalid UTF-8 at byte {exc.start}") from None
    event.time = rfc3339(event.time)
    event.received = None
    event.source.format = event.source.format or FORMAT
    event.raw_hash = event.raw_hash or sha256_hex(raw)
    return [msgspec.to_builtins(event)]

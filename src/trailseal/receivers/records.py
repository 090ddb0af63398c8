"""A receiver's records to sealable events: here, or in a prepare worker, by the reader's name.

A reader turns one record (a syslog frame with who sent it and how, or an event dict an HTTP receiver
parsed) into the event dicts it holds; ``seal_records`` validates and protects them. A record is all or nothing: if one of its events cannot
be sealed, none is, and the record is refused with the reason. The prepare workers
(:mod:`trailseal.prepare_pool`) import this module, so it stays light: no asyncio, no sockets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from trailseal.event import Sealable, to_event
from trailseal.formats import FormatError
from trailseal.formats import syslog as syslog_format
from trailseal.protection import seal_received
from trailseal.receivers.intake import reason_of

_PRI_ONLY = re.compile(rb"<([0-9]{1,3})>(?!1 )")
_BSD_STAMP = re.compile(rb"[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} ")


def relay_header(frame: bytes, moment: datetime, peer: str) -> bytes | None:
    """``<PRI>text`` with the TIMESTAMP and HOSTNAME a relay adds (RFC 3164 §4.3.3), else None."""
    match = _PRI_ONLY.match(frame)
    if match is None or _BSD_STAMP.match(frame, match.end()):
        return None
    stamp = f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S}".encode()
    return frame[: match.end()] + stamp + b" " + peer.encode() + b" " + frame[match.end() :]


def parse_frame(frame: bytes, ctx: dict[str, Any], peer: str) -> list[dict[str, Any]]:
    """The events of one syslog frame; FormatError if it is not syslog."""
    try:
        return syslog_format.parse(frame, **ctx)
    except FormatError:
        moment = datetime.now(UTC)
        fixed = relay_header(frame, moment, peer)
        if fixed is None:
            raise
    events = syslog_format.parse(fixed, **{**ctx, "year": moment.year, "default_tz": "UTC"})
    for event in events:
        event["attributes"]["syslog.time_missing"] = True
    return events


def syslog_events(record: tuple[bytes, str, str], options: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of one syslog record (frame, peer address, transport), in ``options["log"]`` unless
    they name their own, each noting who sent it and how."""
    frame, peer, transport = record
    events = parse_frame(frame, options["ctx"], peer)
    for event in events:
        event.setdefault("log", options["log"])
        event["attributes"].update({"network.peer.address": peer, "syslog.transport": transport})
    return events


def parsed_events(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    """An event dict a receiver parsed already, in ``options["log"]`` (if set) unless it names its own."""
    if options.get("log") and "log" not in record:
        record["log"] = options["log"]
    return [record]


READERS: dict[str, Callable[[Any, dict[str, Any]], list[dict[str, Any]]]] = {
    "syslog": syslog_events,
    "event": parsed_events,
}


def seal_records(protection: Any, received: str, reader: str, options: dict[str, Any], positions: Sequence[int],
                 records: Sequence[Any]) -> tuple[list[tuple[int, Sealable]], list[tuple[int, str, str | None]]]:
    """(position, Sealable) for each event of each record read, and (position, reason, field) for each
    record refused: unreadable, holding an event that cannot be sealed (its other events are not sealed
    either), or one in a log other than ``options["logs"]`` (when set: the logs a token may write to)."""
    read, logs = READERS[reader], options.get("logs")
    prepared: list[tuple[int, Sealable]] = []
    refused: list[tuple[int, str, str | None]] = []
    for position, record in zip(positions, records, strict=True):
        made: list[Sealable] = []
        try:
            for data in read(record, options):
                made.append(seal_received(protection, to_event(data), received, logs))
        except Exception as exc:  # noqa: BLE001 - see reason_of: one poison record never stops the others
            for item in made:  # not sealed after all: their values must not count as in the vault
                protection.unhold(item.vault)
            refused.append((position, reason_of(exc), getattr(exc, "field", None)))
        else:
            prepared.extend((position, item) for item in made)
    return prepared, refused


POOL_WAIT_SECONDS = 0.5  # how long a receiver's batch waits for the workers another batch holds


def prepare_records(trail: Any, reader: str, options: dict[str, Any], records: Sequence[Any], received: str
                    ) -> tuple[list[tuple[int, Sealable]], list[tuple[int, str, str | None]]]:
    """``seal_records`` of every record: by the prepare workers (reading and protection are most of a
    record's CPU, and there they run beside this process's GIL), waiting up to ``POOL_WAIT_SECONDS`` for
    them while another batch has them (here it would take that CPU from the sealer); else here."""
    pooled = trail.pool.try_prepare_records(reader, options, records, received, POOL_WAIT_SECONDS)
    if pooled is not None:
        return pooled
    return seal_records(trail.protection, received, reader, options, range(len(records)), records)

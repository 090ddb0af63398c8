"""The wire form of one protected event on the bus: id, log, sealed bytes and vault rows (msgpack).

The ingest node has already validated and protected the event; the sequencer rebuilds the Sealable
from these bytes without running either stage again, so what is sealed is exactly what was acked.
It reads back only the columns the writer indexes (SealedColumns): the sealed bytes are the record,
and re-validating the whole event would cost the sequencer more than the commit does.
"""

from __future__ import annotations

import hashlib

import msgspec

from trailseal.event import Sealable
from trailseal.privacy.vault import VaultRow


class BusEvent(msgspec.Struct, array_like=True):
    id: str
    log: str
    canonical: bytes
    vault: list[VaultRow] = []


class ActorId(msgspec.Struct):
    id: str


class SealedColumns(msgspec.Struct):
    """The fields of a sealed event the writer indexes (what `Sealable.event` must offer it)."""

    id: str
    log: str
    time: str
    received: str
    category: str
    action: str
    outcome: str
    actor: ActorId


class BusMessageError(ValueError):
    """A message on the stream is not a trailseal event (someone else published to our subjects)."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BusEvent)
_columns = msgspec.json.Decoder(SealedColumns)


def encode(item: Sealable) -> bytes:
    """The message payload for a protected Sealable."""
    return _encoder.encode(BusEvent(item.id, item.log, item.canonical, list(item.vault)))


def decode(payload: bytes) -> Sealable:
    """The Sealable a payload carries, marked protected (the ingest node ran the privacy stage)."""
    try:
        message = _decoder.decode(payload)
        event = _columns.decode(message.canonical)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BusMessageError(f"not a trailseal bus event: {exc}") from None
    if event.id != message.id or event.log != message.log:
        raise BusMessageError(f"message header ({message.log}/{message.id}) does not match its event")
    return Sealable(message.id, message.log, event, message.canonical, tuple(message.vault), protected=True)


def leaf_of(item: Sealable) -> str:
    """Hex RFC 9162 leaf hash of the bytes that will be sealed."""
    return hashlib.sha256(b"\x00" + item.canonical).hexdigest()

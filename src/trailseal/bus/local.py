"""What every writer behind `trail.sealer` offers, and the embedded one: the local Sealer itself.

In embedded mode the bus is the process: receivers call `Sealer.submit()` and the future resolves
after the group commit. NatsBus offers the same interface, so the ingest routes, receivers and meta
events take one code path whichever mode runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Protocol

import msgspec

from trailseal.event import Sealable
from trailseal.pipeline import CommitStats, Overloaded, Sealer


class Queued(msgspec.Struct, frozen=True):
    """A receipt for an event JetStream has durably accepted but no sequencer has sealed yet."""

    log: str
    id: str
    leaf_hash: str | None  # of the bytes published (None for a duplicate JetStream already held)
    stream_seq: int
    index: None = None  # assigned by the sequencer; read it back by id once sealed


class BusUnavailable(Overloaded):
    """The bus cannot take events right now (NATS down, no ack in time): answer 503, never drop."""


class Bus(Protocol):
    """What routes, receivers and meta events need from `trail.sealer`."""

    max_queue_events: int
    heads: dict[str, str]
    stats: CommitStats
    on_commit: list[Callable[[list[tuple[str, int, bytes, tuple]]], None]]
    on_written: list[Callable[[list], None]]  # vault rows that will be in the store: their values are reused

    @property
    def queue_depth(self) -> int: ...

    def submit(self, items: Sequence[Sealable]) -> Future: ...

    def seal(self, items: Sequence[Sealable], timeout: float | None = None) -> list: ...

    def stop(self) -> None: ...


LocalBus = Sealer  # the embedded writer satisfies Bus as it is

"""Helpers shared by the archive and retention tests: a settable clock and sealed data dirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import trailseal
from tests.conftest import make_event
from trailseal.event import format_time

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


class FakeClock:
    """One settable clock: called, it is Trail's (RFC 3339 text); .moment() is Retention's."""

    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> str:
        return format_time(self.now)

    def moment(self) -> datetime:
        return self.now


def seal(directory: Path, clock: FakeClock, indices: range, batch: int = 10_000, **over) -> None:
    """Seal make_event(i) for i in indices at the clock's time."""
    with trailseal.open(directory, clock=clock) as log:
        for start in range(indices.start, indices.stop, batch):
            log.append([make_event(i, **over) for i in range(start, min(start + batch, indices.stop))])


def without_privacy(directory: Path) -> Path:
    """Turn privacy protection off in a data dir's config (for tests about volume, not privacy)."""
    config = directory / "trailseal.toml"
    config.write_text(config.read_text().replace("enabled = true", "enabled = false"))
    return directory


def entries(store, log: str = "default") -> dict[int, bytes]:
    """Every stored (index -> bytes) of a log."""
    return dict(store.read_entries(log, 0, 2**62))

"""Small helpers shared by the PostgreSQL engine tests."""

from __future__ import annotations

from tests.conftest import make_event
from trailseal.event import Sealable, from_dict
from trailseal.store.base import Commit, EntryRow

JANUARY = "2026-01-15T12:00:00.000000Z"


def sealables(start: int, count: int, received: str | None = None, **over) -> list[Sealable]:
    """Realistic events, optionally received at a fixed instant."""
    return [from_dict(make_event(i, **over), received=received) for i in range(start, start + count)]


def row(index: int, id_: str, data: bytes, received: str = JANUARY) -> EntryRow:
    return EntryRow(index, id_, JANUARY, received, "system", "x.y", "success", "a", data)


def commit(log: str, entries: list[EntryRow], tiles: list[tuple[int, int, bytes]], size: int) -> Commit:
    return Commit(log, entries, tiles, size, f"{log} {size}\n", "2026-01-15T12:00:00.000000Z")


def count_by_partition(conn) -> dict[str, int]:
    """Rows of `entries` per partition (table name without schema)."""
    rows = conn.execute("SELECT tableoid::regclass::text, count(*) FROM entries GROUP BY 1").fetchall()
    return {name.rsplit(".", 1)[-1]: count for name, count in rows}

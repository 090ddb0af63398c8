"""The Store protocol: what every storage engine (SQLite, PostgreSQL) must do, and its records.

A store keeps, per log: sealed entries (canonical event bytes plus a few indexed columns), the
C2SP tiles of the Merkle tree, and every signed checkpoint. A commit writes all three in one
transaction, so a crash leaves either the whole group commit or none of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import msgspec


def on_postgres(store: object) -> bool:
    """Whether the store is the PostgreSQL one (its search and exports have their own SQL)."""
    return type(store).__name__ == "PostgresStore"


class Receipt(msgspec.Struct, frozen=True):
    """Proof of acceptance: where an event was sealed."""

    log: str
    index: int
    leaf_hash: str  # hex SHA-256(0x00 || entry)
    id: str


class EntryRow(msgspec.Struct, array_like=True):
    """One sealed entry as written: its index, the indexed columns and the canonical bytes."""

    index: int
    id: str
    time: str
    received: str
    category: str
    action: str
    outcome: str
    actor_id: str
    data: bytes


class Commit(msgspec.Struct):
    """Everything one group commit writes for one log, atomically."""

    log: str
    entries: list[EntryRow]
    tiles: list[tuple[int, int, bytes]]  # (tile level, tile index, hashes)
    size: int  # tree size after this commit
    checkpoint: str  # signed note
    created: str
    vault: list = []  # privacy VaultRows of the new entries (mutable table, same transaction)


class Filters(msgspec.Struct, forbid_unknown_fields=True):
    """Simple indexed filters for listing entries (the query language compiles to richer SQL)."""

    since: str | None = None  # inclusive, normalized RFC 3339
    until: str | None = None  # exclusive
    category: str | None = None
    action_prefix: str | None = None
    outcome: str | None = None
    actor_id: str | None = None
    actor_in: list[str] | None = None  # any of these actor_id values (commitments found by search token)
    target_id: str | None = None
    source_component: str | None = None


class Cursor(msgspec.Struct, array_like=True, frozen=True):
    """Where a newest-first listing stopped: (time, log, index) of the last entry returned."""

    time: str
    log: str
    index: int


class LogInfo(msgspec.Struct):
    name: str
    size: int
    checkpoint: str | None


class StoreError(RuntimeError):
    """The store cannot do what was asked (corrupt, locked, misconfigured)."""


class Store(Protocol):
    """What the writer, readers and verifier need from storage. See tests/conformance/."""

    def logs(self) -> list[LogInfo]: ...

    def tree_size(self, log: str) -> int:
        """Size of the latest committed (signed) tree of ``log``; 0 if none."""

    def edge_tiles(self, log: str, size: int) -> dict[int, bytes]:
        """The rightmost tile at each level for a tree of ``size``."""

    def find_ids(self, log: str, ids: Sequence[str]) -> dict[str, tuple[int, bytes | None]]:
        """Already sealed ids among ``ids``: id -> (index, entry bytes, or None if retention pruned them)."""

    def commit(self, commits: Sequence[Commit]) -> None:
        """Write entries, tiles and checkpoints of one group commit in one transaction."""

    def read_entries(self, log: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(index, entry bytes) for stored entries with start <= index < end, in index order."""

    def read_tile(self, log: str, level: int, index: int) -> bytes | None:
        """Stored hashes of one tile (its current width), or None."""

    def read_tiles(self, log: str, level: int) -> Iterator[tuple[int, bytes]]:
        """Every stored tile of one level, in index order."""

    def latest_checkpoint(self, log: str) -> str | None: ...

    def checkpoints(self, log: str) -> Iterator[tuple[int, str]]:
        """Every stored (size, signed checkpoint) of ``log``, by size."""

    def checkpoint_at(self, log: str, size: int) -> str | None:
        """The signed checkpoint of ``log`` at exactly ``size``, if one was stored."""

    def select(self, logs: Sequence[str] | None, filters: Filters, after: Cursor | None,
               limit: int) -> list[tuple[str, int, str, bytes]]:
        """Entries matching ``filters``, newest first by (time, log, index): (log, index, time, bytes)."""

    def vault_get(self, commitments: Sequence[str]) -> dict:
        """Vault rows still held for these commitments: commitment -> VaultRow."""

    def vault_find(self, token: str, log: str | None = None) -> list[str]:
        """Commitments whose search token is ``token``."""

    def vault_erase(self, subject: str, log: str | None = None) -> int:
        """Delete every vault row of a data subject; return how many went."""

    def close(self) -> None: ...


def rightmost_tiles(store, log: str, size: int) -> dict[int, bytes]:
    """The rightmost tile at each level of a tree of ``size`` (what the writer restores from)."""
    edges: dict[int, bytes] = {}
    level, count = 0, size
    while count > 0:
        index = (count - 1) // 256
        data = store.read_tile(log, level, index)
        if data is None:
            raise StoreError(f"log {log!r}: tile {level}/{index} is missing; run `trailseal verify`")
        edges[level] = data
        level, count = level + 1, count // 256
    return edges

"""The vault: the mutable table that holds erasable values beside their sealed commitments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import msgspec


class VaultRow(msgspec.Struct, frozen=True):
    """One erasable value: whose it is, where it was, and the salt that opens its commitment."""

    subject: str  # the data subject: the plaintext actor.id of the event
    log: str
    commitment: str  # `pd:<hex>`, as sealed in the event
    salt: bytes
    value: str
    field: str  # dotted path of the field the value came from
    token: str  # search_token(value, log): lets search find the row without plaintext scans


@runtime_checkable
class Vault(Protocol):
    """Storage for vault rows; the stores (SQLite, PostgreSQL) implement it."""

    def put(self, rows: Iterable[VaultRow]) -> None:
        """Keep rows (idempotent per commitment)."""

    def get(self, commitments: Iterable[str]) -> dict[str, VaultRow]:
        """The rows still held for these commitments, by commitment; erased ones are absent."""

    def erase(self, subject: str, log: str | None = None) -> int:
        """Delete every row of a subject (in one log, or all); return how many were deleted."""

    def find(self, token: str) -> list[str]:
        """Commitments of the rows whose search token is token."""

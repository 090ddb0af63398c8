"""FakeVault: an in-memory test double of the Vault protocol (the real ones live in the stores)."""

from __future__ import annotations

from collections.abc import Iterable

from trailseal.privacy.vault import VaultRow


class FakeVault:
    """Rows in a dict by commitment; only for tests."""

    def __init__(self) -> None:
        self.rows: dict[str, VaultRow] = {}

    def put(self, rows: Iterable[VaultRow]) -> None:
        for row in rows:
            self.rows.setdefault(row.commitment, row)

    def get(self, commitments: Iterable[str]) -> dict[str, VaultRow]:
        return {c: self.rows[c] for c in commitments if c in self.rows}

    def erase(self, subject: str, log: str | None = None) -> int:
        doomed = [c for c, r in self.rows.items() if r.subject == subject and (log is None or r.log == log)]
        for commitment in doomed:
            del self.rows[commitment]
        return len(doomed)

    def find(self, token: str) -> list[str]:
        return [c for c, r in self.rows.items() if r.token == token]

"""API tokens and roles: 256-bit random tokens, stored only as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

ROLES = ("ingest", "reader", "auditor", "admin")
PERMISSIONS = {
    "ingest": {"ingest"},
    "reader": {"read"},
    "auditor": {"read", "audit"},
    "admin": {"ingest", "read", "audit", "admin"},
}
TOKEN_PREFIX = "tsk_"
TOKENS_FILE = "tokens.db"


class Token(msgspec.Struct, frozen=True):
    """A token's record: never the token itself, only its hash."""

    id: str
    name: str
    role: str
    logs: tuple[str, ...]  # empty = every log
    created: str
    revoked: bool = False

    def allows(self, permission: str) -> bool:
        return not self.revoked and permission in PERMISSIONS[self.role]

    def allows_log(self, log: str) -> bool:
        return not self.logs or log in self.logs


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """Tokens of one data dir, in a small SQLite file beside the store (tokens.db, mode 0600)."""

    def __init__(self, directory: Path):
        self.path = directory / TOKENS_FILE
        self._lock = threading.Lock()
        new = not self.path.exists()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if new:
            self.path.chmod(0o600)
        self._db.execute("CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
                         " name TEXT NOT NULL, role TEXT NOT NULL, logs TEXT NOT NULL, created TEXT NOT NULL,"
                         " revoked INTEGER NOT NULL DEFAULT 0)")
        self._cache: dict[str, Token | None] = {}

    def create(self, role: str, name: str = "", logs: tuple[str, ...] = ()) -> tuple[str, Token]:
        """Make a token; the secret is returned once and never stored."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = Token(secrets.token_hex(6), name or role, role, tuple(logs),
                      time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        with self._lock:
            self._db.execute("INSERT INTO tokens VALUES (?,?,?,?,?,?,0)",
                             (token_hash(secret), token.id, token.name, token.role, ",".join(token.logs),
                              token.created))
        return secret, token

    def lookup(self, secret: str) -> Token | None:
        """The token for a presented secret, or None; the hash is compared in constant time."""
        digest = token_hash(secret)
        if digest in self._cache:
            return self._cache[digest]
        with self._lock:
            row = self._db.execute("SELECT hash, id, name, role, logs, created, revoked FROM tokens WHERE hash=?",
                                   (digest,)).fetchone()
        token = None
        if row is not None and hmac.compare_digest(row[0], digest):
            token = Token(row[1], row[2], row[3], tuple(filter(None, row[4].split(","))), row[5], bool(row[6]))
        self._cache[digest] = token
        return token

    def list(self) -> list[Token]:
        with self._lock:
            rows = self._db.execute("SELECT id, name, role, logs, created, revoked FROM tokens ORDER BY created")
            return [Token(r[0], r[1], r[2], tuple(filter(None, r[3].split(","))), r[4], bool(r[5]))
                    for r in rows]

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            changed = self._db.execute("UPDATE tokens SET revoked=1 WHERE id=?", (token_id,)).rowcount
        self._cache.clear()
        return bool(changed)

    def close(self) -> None:
        self._db.close()


@dataclass
class RateLimiter:
    """A token bucket per API token: ``rate`` requests/s with a burst of ``burst``."""

    rate: float
    burst: float = 0.0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str, now: float | None = None) -> float:
        """0 if the request may go ahead, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        capacity = self.burst or max(1.0, self.rate)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0

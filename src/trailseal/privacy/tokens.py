"""Commitments, pseudonyms and search tokens: the only forms of personal data that get sealed."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import deque

from trailseal.privacy.keyring import Keys

COMMITMENT_PREFIX = "pd:"
PSEUDONYM_PREFIX = "ps:"
SALT_BYTES = 32
PSEUDONYM_HEX = 32  # 128 bits of the HMAC: collision-free at any realistic volume, half the bytes
COMMITMENT_RE = re.compile(r"pd:[0-9a-f]{64}")
SALTS_PER_READ = 64  # salts drawn from one os.urandom call

_salts: deque[bytes] = deque()


def _forget_salts() -> None:
    _salts.clear()


# A forked child must never hand out the salts its parent may also use (equal salts would link values).
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_forget_salts)


def fresh_salt() -> bytes:
    """32 bytes from os.urandom, read SALTS_PER_READ salts at a time (thread-safe: deque pops are atomic)."""
    while True:
        try:
            return _salts.popleft()
        except IndexError:
            block = os.urandom(SALT_BYTES * SALTS_PER_READ)
            _salts.extend([block[i : i + SALT_BYTES] for i in range(0, len(block), SALT_BYTES)])


def encode(value: str) -> bytes:
    """The bytes every digest of a value covers: UTF-8, lone surrogates kept."""
    return value.encode("utf-8", "surrogatepass")


def commitment_of(salt: bytes, value: str) -> str:
    """`pd:` + hex SHA-256(salt ‖ value as UTF-8)."""
    return COMMITMENT_PREFIX + hashlib.sha256(salt + encode(value)).hexdigest()


def new_commitment(value: str) -> tuple[str, bytes]:
    """A commitment to value under a fresh random 32-byte salt, and that salt."""
    salt = fresh_salt()
    return commitment_of(salt, value), salt


def verify_commitment(commitment: str, salt: bytes, value: str) -> bool:
    """True if commitment binds exactly this salt and value (constant-time comparison)."""
    return hmac.compare_digest(commitment.encode(), commitment_of(salt, value).encode())


def search_token(value: str, log: str, keys: Keys) -> str:
    """HMAC-SHA256 of value under the log's key (hex): finds erasable and pseudonymized values."""
    return keys.mac(log).hexdigest(encode(value))


def pseudonym(value: str, log: str, keys: Keys) -> str:
    """`ps:` + the first 128 bits of the search token: stable, joinable, irreversible without the key."""
    return PSEUDONYM_PREFIX + search_token(value, log, keys)[:PSEUDONYM_HEX]

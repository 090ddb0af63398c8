"""Commitments, pseudonyms and search tokens: the only forms of personal data that get sealed."""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from trailseal.privacy.keyring import Keys

COMMITMENT_PREFIX = "pd:"
PSEUDONYM_PREFIX = "ps:"
SALT_BYTES = 32
PSEUDONYM_HEX = 32  # 128 bits of the HMAC: collision-free at any realistic volume, half the bytes
COMMITMENT_RE = re.compile(r"pd:[0-9a-f]{64}")


def commitment_of(salt: bytes, value: str) -> str:
    """`pd:` + hex SHA-256(salt ‖ value as UTF-8)."""
    return COMMITMENT_PREFIX + hashlib.sha256(salt + value.encode("utf-8", "surrogatepass")).hexdigest()


def new_commitment(value: str) -> tuple[str, bytes]:
    """A commitment to value under a fresh random 32-byte salt, and that salt."""
    salt = os.urandom(SALT_BYTES)
    return commitment_of(salt, value), salt


def verify_commitment(commitment: str, salt: bytes, value: str) -> bool:
    """True if commitment binds exactly this salt and value (constant-time comparison)."""
    return hmac.compare_digest(commitment.encode(), commitment_of(salt, value).encode())


def search_token(value: str, log: str, keys: Keys) -> str:
    """HMAC-SHA256 of value under the log's key (hex): finds erasable and pseudonymized values."""
    return hmac.new(keys.for_log(log), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def pseudonym(value: str, log: str, keys: Keys) -> str:
    """`ps:` + the first 128 bits of the search token: stable, joinable, irreversible without the key."""
    return PSEUDONYM_PREFIX + search_token(value, log, keys)[:PSEUDONYM_HEX]

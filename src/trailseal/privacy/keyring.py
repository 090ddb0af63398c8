"""Per-log HMAC keys derived from one master secret (HKDF-SHA256)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_MASTER_BYTES = 32
HKDF_SALT = b"trailseal/privacy/v1"


class Keys:
    """The master secret and the per-log keys derived from it; derived keys are cached."""

    def __init__(self, master: bytes):
        if len(master) < MIN_MASTER_BYTES:
            raise ValueError(f"the privacy master secret must be at least {MIN_MASTER_BYTES} bytes")
        self._master = master
        self._per_log: dict[str, bytes] = {}

    @classmethod
    def generate(cls) -> Keys:
        """A fresh random master secret (keep it: pseudonyms and search tokens depend on it)."""
        return cls(os.urandom(MIN_MASTER_BYTES))

    def for_log(self, log: str) -> bytes:
        """The 32-byte HMAC key of one log."""
        key = self._per_log.get(log)
        if key is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=b"log:" + log.encode())
            key = self._per_log[log] = hkdf.derive(self._master)
        return key

    def __repr__(self) -> str:
        return f"Keys(<{len(self._master)}-byte master>, {len(self._per_log)} logs derived)"

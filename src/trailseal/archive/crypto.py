"""Envelope encryption for archive segments: AES-256-GCM under a random data key per segment, the
data key wrapped (AES-KW, RFC 3394) by a master key that a KeyProvider holds.

Rotating the master key rewraps data keys; the ciphertext is never touched. A KeyProvider is the
only thing that sees master keys: files and environment variables now, a KMS later.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

KEY_BYTES = 32
NONCE_BYTES = 12
WRAP_ALG = "A256KW"
DEFAULT_ENV = "TRAILSEAL_ARCHIVE_KEYS"
_KEK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class CryptoError(RuntimeError):
    """A key is missing or wrong, or ciphertext does not authenticate."""


class KeyProvider(Protocol):
    """Holds master keys (KEKs) by id; wraps and unwraps data keys. A KMS fits the same shape."""

    def current(self) -> str:
        """Id of the master key that wraps new data keys."""

    def wrap(self, kek_id: str, data_key: bytes) -> bytes:
        """Wrap a data key under master key kek_id."""

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """Unwrap a data key; raise CryptoError if kek_id is unknown or the wrap does not check."""


class StaticKeys:
    """Master keys held in memory: {id: 32-byte key}, the first (or ``current``) wrapping new keys."""

    def __init__(self, keys: Mapping[str, bytes], current: str | None = None):
        """Check every key and remember which one is current."""
        if not keys:
            raise CryptoError("no archive master key configured")
        for kek_id, key in keys.items():
            _check_kek(kek_id, key)
        self._keys = dict(keys)
        self._current = current or next(iter(self._keys))
        if self._current not in self._keys:
            raise CryptoError(f"current master key {self._current!r} is not among the keys")

    def current(self) -> str:
        """Id of the master key that wraps new data keys."""
        return self._current

    def ids(self) -> list[str]:
        """Every master key id held."""
        return list(self._keys)

    def wrap(self, kek_id: str, data_key: bytes) -> bytes:
        """AES-KW wrap of data_key under kek_id."""
        return aes_key_wrap(self._kek(kek_id), data_key)

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """AES-KW unwrap; a wrong key or altered wrap raises CryptoError."""
        try:
            return aes_key_unwrap(self._kek(kek_id), wrapped)
        except InvalidUnwrap:
            raise CryptoError(f"data key does not unwrap under master key {kek_id!r}") from None

    def _kek(self, kek_id: str) -> bytes:
        """The master key kek_id, or CryptoError."""
        try:
            return self._keys[kek_id]
        except KeyError:
            raise CryptoError(f"master key {kek_id!r} is not available (have {sorted(self._keys)})") from None


def _check_kek(kek_id: str, key: bytes) -> None:
    """Raise CryptoError unless the id is a plain token and the key is 32 bytes."""
    if not _KEK_ID.fullmatch(kek_id):
        raise CryptoError(f"master key id {kek_id!r}: use letters, digits, '.', '_' or '-'")
    if len(key) != KEY_BYTES:
        raise CryptoError(f"master key {kek_id!r} has {len(key)} bytes, want {KEY_BYTES}")


def parse_keys(text: str) -> dict[str, bytes]:
    """Parse `<id> <base64 key>` (or `<id>:<base64>`) entries, one per line or comma; first is current."""
    keys: dict[str, bytes] = {}
    for item in re.split(r"[\n,]", text):
        item = item.split("#", 1)[0].strip()
        if not item:
            continue
        kek_id, key64 = _split_item(item)
        keys[kek_id] = _b64key(kek_id, key64)
    return keys


def _split_item(item: str) -> tuple[str, str]:
    """Split one `<id> <key>` or `<id>:<key>` entry."""
    match = re.fullmatch(r"([^\s:]+)(?:\s+|\s*:\s*)(\S+)", item)
    if not match:
        raise CryptoError("malformed master key entry: want '<id> <base64 key>'")
    return match[1], match[2]


def _b64key(kek_id: str, key64: str) -> bytes:
    """Decode a base64 master key."""
    try:
        key = base64.b64decode(key64, validate=True)
    except binascii.Error:
        raise CryptoError(f"master key {kek_id!r} is not valid base64") from None
    _check_kek(kek_id, key)
    return key


def format_key(kek_id: str, key: bytes) -> str:
    """One key-file line."""
    _check_kek(kek_id, key)
    return f"{kek_id} {base64.b64encode(key).decode()}"


class FileKeys(StaticKeys):
    """Master keys from a 0600 file of `<id> <base64 key>` lines; the first line is current."""

    def __init__(self, path: str | os.PathLike):
        """Read the key file, refusing one that others can read."""
        self.path = Path(path)
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise CryptoError(f"{self.path} is readable by others (mode {mode:o}); run `chmod 600 {self.path}`")
        super().__init__(parse_keys(self.path.read_text()))


class EnvKeys(StaticKeys):
    """Master keys from an environment variable: `id:base64,id:base64`, the first current."""

    def __init__(self, var: str = DEFAULT_ENV, environ: Mapping[str, str] | None = None):
        """Read the keys from var."""
        value = (os.environ if environ is None else environ).get(var)
        if not value:
            raise CryptoError(f"${var} is not set: it should hold '<id>:<base64 32-byte key>'")
        super().__init__(parse_keys(value))


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return AESGCM.generate_key(bit_length=256)


def add_key_file(path: str | os.PathLike, kek_id: str) -> str:
    """Create or extend a key file with a new current master key; returns its id."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    if kek_id in parse_keys(old):
        raise CryptoError(f"{path} already has a master key {kek_id!r}")
    text = format_key(kek_id, new_key()) + "\n" + old
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return kek_id


class KeyBlock(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A wrapped data key and the master key that wraps it."""

    kek: str
    alg: str
    key: bytes


@dataclass(frozen=True)
class Sealed:
    """Ciphertext (nonce || AES-256-GCM output) and the key block that opens it."""

    key_block: KeyBlock
    ciphertext: bytes


def encrypt(plaintext: bytes, aad: bytes, keys: KeyProvider) -> Sealed:
    """Encrypt under a fresh data key wrapped by the current master key; aad is authenticated."""
    data_key = new_key()
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)
    kek_id = keys.current()
    return Sealed(KeyBlock(kek_id, WRAP_ALG, keys.wrap(kek_id, data_key)), ciphertext)


def decrypt(sealed: Sealed, aad: bytes, keys: KeyProvider) -> bytes:
    """Unwrap the data key and decrypt; raise CryptoError if anything was altered."""
    data_key = unwrap(sealed.key_block, keys)
    nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
    try:
        return AESGCM(data_key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise CryptoError("ciphertext or its authenticated metadata was altered") from None


def unwrap(block: KeyBlock, keys: KeyProvider) -> bytes:
    """The data key inside a key block."""
    if block.alg != WRAP_ALG:
        raise CryptoError(f"unknown key wrap algorithm {block.alg!r}")
    return keys.unwrap(block.kek, block.key)


def rewrap(block: KeyBlock, keys: KeyProvider, kek_id: str | None = None) -> KeyBlock:
    """The same data key wrapped under kek_id (default: the current master key)."""
    target = kek_id or keys.current()
    if block.kek == target:
        return block
    return KeyBlock(target, WRAP_ALG, keys.wrap(target, unwrap(block, keys)))

"""C2SP signed notes with Ed25519 keys, following golang.org/x/mod/sumdb/note."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from trailseal.ledger.errors import NoteError

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
SIG_PREFIX = "\u2014 "

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")


def b64decode(text: str) -> bytes:
    """Decode standard padded base64, rejecting any other character."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise NoteError(f"invalid base64 {text[:20]!r}") from e


def b64encode(data: bytes) -> str:
    """Encode bytes as standard padded base64."""
    return base64.b64encode(data).decode("ascii")


def is_valid_name(name: str) -> bool:
    """Report whether name is a valid key name: non-empty, no spaces, no plus, no control characters."""
    return bool(name) and "+" not in name and not any(c.isspace() or c < " " for c in name)


def key_id(name: str, pubkey: bytes) -> bytes:
    """Return the 4-byte id of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || pubkey)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + pubkey).digest()[:4]


def _check_name(name: str) -> None:
    """Raise NoteError unless name is a valid key name."""
    if not is_valid_name(name):
        raise NoteError(f"invalid key name {name!r}")


def _parse_key_parts(name: str, id_hex: str, key64: str) -> tuple[bytes, bytes]:
    """Return (key id, Ed25519 key material) from the parts of a vkey or skey."""
    _check_name(name)
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise NoteError(f"key {name}: malformed key id {id_hex!r}")
    key = b64decode(key64)
    if len(key) != 33 or key[0] != ALG_ED25519:
        raise NoteError(f"key {name}: not an Ed25519 key (type 0x01 and 32 bytes)")
    return bytes.fromhex(id_hex), key[1:]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 public key with its name and key id."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse a verifier key: <name>+<hex key id>+<base64(0x01 || public key)>."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteError("malformed verifier key: want <name>+<key id>+<key>")
        kid, pub = _parse_key_parts(*parts)
        if kid != key_id(parts[0], pub):
            raise NoteError(f"verifier key {parts[0]}: key id does not match the key")
        return cls(parts[0], kid, pub)

    @property
    def vkey(self) -> str:
        """Return the verifier key text."""
        return f"{self.name}+{self.key_id.hex()}+{b64encode(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Report whether signature is this key's Ed25519 signature of message."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """An Ed25519 private key with its name and key id."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Wrap a private key under a key name."""
        _check_name(name)
        self.name = name
        self._private_key = private_key
        self.public_key = private_key.public_key().public_bytes_raw()
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse a signer key: PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("malformed signer key: want PRIVATE+KEY+<name>+<key id>+<key>")
        kid, seed = _parse_key_parts(*parts[2:])
        signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(seed))
        if kid != signer.key_id:
            raise NoteError(f"signer key {parts[2]}: key id does not match the key")
        return signer

    @property
    def skey(self) -> str:
        """Return the signer key text (secret)."""
        seed = self._private_key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{b64encode(bytes([ALG_ED25519]) + seed)}"

    def verifier(self) -> Verifier:
        """Return the matching verifier."""
        return Verifier(self.name, self.key_id, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """Return the Ed25519 signature of message."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        """Show the key name and id, never the key."""
        return f"Signer({self.name}+{self.key_id.hex()})"


def generate(name: str) -> tuple[str, str]:
    """Generate a new Ed25519 key; return (skey, vkey) texts."""
    signer = Signer(name, Ed25519PrivateKey.generate())
    return signer.skey, signer.verifier().vkey


@dataclass(frozen=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """Return the signature line, with its final newline."""
        return f"{SIG_PREFIX}{self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, every signature, and the verifiers whose signature verified."""

    text: str
    sigs: tuple[Signature, ...]
    verified_by: tuple[Verifier, ...]


def _check_text(text: str) -> None:
    """Raise NoteError unless text is valid note text: UTF-8, no control characters but newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NoteError("note is not valid UTF-8") from e
    if _CONTROL.search(text):
        raise NoteError("note contains a control character")


def sign(text: str, signers: Signer | Iterable[Signer]) -> str:
    """Sign text (ending in a newline) with every signer; return the signed note."""
    signers = [signers] if isinstance(signers, Signer) else list(signers)
    _check_text(text)
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if not signers:
        raise NoteError("a note needs at least one signer")
    message = text.encode()
    lines = [Signature(s.name, s.key_id, s.sign(message)).line() for s in signers]
    return text + "\n" + "".join(lines)


def _parse_signature(line: str) -> Signature:
    """Parse one signature line, without its newline."""
    if not line.startswith(SIG_PREFIX):
        raise NoteError(f"malformed signature line {line[:40]!r}")
    name, _, sig64 = line[len(SIG_PREFIX) :].partition(" ")
    raw = b64decode(sig64)
    if not is_valid_name(name) or len(raw) < 5:
        raise NoteError(f"malformed signature line {line[:40]!r}")
    return Signature(name, raw[:4], raw[4:])


def _known_keys(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    """Index verifiers by (name, key id), rejecting two different keys with the same name and id."""
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, v.key_id), v)
        if other.public_key != v.public_key:
            raise NoteError(f"ambiguous verifier keys for {v.name}+{v.key_id.hex()}")
    return known


def open_note(msg: str | bytes, verifiers: Verifier | Iterable[Verifier]) -> Note:
    """Parse a signed note and verify it: at least one known key must have signed, and none badly."""
    if isinstance(msg, bytes):
        try:
            msg = msg.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NoteError("note is not valid UTF-8") from e
    _check_text(msg)
    known = _known_keys([verifiers] if isinstance(verifiers, Verifier) else verifiers)
    split = msg.rfind("\n\n")
    if split < 0 or not msg.endswith("\n"):
        raise NoteError("malformed note: no signature block after a blank line")
    text, lines = msg[: split + 1], msg[split + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    sigs: dict[Signature, None] = {}
    verified: dict[tuple[str, bytes], Verifier] = {}
    for sig in map(_parse_signature, lines):
        key = (sig.name, sig.key_id)
        if key in known and key not in verified:
            if not known[key].verify(text.encode(), sig.signature):
                raise NoteError(f"invalid signature for key {sig.name}+{sig.key_id.hex()}")
            verified[key] = known[key]
            sigs[sig] = None
        elif key not in known:
            sigs[sig] = None
    if not verified:
        raise NoteError("note has no signature from a known key")
    return Note(text, tuple(sigs), tuple(verified.values()))

"""Per-log keys and checkpoint signing key rotation.

One Ed25519 key signs every log, under the key name `<origin>/<log>`: C2SP checkpoints are signed
by a key whose name is the checkpoint's origin, so each log gets its own key name (and so its own
key id and vkey) while the data dir keeps one secret key.

Rotation (`rotate_signing_key`) replaces that key. The retired key's vkey stays in the data dir's
`signing.history` with the tree size every log had when it retired: it was valid for checkpoints up
to those sizes, its successor for every later one, so old checkpoints keep verifying and a
checkpoint signed by a key outside its window does not. The rotation itself is a sealed event in
the `trailseal` log carrying a statement signed by both keys (a C2SP signed note).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from trailseal.ledger import Signer, Verifier, key_id
from trailseal.ledger.note import open_note, sign

HISTORY_FILE = "signing.history"
STATEMENT_TITLE = "trailseal signing key rotation"


class KeyRotationError(RuntimeError):
    """The signing key cannot be rotated or its history is unreadable; the message says what to do."""


def log_origin(origin: str, log: str) -> str:
    """The checkpoint origin (and key name) of ``log``."""
    return f"{origin}/{log}"


def log_signer(base: Signer, log: str) -> Signer:
    """The base key under the log's name."""
    return Signer(log_origin(base.name, log), base._private_key)  # noqa: SLF001 - same key, new name


def log_verifier(base: Verifier, log: str) -> Verifier:
    """The verifier of ``log_signer(base, log)``."""
    name = log_origin(base.name, log)
    return Verifier(name, key_id(name, base.public_key), base.public_key)


# -- history of retired keys ---------------------------------------------------------------------
@dataclass(frozen=True)
class RetiredKey:
    """A signing key that was replaced: valid for checkpoints up to `sizes[log]` of each log."""

    vkey: str  # the base vkey (name = origin)
    retired: str  # RFC 3339
    successor: str  # the base vkey that replaced it
    sizes: dict[str, int] = field(default_factory=dict)  # tree size of each log when it retired

    def verifier(self, log: str) -> Verifier:
        """This key under the log's name."""
        return log_verifier(Verifier.from_vkey(self.vkey), log)


@dataclass
class KeyHistory:
    """Retired signing keys, oldest first."""

    retired: list[RetiredKey] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path, current: str | None = None) -> KeyHistory:
        """The data dir's history; a key equal to ``current`` (an interrupted rotation) is left out."""
        path = Path(directory) / HISTORY_FILE
        if not path.exists():
            return cls()
        try:
            rows = json.loads(path.read_text("utf-8"))
            retired = [RetiredKey(**row) for row in rows]
        except (ValueError, TypeError) as exc:
            raise KeyRotationError(f"{path} is not a valid key history: {exc}") from None
        return cls([key for key in retired if key.vkey != current])

    def save(self, directory: Path) -> None:
        """Write the history atomically."""
        path = Path(directory) / HISTORY_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps([asdict(key) for key in self.retired], indent=1) + "\n")
        os.replace(tmp, path)

    def verifiers(self, log: str, current: Verifier) -> list[Verifier]:
        """Every key that may have signed log's checkpoints: the current one first, then retired ones."""
        return [current, *(key.verifier(log) for key in reversed(self.retired))]

    def keys_at(self, log: str, current: Verifier) -> Callable[[int], list[Verifier]]:
        """size -> the one key that was valid when log's checkpoint of that size was signed."""
        windows = [(key.sizes.get(log, 0), key.verifier(log)) for key in self.retired]

        def valid(size: int) -> list[Verifier]:
            for until, verifier in windows:
                if size <= until:
                    return [verifier]
            return [current]
        return valid


# -- rotation ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rotation:
    """What a rotation did: the keys, the statement both signed, where it was sealed."""

    old_vkey: str
    new_vkey: str
    statement: str
    index: int  # of the sealed rotation event in the `trailseal` log
    sizes: dict[str, int]


def rotation_statement(old: Signer, new: Signer, at: str) -> str:
    """A signed note naming both keys, signed by both: each vouches for the other."""
    text = f"{STATEMENT_TITLE}\nold {old.verifier().vkey}\nnew {new.verifier().vkey}\ntime {at}\n"
    return sign(text, [old, new])


def check_statement(statement: str) -> tuple[Verifier, Verifier]:
    """(old, new) of a rotation statement that both keys it names signed; KeyRotationError otherwise."""
    lines = statement.split("\n")
    if len(lines) < 4 or lines[0] != STATEMENT_TITLE or not lines[1].startswith("old ") \
            or not lines[2].startswith("new "):
        raise KeyRotationError("not a trailseal key rotation statement")
    old, new = Verifier.from_vkey(lines[1][4:]), Verifier.from_vkey(lines[2][4:])
    for verifier in (old, new):
        note = open_note(statement, [verifier])
        if verifier not in note.verified_by:
            raise KeyRotationError(f"the rotation statement is not signed by {verifier.vkey}")
    return old, new


def rotate_signing_key(trail, *, actor: str = "cli") -> Rotation:
    """Replace the data dir's checkpoint signing key; needs the writer lock (no server running).

    Seals a `keys.rotate` event (under the old key) carrying the statement both keys signed, records
    the old key with every log's size in `signing.history`, then installs the new key: from the next
    commit on, checkpoints are signed by it.
    """
    from trailseal.datadir import load_signer

    sealer = trail.sealer  # takes the writer lock now, or fails with who holds it
    old = load_signer(trail.directory, trail.config)
    new = Signer(old.name, Ed25519PrivateKey.generate())
    at = trail.clock()
    statement = rotation_statement(old, new, at)
    (receipt,) = trail.append([_rotation_event(statement, at, actor)])
    sizes = {info.name: info.size for info in trail.store.logs()}
    history = KeyHistory.load(trail.directory)
    history.retired.append(RetiredKey(old.verifier().vkey, at, new.verifier().vkey, sizes))
    history.save(trail.directory)
    _install(trail, new)
    sealer.signer = new
    sealer._signers.clear()  # noqa: SLF001 - per-log signers derived from the old key
    return Rotation(old.verifier().vkey, new.verifier().vkey, statement, receipt.index, sizes)


def _rotation_event(statement: str, at: str, actor: str) -> dict:
    """The sealed record of a rotation."""
    return {"log": "trailseal", "time": at, "category": "config", "action": "keys.rotate", "outcome": "success",
            "actor": {"id": actor, "type": "service"},
            "source": {"component": "keys", "kind": "trailseal", "format": "trailseal"},
            "target": {"type": "signing_key", "id": statement.split("\n")[2][4:]},
            "attributes": {"statement": statement}}


def _install(trail, new: Signer) -> None:
    """Write the new secret key (0600) and vkey over the old ones, atomically; update the open trail."""
    key_path = trail.directory / trail.config.key_file
    tmp = key_path.with_name(key_path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new.skey + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, key_path)
    vkey = new.verifier().vkey
    from trailseal import config as cfg

    vkey_path = trail.directory / cfg.VKEY_FILE
    vkey_path.with_name(vkey_path.name + ".new").write_text(vkey + "\n")
    os.replace(vkey_path.with_name(vkey_path.name + ".new"), vkey_path)
    trail.base_vkey, trail.base_verifier = vkey, Verifier.from_vkey(vkey)

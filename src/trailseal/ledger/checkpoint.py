"""C2SP tlog-checkpoint: the signed tree head of a log, as the text of a signed note."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from trailseal.ledger.errors import CheckpointError, NoteError
from trailseal.ledger.merkle import HASH_SIZE
from trailseal.ledger.note import Verifier, b64decode, b64encode, open_note

MAX_SIZE = (1 << 63) - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x1f]")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and root hash, and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Reject values that cannot be written as a checkpoint."""
        for line in (self.origin, *self.extensions):
            if not line or _CONTROL.search(line):
                raise CheckpointError(f"checkpoint lines must be non-empty single lines, got {line!r}")
        if not 0 <= self.size <= MAX_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root has {len(self.root)} bytes, want {HASH_SIZE}")

    def body(self) -> str:
        """Return the note text: origin, size, base64 root and extensions, one per line."""
        return "".join(
            line + "\n" for line in (self.origin, str(self.size), b64encode(self.root), *self.extensions)
        )


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint note text strictly."""
    if not body.endswith("\n"):
        raise CheckpointError("checkpoint must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs origin, size and root lines")
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size) or len(size) > 19:
        raise CheckpointError(f"malformed checkpoint size {size!r}")
    try:
        root_hash = b64decode(root)
    except NoteError as e:
        raise CheckpointError(f"malformed checkpoint root {root!r}") from e
    if len(root_hash) != HASH_SIZE or b64encode(root_hash) != root:
        raise CheckpointError(f"malformed checkpoint root {root!r}")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def open_checkpoint(
    signed: str | bytes, verifiers: Verifier | Iterable[Verifier], origin: str | None = None
) -> Checkpoint:
    """Open a signed checkpoint: a known key named like its origin must have signed it.

    If origin is given, the checkpoint must also be for that origin.
    """
    note = open_note(signed, verifiers)
    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for origin {checkpoint.origin!r}, want {origin!r}")
    if not any(v.name == checkpoint.origin for v in note.verified_by):
        raise CheckpointError(f"checkpoint has no verified signature by a key named {checkpoint.origin!r}")
    return checkpoint

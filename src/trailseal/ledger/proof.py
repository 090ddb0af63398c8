"""C2SP tlog-proof: an offline-verifiable proof that an entry is in a log, with its signed checkpoint."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trailseal.ledger.checkpoint import Checkpoint, open_checkpoint
from trailseal.ledger.errors import NoteError, ProofError
from trailseal.ledger.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from trailseal.ledger.note import Verifier, b64decode, b64encode

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,18})")


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof: entry index, inclusion proof, signed checkpoint and unauthenticated extra data."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None


def format_proof(
    index: int, hashes: Sequence[bytes], signed_checkpoint: str, extra: bytes | None = None
) -> str:
    """Return the text of a tlog-proof."""
    if index < 0:
        raise ProofError(f"negative entry index {index}")
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError(f"every proof hash must be {HASH_SIZE} bytes")
    if not signed_checkpoint.endswith("\n") or signed_checkpoint.startswith("\n"):
        raise ProofError("signed checkpoint must be a whole signed note")
    lines = [HEADER]
    if extra is not None:
        lines.append(f"extra {b64encode(extra)}")
    lines.append(f"index {index}")
    lines += [b64encode(h) for h in hashes]
    return "\n".join(lines) + "\n\n" + signed_checkpoint


def _decode(text: str, what: str) -> bytes:
    """Decode base64 or raise ProofError naming what it was."""
    try:
        return b64decode(text)
    except NoteError as e:
        raise ProofError(f"malformed {what} {text[:20]!r}") from e


def parse_proof(text: str, decoded: dict[str, bytes] | None = None) -> TlogProof:
    """Parse the text of a tlog-proof strictly; the checkpoint is not opened here. ``decoded`` (line ->
    hash), when given, keeps the proof-hash lines decoded so far, for parsing many proofs of one tree."""
    head, sep, checkpoint_note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not checkpoint_note or lines[0] != HEADER:
        raise ProofError(f"not a tlog-proof: want a {HEADER!r} line, proof lines, a blank line, a checkpoint")
    lines.pop(0)
    extra = None
    if lines and lines[0].startswith("extra "):
        extra = _decode(lines.pop(0)[len("extra ") :], "extra data")
    match = _INDEX.fullmatch(lines.pop(0)) if lines else None
    if not match:
        raise ProofError("tlog-proof needs an 'index N' line")
    return TlogProof(int(match[1]), _hashes(lines, decoded), checkpoint_note, extra)


def _hashes(lines: list[str], decoded: dict[str, bytes] | None) -> tuple[bytes, ...]:
    """The proof hashes the lines hold; ``decoded`` (lines already checked -> their hashes) is used and
    kept up to date when given."""
    if decoded is None:
        return _checked(tuple(_decode(line, "proof hash") for line in lines))
    found = tuple(map(decoded.get, lines))
    if None not in found:
        return found
    for line, known in zip(lines, found, strict=True):
        if known is None:
            decoded[line] = _checked((_decode(line, "proof hash"),))[0]
    return tuple(map(decoded.__getitem__, lines))


def _checked(hashes: tuple[bytes, ...]) -> tuple[bytes, ...]:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError(f"every proof hash must be {HASH_SIZE} bytes")
    return hashes


def verify_proof(
    proof_text: str, entry: bytes, verifiers: Verifier | Iterable[Verifier], origin: str | None = None
) -> Checkpoint:
    """Verify that entry is in the log: signed checkpoint, then inclusion; return the checkpoint.

    verifiers are the log's keys; the checkpoint must carry a verified signature by the key named
    like its origin (and be for origin, if given). Witness cosignature policy is the caller's.
    """
    proof = parse_proof(proof_text)
    checkpoint = open_checkpoint(proof.checkpoint_note, verifiers, origin)
    verify_inclusion(leaf_hash(entry), proof.index, checkpoint.size, proof.hashes, checkpoint.root)
    return checkpoint

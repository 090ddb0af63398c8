"""Per-log keys: one Ed25519 key signs every log, under the key name `<origin>/<log>`.

C2SP checkpoints are signed by a key whose name is the checkpoint's origin, so each log gets its
own key name (and so its own key id and vkey) while the data dir keeps one secret key.
"""

from __future__ import annotations

from trailseal.ledger import Signer, Verifier, key_id


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

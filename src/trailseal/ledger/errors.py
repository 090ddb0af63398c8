"""Errors raised by the ledger: every one is a ValueError about untrusted input."""


class LedgerError(ValueError):
    """A ledger object (proof, note, checkpoint, tile) is malformed or does not verify."""


class ProofError(LedgerError):
    """A Merkle proof or a tlog-proof does not verify or is malformed."""


class NoteError(LedgerError):
    """A signed note or a key is malformed, or its signatures do not verify."""


class CheckpointError(LedgerError):
    """A checkpoint body is malformed or its origin is not the expected one."""


class TileError(LedgerError):
    """A tile path, tile or entry bundle is malformed."""

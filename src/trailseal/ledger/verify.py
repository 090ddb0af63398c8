"""Full verification of a stored log: re-hash every entry, rebuild every tile and root, check every
signed checkpoint, and name the first bad index. Streams; memory does not grow with the log."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass

from trailseal.ledger.checkpoint import Checkpoint, open_checkpoint
from trailseal.ledger.errors import LedgerError
from trailseal.ledger.merkle import TreeState
from trailseal.ledger.note import Verifier
from trailseal.store.base import StoreError

TILE = 256
HASH = 32
PARALLEL_MIN_TILES = 256  # below 65,536 entries, starting worker processes costs more than it saves


@dataclass
class VerifyReport:
    """The outcome for one log. ``first_bad_index`` is None when the fault is not an entry's."""

    log: str
    entries: int = 0
    checkpoints: int = 0
    size: int = 0
    root: bytes = b""
    problem: str | None = None
    first_bad_index: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.ok:
            return (f"log {self.log}: OK — {self.entries} entries, {self.checkpoints} checkpoints, "
                    f"root {self.root.hex()[:16]}… at size {self.size}")
        where = f" (first bad index {self.first_bad_index})" if self.first_bad_index is not None else ""
        return f"log {self.log}: FAILED{where}: {self.problem}"


class _Fail(Exception):
    def __init__(self, problem: str, index: int | None = None):
        super().__init__(problem)
        self.problem, self.index = problem, index


def verify_log(store, log: str, verifiers: Sequence[Verifier], *, trusted: str | None = None,
               progress: Callable[[int, int], None] | None = None,
               keys_at: Callable[[int], Sequence[Verifier]] | None = None, workers: int = 1) -> VerifyReport:
    """Verify one log of ``store`` end to end; ``trusted`` is an older checkpoint the log must extend.
    With ``workers`` > 1, a store that can (SQLite) re-hashes full tiles in that many processes.

    ``keys_at(size)``, when given, names the keys valid for the stored checkpoint of that size (after
    a key rotation); otherwise any of ``verifiers`` may have signed any checkpoint."""
    report = VerifyReport(log)
    try:
        signed = _signed_checkpoints(store, log, verifiers, keys_at)
        report.checkpoints = len(signed)
        want = dict(signed)
        if trusted is not None:
            outside = _trusted_checkpoint(trusted, verifiers, log)
            if outside.size in want and want[outside.size] != outside.root:
                raise _Fail(f"the trusted checkpoint at size {outside.size} and the stored one disagree: "
                            "the log was forked or rewritten")
            want.setdefault(outside.size, outside.root)
        size = max(signed)[0] if signed else 0
        report.size = size
        _rebuild(store, log, size, want, report, progress, workers,
                 lambda index: _grown_past(store, log, verifiers, index))
        if trusted is not None and outside.size > report.entries:
            raise _Fail(f"log truncated: the trusted checkpoint has size {outside.size} but only "
                        f"{report.entries} entries are stored", report.entries)
    except _Fail as fail:
        report.problem, report.first_bad_index = fail.problem, fail.index
    return report


def _signed_checkpoints(store, log: str, verifiers, keys_at=None) -> list[tuple[int, bytes]]:
    """(size, root) of every stored checkpoint, each signature checked (by the key valid at its size);
    the newest must be the log's head."""
    result = _stored_checkpoints(store, log, verifiers, keys_at)
    latest = store.latest_checkpoint(log)
    if result and latest is not None:
        top = open_checkpoint(latest, verifiers)
        if top.size > result[-1][0]:  # committed after the list was read (a live store): read the rest
            result += [row for row in _stored_checkpoints(store, log, verifiers, keys_at, after=result[-1][0])
                       if row[0] <= top.size]
        if (top.size, top.root) != result[-1]:
            raise _Fail(f"the log's head (size {top.size}) is not its newest stored checkpoint "
                        f"(size {result[-1][0]})")
    return result


def _stored_checkpoints(store, log: str, verifiers, keys_at=None, after: int = -1) -> list[tuple[int, bytes]]:
    """(size, root) of the stored checkpoints larger than ``after``, each signature checked."""
    result = []
    for size, note in store.checkpoints(log):
        if size <= after:
            continue
        try:
            checkpoint = open_checkpoint(note, keys_at(size) if keys_at else verifiers)
        except LedgerError as exc:
            raise _Fail(f"checkpoint at size {size} does not verify with the trusted key: {exc}") from None
        if checkpoint.size != size or not checkpoint.origin.endswith("/" + log):
            raise _Fail(f"checkpoint stored at size {size} says {checkpoint.origin} size {checkpoint.size}")
        result.append((size, checkpoint.root))
    return result


def _grown_past(store, log: str, verifiers, index: int) -> bool:
    """Whether a signed head read now covers ``index``: on a live store, entries and tiles past the
    checkpoint a verify started from are later commits (they land with their checkpoint in one
    transaction), not insertions. Without such a head they stay an error."""
    latest = store.latest_checkpoint(log)
    if latest is None:
        return False
    try:
        return open_checkpoint(latest, verifiers).size > index
    except LedgerError:
        return False


def _trusted_checkpoint(note: str, verifiers, log: str) -> Checkpoint:
    try:
        checkpoint = open_checkpoint(note, verifiers)
    except LedgerError as exc:
        raise _Fail(f"the trusted checkpoint does not verify: {exc}") from None
    if not checkpoint.origin.endswith("/" + log):
        raise _Fail(f"the trusted checkpoint is for {checkpoint.origin}, not log {log}")
    return checkpoint


def _leaves(store, log: str, start: int = 0, end: int = 2**62) -> Iterator[tuple[int, bytes]]:
    """(index, leaf hash): re-hashed from the stored entry, or the leaf hash recorded when retention
    pruned its payload (stores that prune implement ``read_pruned``)."""
    sha256 = hashlib.sha256
    read_pruned = getattr(store, "read_pruned", None)
    pruned = iter(read_pruned(log, start, end)) if read_pruned else iter(())
    recorded = next(pruned, None)
    for index, data in store.read_entries(log, start, end):
        while recorded is not None and recorded[0] < index:
            yield recorded
            recorded = next(pruned, None)
        leaf = sha256(b"\x00" + (data if type(data) is bytes else as_bytes(data))).digest()
        if recorded is not None and recorded[0] == index:  # restored from the archive: both must agree
            if recorded[1] != leaf:
                raise _Fail(f"entry {index} does not match the leaf hash recorded when it was archived", index)
            recorded = next(pruned, None)
        yield index, leaf
    while recorded is not None:
        yield recorded
        recorded = next(pruned, None)


def _chunks(store, log: str, size: int, stops: list[int], start: int = 0,
            end: int = 2**62, grown_past: Callable[[int], bool] | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """Leaf hashes of entries start..end-1 in index order, cut at tile boundaries and at checkpoint
    sizes; gaps raise. Entries past ``size`` end the walk if ``grown_past`` says a newer head covers
    them, and raise otherwise."""
    expected = start
    chunk: list[bytes] = []
    stop_iter = iter(sorted(s for s in stops if s > start))
    next_stop = next(stop_iter, None)
    for index, leaf in _leaves(store, log, start, end):
        if index != expected:
            raise _Fail(f"entry {expected} is missing and was not pruned (the next stored entry is {index})", expected)
        if index >= size:
            if grown_past is not None and grown_past(index):
                break
            raise _Fail(f"entry {index} is not covered by any signed checkpoint (inserted after size {size})",
                        index)
        chunk.append(leaf)
        expected += 1
        if expected % TILE == 0 or expected == next_stop:
            yield expected - len(chunk), chunk
            chunk = []
            while next_stop is not None and next_stop <= expected:
                next_stop = next(stop_iter, None)
    if chunk:
        yield expected - len(chunk), chunk
    if expected < min(end, size) and end < 2**62:  # a range ends early: the next entry decides what is wrong
        for index, _ in _leaves(store, log, end, 2**62):
            raise _Fail(f"entry {expected} is missing and was not pruned (the next stored entry is {index})",
                        expected)


class _Rebuild:
    """A fresh tree fed with leaf hashes in order, checked against stored tiles and signed roots."""

    def __init__(self, store, log: str, size: int, want: dict[int, bytes], report: VerifyReport, progress,
                 grown_past: Callable[[int], bool] | None = None):
        self.store, self.log, self.size, self.want = store, log, size, want
        self.grown_past = grown_past
        self.report, self.progress = report, progress
        self.tree = TreeState.empty()
        self.stored0 = store.read_tiles(log, 0)
        self.current: tuple[int, bytes] | None = None
        self.last_good = 0

    def leaves(self, start: int, leaves: list[bytes]) -> None:
        """Check a run of leaf hashes (within one tile) against the stored level-0 tile, then add them."""
        tile = start // TILE
        while self.current is None or self.current[0] < tile:
            self.current = next(self.stored0, (tile, b""))
        offset = (start % TILE) * HASH
        stored = self.current[1][offset:offset + len(leaves) * HASH] if self.current[0] == tile else b""
        computed = b"".join(leaves)
        if stored != computed:
            bad = _first_difference(stored, computed) + start
            raise _Fail(f"entry {bad} does not match leaf hash {bad % TILE} of tile 0/{tile}: "
                        "the entry or the tile was changed", bad)
        self.tree.append(leaves)
        self._grown()

    def full_tile(self, data: bytes, root: bytes) -> None:
        """Add a full tile a worker already matched with its entries and the stored level-0 tile."""
        self.tree.append_full_tile(data, root)
        self._grown()

    def _grown(self) -> None:
        tree = self.tree
        _check_tiles(self.store, self.log, tree.take_dirty_tiles(), full_only=True)
        root = self.want.get(tree.size)
        if root is not None:
            if tree.root() != root:
                raise _Fail(f"the tree at size {tree.size} does not match its signed checkpoint: an entry "
                            f"between {self.last_good} and {tree.size - 1} was changed", self.last_good)
            self.last_good = tree.size
        self.report.entries = tree.size
        if self.progress is not None:
            self.progress(tree.size, self.size)

    def finish(self) -> None:
        tree, size = self.tree, self.size
        if tree.size < size:
            raise _Fail(f"log truncated: the signed checkpoint has size {size} but only {tree.size} entries "
                        "are stored", tree.size)
        edges = [(lvl, (size // TILE ** lvl - 1) // TILE, data) for lvl, data in tree.edge_tiles().items()]
        grown = (lambda: self.grown_past(size)) if self.grown_past is not None else None
        _check_tiles(self.store, self.log, edges, full_only=False, grown=grown)
        self.report.root = tree.root() if tree.size else b""


def _rebuild(store, log: str, size: int, want: dict[int, bytes], report: VerifyReport, progress,
             workers: int = 1, grown_past: Callable[[int], bool] | None = None) -> None:
    """Leaf hashes into a fresh tree, comparing tiles and checkpoint roots as they complete."""
    rebuild = _Rebuild(store, log, size, want, report, progress, grown_past)
    done = _parallel_tiles(store, log, size, want, rebuild, workers)
    for start, leaves in _chunks(store, log, size, list(want), start=done, grown_past=grown_past):
        rebuild.leaves(start, leaves)
    rebuild.finish()


def _parallel_tiles(store, log: str, size: int, want: dict[int, bytes], rebuild: _Rebuild, workers: int) -> int:
    """Feed every full tile the store's workers can re-hash; return where the sequential walk resumes.

    A tile a worker could not match, or one holding a checkpoint size strictly inside it, is walked
    entry by entry, so failures are reported exactly as without workers."""
    hashed_tiles = getattr(store, "hashed_tiles", None)
    tiles = size // TILE
    if workers <= 1 or hashed_tiles is None or tiles < PARALLEL_MIN_TILES or _has_pruned(store, log):
        return 0
    inside = {s // TILE for s in want if s % TILE}
    done = 0
    try:
        with closing(hashed_tiles(log, 0, tiles, workers)) as hashed:  # stops the workers however this ends
            for tile, data, root in hashed:
                if data is None or root is None or tile in inside:
                    _walk_tile(store, log, size, want, rebuild, tile)
                else:
                    rebuild.full_tile(data, root)
                done = tile + 1
    except StoreError:  # a worker could not run (no interpreter, database unreadable to it): go on alone
        pass
    return done * TILE


def _walk_tile(store, log: str, size: int, want: dict[int, bytes], rebuild: _Rebuild, tile: int) -> None:
    """Check one tile entry by entry, as the sequential walk does."""
    for start, leaves in _chunks(store, log, size, list(want), start=tile * TILE, end=(tile + 1) * TILE):
        rebuild.leaves(start, leaves)


def _has_pruned(store, log: str) -> bool:
    read_pruned = getattr(store, "read_pruned", None)
    return read_pruned is not None and next(iter(read_pruned(log, 0, 2**62)), None) is not None


def _check_tiles(store, log: str, tiles, *, full_only: bool, grown: Callable[[], bool] | None = None) -> None:
    """Stored tiles must equal the recomputed ones (full level-0 tiles were checked per entry). A stored
    partial tile longer than the recomputed one is a later commit's when ``grown()`` (asked after the
    read) says a signed head now covers more; its prefix must still match."""
    for level, index, data in tiles:
        if full_only and (level == 0 or len(data) < TILE * HASH):
            continue
        stored = store.read_tile(log, level, index)
        if (stored is not None and len(stored) > len(data) and stored.startswith(data)
                and grown is not None and grown()):
            continue
        if stored != data:
            first = (index * TILE + _first_difference(stored or b"", data)) * TILE ** level
            raise _Fail(f"tile {level}/{index} does not match the hashes of the entries below it", first)


def _first_difference(stored: bytes, computed: bytes) -> int:
    """Index (in hashes) of the first differing 32-byte hash."""
    for i in range(0, max(len(stored), len(computed)), HASH):
        if stored[i:i + HASH] != computed[i:i + HASH]:
            return i // HASH
    return 0


def as_bytes(value) -> bytes:
    """A stored entry of the wrong type (someone wrote TEXT into the BLOB column) is hashed as is."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")

"""Sequence and seal: the single writer that group-commits events into the Merkle log.

Callers `submit()` batches of validated events; one writer thread takes everything waiting when a
commit starts, assigns indices, appends leaf hashes to each log's tree, signs a checkpoint per log
and writes entries + tiles + checkpoint in one transaction. Futures resolve only after the commit,
so an acknowledgement always means durable.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from trailseal.event import Sealable, utc_now
from trailseal.keys import log_origin, log_signer
from trailseal.ledger import Checkpoint, Signer, TreeState, leaf_hash, parse_checkpoint, sign
from trailseal.store.base import Commit, EntryRow, Receipt, Store, StoreError

logger = logging.getLogger("trailseal.pipeline")
MAX_ERASURES = 10_000  # erasures the writer remembers (``Sealer.erasures``)


class Overloaded(RuntimeError):
    """The writer's queue is full: answer 429/503 with Retry-After, never drop."""


@dataclass
class _Request:
    items: Sequence[Sealable]
    future: Future = field(default_factory=Future)
    parts: Iterator[Sequence[Sealable]] | None = None  # a batch that arrives in parts (seal_parts)
    count: int = 0  # events counted against max_queue_events


@dataclass
class CommitStats:
    """What the last commits looked like, for /metrics."""

    commits: int = 0
    events: int = 0
    last_batch: int = 0
    last_seconds: float = 0.0
    observers: list[Callable[[int, float], None]] = field(default_factory=list)


class Sealer:
    """The one writer of a store: group commit, idempotency by id, signed checkpoints."""

    def __init__(self, store: Store, signer: Signer, *, max_commit_events: int = 20_000,
                 max_queue_events: int = 200_000, clock: Callable[[], str] = utc_now):
        self.store = store
        self.signer = signer
        self._signers: dict[str, Signer] = {}
        self.max_commit_events = max_commit_events
        self.max_queue_events = max_queue_events
        self.clock = clock
        self.stats = CommitStats()
        self.on_commit: list[Callable[[list[tuple[str, int, bytes, tuple]]], None]] = []
        self.on_failure: list[Callable[[], None]] = []  # a commit rolled back (e.g. forget cached vault state)
        # Called with the vault rows a commit wrote, once durable and before any waiter hears of it (later
        # events may reuse their values without carrying copies: Protection.confirm)
        self.on_written: list[Callable[[list], None]] = []
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._trees: dict[str, TreeState] = {}
        self._vault_written: dict[str, object] = {}  # commitment -> vault row written in this transaction
        self._orphans: list = []  # of them, the rows of re-sent events (written all the same: see _seal_entries)
        # (subject, log or None for every log) -> when it was erased: rows of that subject's events received
        # before then are not written (a request protected before an erasure may reach the writer after it)
        self.erasures: dict[tuple[str, str | None], str] = {}
        self.heads: dict[str, str] = {}  # log -> newest signed checkpoint written by this writer
        # The privacy stage, applied here to anything a caller did not already protect, so no ingest
        # path (receivers, meta events) can seal personal data by forgetting it.
        self.protect: Callable[[Sealable], Sealable] | None = None
        # Called once per log (per writer) before its first commit; what it returns is sealed in the same
        # commit (the `privacy.policy` record that says which policy protected what follows).
        self.announce: Callable[[str], Sequence[Sealable]] | None = None
        self._announced: set[str] = set()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Sealer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="trailseal-sealer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    @property
    def queue_depth(self) -> int:
        return self._queued

    # -- submitting ------------------------------------------------------------------------------
    def submit(self, items: Sequence[Sealable]) -> Future:
        """Queue a batch; the future resolves to one Receipt per item after the commit."""
        if self.protect is not None:
            items = [item if item.protected else self.protect(item) for item in items]
        request = _Request(items)
        if not items:
            request.future.set_result([])
            return request.future
        with self._queued_lock:
            if self._queued + len(items) > self.max_queue_events:
                raise Overloaded(f"{self._queued} events are waiting to be sealed")
            self._queued += len(items)
        self.start()
        self._queue.put(request)
        return request.future

    def seal(self, items: Sequence[Sealable], timeout: float | None = None) -> list[Receipt]:
        """Submit and wait for the durable receipts."""
        return self.submit(items).result(timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every batch queued before this call was committed (or refused)."""
        if self._thread is None:
            return
        request = _Request([])
        self._queue.put(request)
        request.future.result(timeout)

    def seal_parts(self, parts: Iterator[Sequence[Sealable]], count: int) -> list[Receipt]:
        """Seal one batch of ``count`` protected events that arrives in parts, in order, as one commit: the
        writer stores each part while the next is still being prepared (the prepare workers), and commits
        after the last. If ``parts`` raises, nothing of the batch is sealed and the exception is re-raised
        here. The writer thread iterates ``parts``; it takes no other batch meanwhile."""
        request = _Request([], parts=parts, count=count)
        with self._queued_lock:
            if self._queued + count > self.max_queue_events:
                raise Overloaded(f"{self._queued} events are waiting to be sealed")
            self._queued += count
        self.start()
        self._queue.put(request)
        return request.future.result()

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        held: _Request | None = None  # a batch in parts, taken from the queue while draining: next
        while True:
            first, held = (held, None) if held is not None else (self._queue.get(), None)
            if first is None:
                return
            if first.parts is not None:
                self._process([first])
                continue
            batch, stop, held = self._drain(first)
            self._process(batch)
            if stop:
                return

    def _drain(self, first: _Request) -> tuple[list[_Request], bool, _Request | None]:
        """Everything waiting now, up to max_commit_events, joins this commit (a batch in parts commits
        on its own: it is handed back, to be next)."""
        batch, count = [first], len(first.items)
        while count < self.max_commit_events:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return batch, True, None
            if nxt.parts is not None:
                return batch, False, nxt
            batch.append(nxt)
            count += len(nxt.items)
        return batch, False, None

    def _process(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        self._vault_written, self._orphans = {}, []
        parts = batch[0].parts
        if parts is None and not any(request.items for request in batch):  # only flushes: nothing to commit
            for request in batch:
                request.future.set_result([])
            return
        try:
            if parts is not None:
                receipts, sealed = self._commit_parts(parts)
            else:
                receipts, sealed = self._commit([r.items for r in batch])
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear about the failure
            if parts is not None and hasattr(parts, "close"):
                parts.close()  # a producer still holding resources (the prepare workers) lets go first
            self._trees.clear()
            for forget in self.on_failure:
                forget()
            for request in batch:
                request.future.set_exception(exc)
            receipts, sealed = None, []
        finally:
            with self._queued_lock:
                self._queued -= sum(r.count or len(r.items) for r in batch)
        if receipts is None:
            return
        elapsed = time.perf_counter() - started
        self._record(sum(len(r) for r in receipts), elapsed)
        for observer in self.on_written:
            try:
                observer(list(self._vault_written.values()))
            except Exception:  # noqa: BLE001 - the commit is durable: its waiters must hear of it regardless
                logger.exception("an on_written observer failed; the commit stands")
        for request, result in zip(batch, receipts, strict=True):
            request.future.set_result(result)
        for observer in self.on_commit:
            observer(sealed)

    def _record(self, events: int, seconds: float) -> None:
        self.stats.commits += 1
        self.stats.events += events
        self.stats.last_batch = events
        self.stats.last_seconds = seconds
        for observer in self.stats.observers:
            observer(events, seconds)

    # -- one group commit ------------------------------------------------------------------------
    def _commit(self, requests: list[Sequence[Sealable]]):
        """Seal every request's items; return receipts per request and the new (log, index, bytes)."""
        count = len(requests)
        first_seen = {item.log for items in requests for item in items} - self._announced
        if first_seen and self.announce is not None:
            requests = [*requests, [record for log in sorted(first_seen) for record in self.announce(log)]]
        by_log: dict[str, list[tuple[int, int, Sealable]]] = {}
        for r, items in enumerate(requests):
            for i, item in enumerate(items):
                by_log.setdefault(item.log, []).append((r, i, item))
        receipts: list[list[Receipt | None]] = [[None] * len(items) for items in requests]
        commits, sealed = [], []
        created = self.clock()
        for log, entries in by_log.items():
            commit, fresh = self._seal_log(log, entries, receipts, created)
            if commit is not None:
                commits.append(commit)
                sealed.extend(fresh)
        if self._orphans:
            commits.append(Commit(self._orphans[0].log, [], [], 0, "", created, self._orphans))
        if commits:
            self.store.commit(commits)
            self.heads.update((c.log, c.checkpoint) for c in commits if c.checkpoint)
        self._announced |= first_seen
        return receipts[:count], sealed

    def _commit_parts(self, parts: Iterator[Sequence[Sealable]]):
        """Seal a batch that arrives in parts, in one transaction: each part's entries and vault rows are
        written as it comes; tiles, checkpoints (and a first-seen log's policy record) after the last."""
        receipts: list[Receipt] = []
        sealed: list[tuple[str, int, bytes, tuple]] = []
        touched: dict[str, None] = {}  # logs written to, in order
        closing: list[Commit] = []
        created = self.clock()

        def entries_of(items: Sequence[Sealable], part: list) -> list[Commit]:
            by_log: dict[str, list] = {}
            for i, item in enumerate(items):
                by_log.setdefault(item.log, []).append((0, i, item))
            written = []
            for log, entries in by_log.items():
                rows, vault, fresh = self._seal_entries(log, entries, [part])
                sealed.extend(fresh)
                if rows:
                    touched[log] = None
                    written.append(Commit(log, rows, [], 0, "", created, vault))
            return written

        def commits() -> Iterator[list[Commit]]:
            for items in parts:
                part: list = [None] * len(items)
                yield entries_of(items, part)
                receipts.extend(part)
            if self.announce is not None:
                records = [r for log in sorted(set(touched) - self._announced) for r in self.announce(log)]
                yield entries_of(records, [None] * len(records))
            if self._orphans:
                yield [Commit(self._orphans[0].log, [], [], 0, "", created, self._orphans)]
            closing.extend(self._close_log(log, [], [], created) for log in touched)
            yield closing

        self.store.commit_parts(commits())
        self.heads.update((c.log, c.checkpoint) for c in closing)
        self._announced |= set(touched)
        return [receipts], sealed

    def _seal_log(self, log: str, entries, receipts, created: str) -> tuple[Commit | None, list]:
        """Assign indices to one log's new entries; duplicates get their original receipts."""
        rows, vault, fresh = self._seal_entries(log, entries, receipts)
        if not rows:
            return None, fresh
        return self._close_log(log, rows, vault, created), fresh

    def _seal_entries(self, log: str, entries, receipts) -> tuple[list[EntryRow], list, list]:
        """Index one log's new entries and add their leaves to its tree (rows, vault rows, sealed entries);
        each (request, position, item) gets its receipt in ``receipts``, a duplicate its original one."""
        tree = self._tree(log)
        sent = list({item.id: None for _, _, item in entries if not item.assigned})  # ids we made are new
        known = self.store.find_ids(log, sent) if sent else {}
        seen: dict[str, Receipt] = {
            id_: Receipt(log, index, self._leaf_of(log, index, data).hex(), id_) for id_, (index, data) in known.items()}
        rows: list[EntryRow] = []
        leaves: list[bytes] = []
        vault: list = []
        fresh: list[tuple[str, int, bytes, tuple]] = []
        sha256 = hashlib.sha256
        for r, i, item in entries:
            receipt = seen.get(item.id)
            if receipt is not None and item.vault:
                # a re-sent event seals nothing, but its vault rows are written: the protection that made
                # them holds their values (an ingest node confirmed them when the bus took the event)
                self._orphans.extend(self._unwritten(item.vault, item.event.received))
            if receipt is None:
                index = tree.size + len(rows)
                leaf = sha256(b"\x00" + item.canonical).digest()  # leaf_hash, inlined: this loop is hot
                receipt = seen[item.id] = Receipt(log, index, leaf.hex(), item.id)
                rows.append(_row(index, item))
                leaves.append(leaf)
                if item.vault:
                    vault.extend(self._unwritten(item.vault, item.event.received))
                fresh.append((log, index, item.canonical, item.vault))
            receipts[r][i] = receipt
        if leaves:
            tree.append(leaves)
        return rows, vault, fresh

    def _unwritten(self, rows: tuple, received: str) -> list:
        """Vault rows to write: not already in this transaction (an event may carry a copy of an earlier
        event's row whose write was not yet confirmed when it was protected: ``Protection.confirm``), nor of
        a subject erased after the event was received."""
        written = self._vault_written
        fresh = [row for row in rows if row.commitment not in written]
        if self.erasures:
            fresh = [row for row in fresh if not self._erased(row, received)]
        written.update((row.commitment, row) for row in fresh)
        return fresh

    def _erased(self, row, received: str) -> bool:
        """True if the row's subject was erased (in its log, or in every log) after the event was received."""
        when = max(self.erasures.get((row.subject, row.log), ""), self.erasures.get((row.subject, None), ""))
        return bool(when) and received <= when

    def erased(self, subject: str, log: str | None, when: str) -> None:
        """Record an erasure (see ``erasures``); past MAX_ERASURES the oldest are forgotten (by then no
        request received before them still waits for the writer)."""
        self.erasures.pop((subject, log), None)
        self.erasures[(subject, log)] = when
        while len(self.erasures) > MAX_ERASURES:
            del self.erasures[next(iter(self.erasures))]

    def _close_log(self, log: str, rows: list[EntryRow], vault: list, created: str) -> Commit:
        """The log's commit: its rows, the tiles they changed, and a checkpoint signed over its new size."""
        tree = self._tree(log)
        checkpoint = Checkpoint(log_origin(self.signer.name, log), tree.size, tree.root())
        note = sign(checkpoint.body(), [self._signer(log)])
        return Commit(log, rows, tree.take_dirty_tiles(), tree.size, note, created, vault)

    def _leaf_of(self, log: str, index: int, data: bytes | None) -> bytes:
        """An already sealed entry's leaf hash: from its bytes, or from its tile if retention pruned them."""
        if data is not None:
            return leaf_hash(data)
        tile = self.store.read_tile(log, 0, index // 256) or b""
        return tile[index % 256 * 32:(index % 256 + 1) * 32]

    def _signer(self, log: str) -> Signer:
        if log not in self._signers:
            self._signers[log] = log_signer(self.signer, log)
        return self._signers[log]

    def _tree(self, log: str) -> TreeState:
        """This log's right edge, restored from the store and checked against its checkpoint."""
        tree = self._trees.get(log)
        if tree is None:
            size = self.store.tree_size(log)
            tree = TreeState.restore(size, self.store.edge_tiles(log, size)) if size else TreeState.empty()
            note = self.store.latest_checkpoint(log)
            if note is not None:
                signed = parse_checkpoint(note.split("\n\n", 1)[0] + "\n")
                if signed.size != tree.size or signed.root != tree.root():
                    raise StoreError(f"log {log!r}: stored tiles do not match the latest checkpoint; "
                                     "refusing to extend it. Run `trailseal verify` to find the damage.")
            self._trees[log] = tree
        return tree


def _row(index: int, item: Sealable) -> EntryRow:
    e = item.event
    return EntryRow(index, item.id, e.time, e.received, e.category, e.action, e.outcome, e.actor.id,
                    item.canonical)

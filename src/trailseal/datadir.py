"""A data directory: config, signing key, store. `trailseal.open(dir)` gives the library API."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from trailseal import config as cfg
from trailseal.event import Event, EventError, Sealable, from_dict, to_event, utc_now
from trailseal.keys import log_verifier
from trailseal.ledger import Signer, Verifier, generate, merkle, tile_read_hashes
from trailseal.ledger.proof import format_proof
from trailseal.ledger.verify import VerifyReport, as_bytes, verify_log
from trailseal.pipeline import Overloaded, Sealer
from trailseal.prepare_pool import PoolFailure, PreparePool, default_workers
from trailseal.protection import Protection, protect_or_error, seal_received
from trailseal.store.base import Receipt, Store, StoreError

logger = logging.getLogger("trailseal.datadir")
LOCK_FILE = "writer.lock"
ERASE_DRAIN_SECONDS = 60.0  # on the bus: how long an erasure waits for the stream to reach it
ERASE_POLL_SECONDS = 0.1


class DataDirError(RuntimeError):
    """The data dir is missing, unreadable or in use; the message says what to do."""


class ErasureRefused(DataDirError):
    """A legal hold keeps events of the subject: their personal values must stay until it is released."""


def init(directory: str | os.PathLike | None = None, *, origin: str | None = None,
         store: str = "sqlite:trailseal.db") -> Path:
    """Create a data dir with config, an Ed25519 signing key (0600) and an empty store."""
    path = cfg.data_dir(directory)
    if (path / cfg.CONFIG_FILE).exists():
        raise DataDirError(f"{path} is already initialized ({cfg.CONFIG_FILE} exists)")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = origin or cfg.default_origin()
    skey, vkey = generate(name)
    _write_private(path / cfg.KEY_FILE, skey)
    (path / cfg.VKEY_FILE).write_text(vkey + "\n")
    (path / cfg.CONFIG_FILE).write_text(cfg.render(name, store))
    open_store(path, cfg.load(path)).close()
    return path


def _write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def open_store(directory: Path, conf: cfg.Config) -> Store:
    """The store the config names."""
    url = conf.store
    if url.startswith("sqlite:"):
        from trailseal.store.sqlite import SQLiteStore

        return SQLiteStore(directory / url[len("sqlite:"):])
    if url.startswith(("postgresql://", "postgres://")):
        from trailseal.store.postgres import PostgresStore  # type: ignore[import-not-found]

        return PostgresStore(url)
    raise cfg.ConfigError(f"store {url!r}: use 'sqlite:<file>' or 'postgresql://...'")


def load_signer(directory: Path, conf: cfg.Config) -> Signer:
    path = directory / conf.key_file
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise DataDirError(f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")
    return Signer.from_skey(path.read_text().strip())


class LRU(OrderedDict):
    """A small least-recently-used cache (full tiles never change, so they can be kept)."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        if len(self) > self.capacity:
            self.popitem(last=False)


class Trail:
    """An open data dir: append events, read checkpoints, prove inclusion, verify. No server needed."""

    def __init__(self, directory: str | os.PathLike | None = None, *, clock: Callable[[], str] = utc_now):
        self.directory = cfg.data_dir(directory)
        if not (self.directory / cfg.CONFIG_FILE).exists():
            raise DataDirError(f"{self.directory} is not a trailseal data dir: run "
                               f"`trailseal init --data {self.directory}` first")
        self.config = cfg.load(self.directory)
        self.store = open_store(self.directory, self.config)
        self.clock = clock
        self.base_vkey = (self.directory / cfg.VKEY_FILE).read_text().strip()
        self.base_verifier = Verifier.from_vkey(self.base_vkey)
        self._sealer: Sealer | None = None
        self._lock_fd: int | None = None
        self._sealer_lock = threading.Lock()
        self._full_tiles: dict[str, LRU] = {}
        try:
            self.protection = Protection.load(self.directory, self.config.privacy)
        except ValueError as exc:
            raise cfg.ConfigError(str(exc)) from None
        workers = self.config.prepare_workers
        self.pool = PreparePool(self.directory, self.protection, default_workers() if workers < 0 else workers)

    # -- writing ---------------------------------------------------------------------------------
    @property
    def sealer(self) -> Sealer:
        """The writer, created on first use; it holds the data dir's writer lock."""
        if self._sealer is not None:
            return self._sealer
        with self._sealer_lock:
            return self._start_sealer()

    def _start_sealer(self) -> Sealer:
        if self._sealer is None:
            self._lock_writer()
            self._sealer = self.new_sealer().start()
        return self._sealer

    def new_sealer(self, max_commit_events: int | None = None, max_queue_events: int | None = None) -> Sealer:
        """This data dir's writer as embedded mode configures it, not started and without the writer
        lock (a scale-out sequencer holds its PostgreSQL leader lock instead)."""
        sealer = Sealer(self.store, load_signer(self.directory, self.config), clock=self.clock,
                        max_commit_events=max_commit_events or self.config.max_commit_events,
                        max_queue_events=max_queue_events or self.config.server.max_queue_events)
        sealer.protect = lambda item: protect_or_error(self.protection, item)
        sealer.announce = self._policy_records
        sealer.on_failure.append(self.forget_vault_cache)
        sealer.on_written.append(self._confirm_vault)
        return sealer

    def _confirm_vault(self, rows: list) -> None:
        """The writer committed these vault rows (or the bus took them): their values may be reused as
        written, here and in the prepare workers."""
        if rows:
            self.protection.confirm(rows)
            self.pool.confirm(rows)

    def unhold_vault(self, rows: list) -> None:
        """Vault rows of a batch the writer refused (never written): forget their values here and in the
        prepare workers, whichever made them, so no later event is sealed under their commitments."""
        self.protection.unhold(rows)
        self.pool.unhold(rows)

    def forget_vault_cache(self) -> None:
        """Vault rows remembered as written may not be (a failed commit, a refused batch): forget them all."""
        self.protection.forget_all()
        self.pool.forget_all()

    def use_sealer(self, sealer) -> None:
        """Put another writer behind `sealer` (scale-out roles: the NATS bus, or a leader's Sealer)."""
        with self._sealer_lock:
            self._sealer = sealer
        written = getattr(sealer, "on_written", None)  # a writer without it: values are carried, never confirmed
        if written is not None and self._confirm_vault not in written:
            written.append(self._confirm_vault)
        announced = getattr(sealer, "on_forget", None)  # the bus: other nodes' erasures and expiries
        if announced is not None and self._forget_announced not in announced:
            announced.append(self._forget_announced)

    def _policy_records(self, log: str) -> list[Sealable]:
        """A `privacy.policy` record for ``log``, unless the policy in force is the one last recorded."""
        if self.protection.is_recorded(self.store, log):
            return []
        return [self.protection.policy_record(log, self.clock())]

    def _lock_writer(self) -> None:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirError(f"another trailseal process (pid {holder}) is writing to {self.directory}; "
                               "send events to it with `trailseal send`, or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def prepare(self, events: Iterable[dict[str, Any] | Event | Sealable]) -> list[Sealable]:
        """Validate, normalize and protect events (big batches in the prepare workers); the first invalid
        one raises EventError naming its position, and nothing of the batch is sealed."""
        items = events if isinstance(events, list) else list(events)
        received = self.clock()  # one arrival time per batch
        if not any(isinstance(item, Sealable) for item in items):
            prepared = self.pool.try_prepare(items, received)
            if prepared is not None:
                return prepared
        try:
            return self._prepare_here(items, received)
        except EventError:
            self.forget_vault_cache()  # the batch's earlier events will not be sealed: nor their vault rows
            raise

    def _prepare_here(self, items: list, received: str) -> list[Sealable]:
        prepared = []
        for position, item in enumerate(items):
            if isinstance(item, Sealable):
                prepared.append(item)
                continue
            try:
                prepared.append(seal_received(self.protection, to_event(item), received))
            except EventError as exc:
                raise EventError(exc.reason, f"[{position}]" + (f".{exc.field}" if exc.field else "")) from None
        return prepared

    def append(self, events: Iterable[dict[str, Any] | Event | Sealable]) -> list[Receipt]:
        """Seal events durably; returns one receipt per event (re-sent ids get their original one).
        A big batch is prepared by the prepare workers part by part while the writer stores the parts
        before (one transaction: a refused event still leaves nothing of the batch sealed)."""
        items = events if isinstance(events, list) else list(events)
        streamed = self._append_streamed(items)
        if streamed is not None:
            return streamed
        prepared = self.prepare(items)
        try:
            return self.sealer.seal(prepared)
        except Overloaded:
            self.forget_vault_cache()
            raise

    def _append_streamed(self, items: list) -> list[Receipt] | None:
        """append() through the prepare workers part by part, or None if they cannot take the batch (then
        nothing was sealed)."""
        sealer = self.sealer
        if not (hasattr(sealer, "seal_parts") and hasattr(self.store, "commit_parts")) or \
                any(isinstance(item, Sealable) for item in items):
            return None
        parts = self.pool.try_stream(items, self.clock())
        if parts is None:
            return None
        try:
            return sealer.seal_parts(parts, len(items))
        except PoolFailure:
            return None  # a worker failed, or another batch had them: rolled back, prepared in-process

    # -- reading ---------------------------------------------------------------------------------
    def verifier(self, log: str = "default") -> Verifier:
        """The verifier of ``log``'s checkpoints (key name = its origin)."""
        return log_verifier(self.base_verifier, log)

    def verifiers(self, log: str = "default") -> list[Verifier]:
        """Every key that signed ``log``'s checkpoints: the current one first, then rotated-out ones."""
        from trailseal.keys import KeyHistory

        return KeyHistory.load(self.directory, self.base_vkey).verifiers(log, self.verifier(log))

    def vkey(self, log: str = "default") -> str:
        """The C2SP vkey text of ``log``'s checkpoints."""
        return self.verifier(log).vkey

    def logs(self):
        return self.store.logs()

    def checkpoint(self, log: str = "default") -> str | None:
        """The latest signed checkpoint of ``log`` (C2SP signed note), or None if it is empty."""
        return self.store.latest_checkpoint(log)

    def entry(self, index: int, log: str = "default") -> bytes:
        """The sealed bytes; from the archive when retention moved them (IndexError says if pruned)."""
        for _, data in self.store.read_entries(log, index, index + 1):
            return as_bytes(data)
        from trailseal.retention import read_offline

        return read_offline(self, log, index)

    def inclusion_proof(self, index: int, size: int, log: str = "default") -> list[bytes]:
        return merkle.inclusion_proof(index, size, self._hash_reader(log, size))

    def consistency_proof(self, old: int, new: int, log: str = "default") -> list[bytes]:
        return merkle.consistency_proof(old, new, self._hash_reader(log, new))

    def _hash_reader(self, log: str, size: int):
        def read_tile(level: int, index: int, width: int) -> bytes:
            data = self.store.read_tile(log, level, index)
            if data is None or len(data) < width * 32:
                raise StoreError(f"log {log!r}: tile {level}/{index} is missing or short; run `trailseal verify`")
            return data[:width * 32]

        return tile_read_hashes(size, read_tile, self._full_tiles.setdefault(log, LRU(256)))

    def prove(self, index: int, log: str = "default") -> str:
        """A C2SP tlog-proof of entry ``index`` against the latest checkpoint."""
        note = self.checkpoint(log)
        if note is None:
            raise IndexError(f"log {log!r} is empty")
        size = int(note.split("\n", 2)[1])  # the checkpoint's own size: proof and note always agree
        if not 0 <= index < size:
            raise IndexError(f"log {log!r} has entries 0..{size - 1}; there is no {index}")
        return format_proof(index, self.inclusion_proof(index, size, log), note)

    def warm_tiles(self) -> int:
        """Read every stored tile once, so proofs and tile requests find them in the page cache rather
        than in random reads across a large database (what `serve` does at start); bytes read."""
        read = 0
        for info in self.store.logs():
            level = 0
            while True:
                sizes = [len(data) for _, data in self.store.read_tiles(info.name, level)]
                if not sizes:
                    break
                read += sum(sizes)
                level += 1
        return read

    def verify(self, log: str | None = None, *, trusted: str | None = None,
               progress: Callable[[int, int], None] | None = None,
               workers: int | None = None) -> list[VerifyReport]:
        """Re-hash and re-check every log (or one); see ledger/verify.py. ``workers``: processes that
        re-hash entries (default: one per core, at most four)."""
        if workers is None:
            from trailseal.store.tile_hashing import default_workers

            workers = default_workers()
        names = [log] if log else [info.name for info in self.store.logs()]
        target = log or (trusted_log(trusted) if trusted else None)
        from trailseal.keys import KeyHistory

        history = KeyHistory.load(self.directory, self.base_vkey)
        return [verify_log(self.store, name, history.verifiers(name, self.verifier(name)),
                           trusted=trusted if name == target else None, progress=progress,
                           keys_at=history.keys_at(name, self.verifier(name)), workers=workers)
                for name in names]

    def erase(self, subject: str, log: str | None = None, *, by: str = "cli") -> int:
        """GDPR Art. 17: delete a subject's vault rows; seal the erasure (naming only its HMAC). Events of
        the subject received before now that reach the writer later (queued, or still being protected) are
        sealed without their vault rows."""
        record = getattr(self.sealer, "erased", None)  # the embedded writer; not the bus (docs/SCALING.md)
        self._refuse_held(subject, log)
        if record is not None:
            record(subject, log, self.clock())
        count = self._erase_vault(subject, log)
        scope = log or "default"
        event = {
            "log": "trailseal", "time": self.clock(), "category": "data_change", "action": "privacy.erase",
            "outcome": "success", "actor": {"id": by, "type": "service"},
            "source": {"component": "trailseal", "kind": "trailseal", "format": "trailseal"},
            "target": {"type": "data_subject", "id": f"subject:{self.protection.subject_token(subject, scope)}"},
            "attributes": {"vault_rows_erased": count, "scope": log or "*"},
        }
        erasure = from_dict(event, self.clock())
        self.sealer.seal([erasure])
        if record is None:  # the bus: events published before the erasure may be sealed only now
            count += self._erase_after_stream(subject, log, erasure.id)
        return count

    def _refuse_held(self, subject: str, log: str | None) -> None:
        """Raise ErasureRefused if an active legal hold keeps an event of the subject (GDPR Art. 17(3)(e):
        erasure does not apply where the data is needed for legal claims)."""
        from trailseal.retention import Policies, Retention, trail_actor_ids
        from trailseal.retention_db import connection, has_active_holds

        if not has_active_holds(connection(self.store)):
            return
        reader = Retention(self.store, Policies(), actor_ids=trail_actor_ids(self), schema=False)  # no DDL: any role
        holds = reader.holds_on_subject(subject, log)
        if holds:
            named = "; ".join(f"hold {hold.id} ({hold.reason})" for hold in holds)
            raise ErasureRefused(f"not erased: {named} keeps events of this subject, and with them their personal "
                                 "values; release the hold (`trailseal hold release ID`) once the case allows, "
                                 "then erase")

    def _erase_after_stream(self, subject: str, log: str | None, erasure_id: str,
                            timeout: float = ERASE_DRAIN_SECONDS) -> int:
        """On the bus, the sequencer writes the vault rows of events published before the erasure after
        it: wait until the erasure event itself is sealed and every event of the erased logs that was in the
        stream is too (whichever sequencer seals each log), then erase again. Rows published later by a
        node that protected them before the erasure are not covered (docs/SCALING.md)."""
        if not self._wait_sealed(erasure_id, timeout) or not self.barrier(log, timeout):
            logger.warning("erasure of a subject recorded, but the stream did not reach it in %.0f s: values of "
                           "events published before it may remain; run the erasure again later", timeout)
            return 0
        return self._erase_vault(subject, log)

    def barrier(self, log: str | None = None, timeout: float = ERASE_DRAIN_SECONDS) -> bool:
        """Wait until what was sealed before this call is in the store: the writer's queue committed, or, on
        the bus, every event of ``log`` (None: of every log) that is in the stream sealed. False if that did
        not happen within ``timeout`` (a sequencer down)."""
        flush = getattr(self.sealer, "flush", None)
        if flush is None:
            return self.sealer.wait_sealed(log, timeout)
        flush()
        return True

    def _wait_sealed(self, event_id: str, timeout: float) -> bool:
        """Whether the `trailseal` log holds the event within ``timeout`` seconds (polled)."""
        deadline = time.monotonic() + timeout
        while not self.store.find_ids("trailseal", [event_id]):
            if time.monotonic() > deadline:
                return False
            time.sleep(ERASE_POLL_SECONDS)
        return True

    def _erase_vault(self, subject: str, log: str | None) -> int:
        """Forget the subject's values (here and in the prepare workers), then delete its vault rows."""
        self.forget_subjects([subject], log)
        return self.store.vault_erase(subject, log)

    def forget_subjects(self, subjects: Sequence[str], log: str | None) -> None:
        """The protection caches (here and in the prepare workers) forget these subjects' values, so their
        next events get fresh vault rows; on the bus every other node is told (by search token) too."""
        self.protection.forget_subjects(subjects, log)
        self.pool.forget_subjects(subjects, log)
        tell = getattr(self._sealer, "broadcast_forget", None)
        if tell is not None and subjects:
            logs = [log] if log is not None else [info.name for info in self.store.logs()]
            tell([self.protection.subject_token(subject, name) for subject in subjects for name in logs])

    def _forget_announced(self, tokens: list[str]) -> None:
        """Another node erased or expired these subjects (by search token): forget them here; the prepare
        workers, which cannot be told by token, forget every value."""
        self.protection.forget_tokens(set(tokens))
        if self.pool.ready:
            self.pool.forget_all()

    def read_events(self, rows: list[tuple[str, int, bytes]]) -> list[dict[str, Any]]:
        """(log, index, sealed bytes) -> dicts with log, index and the event, vault values joined back."""
        import json

        events = self.protection.reveal_all(self.store, [json.loads(data) for _, _, data in rows])
        return [{"log": log, "index": index, "event": event} for (log, index, _), event in zip(rows, events,
                                                                                              strict=True)]

    def close(self) -> None:
        self.pool.close()
        if self._sealer is not None:
            self._sealer.stop()
            self._sealer = None
        self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Trail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trusted_log(note: str) -> str | None:
    """The log a saved checkpoint belongs to: the last part of its origin line."""
    origin = note.split("\n", 1)[0]
    return origin.rsplit("/", 1)[-1] if "/" in origin else None


def open(directory: str | os.PathLike | None = None, **kwargs: Any) -> Trail:  # noqa: A001
    """Open a data dir for the library API: ``log = trailseal.open(dir); log.append(events)``."""
    return Trail(directory, **kwargs)

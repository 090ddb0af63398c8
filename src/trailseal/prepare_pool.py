"""Validation and privacy protection of big appends (and `trailseal ingest`) in worker processes,
beside the writer.

`Trail.append()` validates, protects and encodes every event (``prepare``) before the writer seals it;
that is most of an event's CPU, all of it under the caller's GIL, and with privacy on the larger half.
With ``prepare_workers`` set (by default one per core when there are two or more), a batch of at least
``MIN_POOL_BATCH`` events is split between worker processes (``python -m trailseal.prepare_pool DIR``, a
fresh interpreter that loads the data dir's privacy policy and key itself) and only the sealing stays in
this process. Each worker answers with the sealed bytes, the columns the writer indexes and the vault
rows of its share; the results are put back in the batch's order, so what is sealed is what an
in-process prepare would have sealed.

The privacy stage remembers which values the vault already holds (``Protection``'s cache, one per
worker here): every event of one subject goes to the same worker, so a value still gets one vault row.
A worker reuses a value without carrying a copy of its row only once the writer committed that row
(``confirm``: the worker hears of it before its next request). Whatever may have left a worker's
memory out of step with the vault (a batch refused for one bad event, a failed commit, an erasure)
makes every worker forget, as the in-process cache does. A worker that
fails, or a policy the workers do not see as this process does, turns the pool off: prepare then runs
in this process, as it always could.
"""

from __future__ import annotations

import logging
import marshal
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import astuple

from trailseal.bus.message import ActorId, SealedColumns
from trailseal.event import EventError, Sealable, decode_event, to_event
from trailseal.frames import read_frame, widen_pipe, write_frame
from trailseal.privacy.vault import VaultRow
from trailseal.protection import seal_received

log = logging.getLogger("trailseal.prepare")
MIN_POOL_BATCH = 128  # smaller appends are prepared in the caller's process (a round trip costs more)
STREAM_PART = 250  # events per part of a streamed append: the writer stores one while the next is prepared
MAX_UNTOLD_ROWS = 500_000  # vault rows the workers made that the parent remembers until they are committed
FIRST_PART = 64  # events in its first part, which the writer waits for with nothing else to do


class PoolFailure(RuntimeError):
    """A worker failed during a streamed append: nothing was sealed; prepare the batch in-process."""


class Ready(msgspec.Struct, array_like=True):
    """What a worker says once started: the policy and key it protects with, to be compared."""

    fingerprint: str
    enabled: bool
    key_probe: str


# Frames: a request is b"M" + marshal (exact for Python's built-in types, and the fastest to write) or,
# when an event holds anything else (a datetime, an enum), b"P" + pickle; an answer is marshal of
# ([(position, id, log, sealed bytes, time, received, category, action, outcome, actor id, vault rows,
#    id assigned)],
#   refusal), a refusal being (position, reason, field), the text of an unexpected failure, or None; for
# JSON lines ("lines", `trailseal ingest`), a list of (position, reason) for every line refused; for a
# receiver's records ("records", read by the reader the request names), (position, reason, field) each.
_ready = msgspec.msgpack.Decoder(Ready)
_encode = msgspec.msgpack.Encoder().encode


def request_frame(message: tuple) -> bytes:
    try:
        return b"M" + marshal.dumps(message)
    except ValueError:
        return b"P" + pickle.dumps(message, pickle.HIGHEST_PROTOCOL)


def read_request(frame: bytes) -> tuple:
    body = memoryview(frame)[1:]
    return marshal.loads(body) if frame[:1] == b"M" else pickle.loads(body)  # noqa: S301 - the parent's own pipe


def part_bounds(count: int) -> list[tuple[int, int]]:
    """(start, end) of each part of a streamed batch of ``count`` events: ``FIRST_PART``, then
    ``STREAM_PART`` each."""
    starts = [0, *range(min(FIRST_PART, count), count, STREAM_PART)]
    return list(zip(starts, [*starts[1:], count], strict=True))


def default_workers() -> int:
    """One worker per core when there are two or more; none on one core (it would only add IPC)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores >= 2 else 0


def describe(protection: Any) -> Ready:
    """The policy and key a Protection applies, as a worker reports its own."""
    return Ready(protection.policy.fingerprint(), protection.enabled, protection.subject_token("probe", "probe"))


def subject_of(item: Any) -> Any:
    """An event's subject (actor id), which picks its worker: each subject's values meet one vault cache."""
    actor = item.get("actor") if type(item) is dict else getattr(item, "actor", None)
    return actor.get("id") if type(actor) is dict else getattr(actor, "id", None)


class _Subject(msgspec.Struct):
    actor: dict[str, Any] = {}


_subject_of_line = msgspec.json.Decoder(_Subject).decode


def line_subject(line: bytes) -> Any:
    """The subject of a JSON line, read without decoding the rest (None if it is not there or not JSON)."""
    try:
        return _subject_of_line(line).actor.get("id")
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def sealable(row: tuple) -> Sealable:
    """The Sealable of a worker's answer row (see the frame layout above)."""
    _, id_, log_name, data, time_, received, category, action, outcome, actor, vault, assigned = row
    return Sealable(id_, log_name, SealedColumns(id_, log_name, time_, received, category, action, outcome,
                                                  ActorId(actor)), data,
                    tuple(VaultRow(*fields) for fields in vault) if vault else (), True, assigned)


class PreparePool:
    """The caller's side: workers started on first use, one batch at a time (a caller that finds the
    pool busy prepares in its own process instead)."""

    def __init__(self, directory: Path, protection: Any, workers: int):
        self.directory, self.protection, self.size = directory, protection, workers
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._state = "idle" if workers > 0 else "off"  # idle -> starting -> ready | off
        self._made_rows: set[str] = set()  # commitments of vault rows the workers made, not yet committed
        self._written: list[tuple[str, str, str, str]] = []  # of those, the ones committed: to tell the workers
        self._written_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._state == "ready"

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (for CPU accounting)."""
        return [proc.pid for proc in self._procs]

    def _takes(self, batch: Sequence[Any]) -> bool:
        """True if the workers are up and the batch is big enough for them (the first such batch starts
        them, and is prepared by its caller meanwhile)."""
        if len(batch) < MIN_POOL_BATCH:
            return False
        if self._state == "idle":
            self._start()
        return self._state == "ready"

    def try_prepare(self, items: Sequence[Any], received: str) -> list[Sealable] | None:
        """The Sealables of items (dicts or Events, in order), or None when the pool cannot take them now
        (off, starting, busy, or too few): the caller prepares them itself. Raises EventError for the
        first event refused, with its position, as the in-process prepare does."""
        if not self._takes(items) or not self._lock.acquire(blocking=False):
            return None
        try:
            return self._prepare(items, received)
        finally:
            self._lock.release()

    def try_prepare_lines(self, lines: Sequence[bytes], received: str
                          ) -> tuple[list[Sealable], list[tuple[int, str]]] | None:
        """The Sealables of JSON lines (each one event), in order, and for each line refused its position
        and the reason (the others are still prepared); None when the pool cannot take them now."""
        if not self._takes(lines) or not self._lock.acquire(blocking=False):
            return None
        try:
            answers = self._exchange([request_frame(("lines", received, *share))
                                      for share in self._shares(lines, line_subject)])
        finally:
            self._lock.release()
        read = self._read_answers(answers)
        return None if read is None else ([item for _, item in read[0]], read[1])

    def try_prepare_records(self, reader: str, options: dict[str, Any], records: Sequence[Any], received: str,
                            wait: float = 0.0) -> tuple[list[tuple[int, Sealable]], list[tuple]] | None:
        """A receiver's records read and prepared by the workers (``receivers.records.seal_records``, each
        worker a contiguous share): (position, Sealable) in record order and (position, reason, field) for
        each record refused; None when the pool cannot take them within ``wait`` seconds. A subject's
        records may meet both workers here (who the subject is shows only once read), so a value may get a
        vault row in each."""
        if not self._takes(records):
            return None
        if not (self._lock.acquire(timeout=wait) if wait > 0 else self._lock.acquire(blocking=False)):
            return None
        if self._state != "ready":  # the pool stopped while this caller waited for it
            self._lock.release()
            return None
        try:
            requests = [request_frame(("records", received, reader, options, *share))
                        for share in self._contiguous(records)]
        except Exception:  # noqa: BLE001 - what marshal and pickle cannot carry is prepared (and refused) here
            self._lock.release()
            return None
        try:
            answers = self._exchange(requests)
        finally:
            self._lock.release()
        return self._read_answers(answers)

    def _contiguous(self, items: Sequence[Any]) -> list[tuple[list[int], list[Any]]]:
        """(positions, items) per worker: the items split in as many runs as there are workers."""
        size = max(1, -(-len(items) // len(self._procs)))
        return [(list(range(start, min(start + size, len(items)))), list(items[start:start + size]))
                for start in range(0, size * len(self._procs), size)]

    def _read_answers(self, answers: list[tuple] | None) -> tuple[list[tuple[int, Sealable]], list[tuple]] | None:
        """(position, Sealable) in position order and the sorted refusals of answers to "lines" or "records"
        requests; None if a worker failed on something unexpected (prepared here, where it shows)."""
        if answers is None or any(type(refused) is str for _, refused in answers):
            return None
        refused = sorted(r for _, refusals in answers for r in refusals)
        prepared = sorted((row for rows, _ in answers for row in rows), key=itemgetter(0))
        self._made(prepared)
        return [(row[0], sealable(row)) for row in prepared], refused

    def try_stream(self, items: Sequence[Any], received: str) -> Iterator[list[Sealable]] | None:
        """The Sealables of items in parts (``part_bounds``), in order, each as soon as the workers have it
        (they go on with the next meanwhile), for ``Sealer.seal_parts``; None when the pool cannot take the
        batch now. Iterating raises EventError at the part holding the first event refused, and
        PoolFailure if a worker fails or a later part cannot be sent (prepare the batch in-process then)."""
        if not self._takes(items):
            return None

        def requests(start: int, end: int) -> list[bytes]:
            return [request_frame(("prepare", received, *share))
                    for share in self._shares(items[start:end], subject_of, start)]

        bounds = part_bounds(len(items))
        try:
            first = requests(*bounds[0])  # the rest are framed while the workers prepare this one
        except Exception:  # noqa: BLE001 - what marshal and pickle cannot carry is prepared (and refused) here
            return None
        return self._parts(first, [partial(requests, *part) for part in bounds[1:]])

    def _parts(self, first: list[bytes], later: list[Callable[[], list[bytes]]]) -> Iterator[list[Sealable]]:
        """Feed the first part's requests and then each later part's (a thread frames and writes them, so
        a worker never waits on this process to read), and yield each part as its answers arrive; whatever
        happens, read every answer of every part sent before returning. The pool is taken when iteration
        starts (PoolFailure if another batch has it, or it stopped)."""
        if not self._lock.acquire(blocking=False):
            raise PoolFailure("the prepare workers are busy with another batch")
        self._tell_written()
        if self._state != "ready" or len(first) != len(self._procs):
            self._lock.release()
            raise PoolFailure("the prepare workers stopped")
        procs, sent, stop = self._procs, queue.SimpleQueue(), threading.Event()
        feeding = threading.Thread(target=self._feed, args=(first, later, sent, stop), daemon=True)
        feeding.start()
        parts, taken, read = 1 + len(later), 0, 0  # parts in all; sent (as ``sent`` said); read
        over = False  # ``sent`` said the feeder sends nothing more
        try:
            while read < parts:
                failure = sent.get()
                if failure is not None:
                    over = True
                    raise PoolFailure(f"a part of the batch could not be sent to the workers: {failure}")
                taken += 1
                answers = [self._answer(proc) for proc in procs]
                read += 1
                yield self._part(answers)
        finally:
            stop.set()  # the feeder sends no further part
            for _ in range(taken - read):  # a part sent whose answers were not read (reading them failed)
                self._skip_answers(procs)
            while not over and taken < parts:  # parts the feeder may have sent meanwhile
                over = sent.get() is not None
                if not over:
                    taken += 1
                    self._skip_answers(procs)
            feeding.join()
            self._lock.release()

    def _skip_answers(self, procs: list[subprocess.Popen]) -> None:
        """Read and drop one answer of each worker (of a part no longer wanted), unless the pool stopped."""
        for proc in procs:
            if self._state != "off":
                try:
                    self._answer(proc)
                except PoolFailure:
                    pass

    def _feed(self, first: list[bytes], later: list[Callable[[], list[bytes]]], sent: queue.SimpleQueue,
              stop: threading.Event) -> None:
        """Write each part's requests to the workers, saying in ``sent`` after each part: None once it was
        written, or why it was not (then no further part is sent)."""
        for make in [lambda: first, *later]:
            if stop.is_set():
                sent.put("the batch was given up")
                return
            try:
                part = make()
            except Exception as exc:  # noqa: BLE001 - what marshal and pickle cannot carry: prepared in-process
                sent.put(f"{type(exc).__name__}: {exc}")  # not written: the workers never see this part
                return
            try:
                for proc, request in zip(self._procs, part, strict=True):
                    write_frame(proc.stdin, request)
            except Exception:  # noqa: BLE001 - a worker gone (EPIPE), or a frame cut short: the pool stops
                self._shut("off", kill=True)  # so that the reader's wait for this part's answers ends
                sent.put(None)
                sent.put("the prepare workers stopped")
                return
            sent.put(None)

    def _answer(self, proc: subprocess.Popen) -> tuple:
        try:
            frame = read_frame(proc.stdout)  # ValueError if the pool was shut meanwhile (pipe closed)
            if frame is None:
                raise OSError(f"prepare worker {proc.pid} exited with {proc.poll()}")
            return marshal.loads(frame)
        except (OSError, ValueError, EOFError, TypeError) as exc:
            log.warning("prepare workers stopped (%s); preparing in this process from now on", exc)
            self._shut("off", kill=True)  # the feeding thread may be blocked writing to another worker
            raise PoolFailure(str(exc)) from None

    def _part(self, answers: list[tuple]) -> list[Sealable]:
        """One part's Sealables in order (positions are the batch's); a refusal raises EventError."""
        refused = [refusal for _, refusal in answers if refusal is not None]
        if any(type(refusal) is str for refusal in refused):
            raise PoolFailure(next(r for r in refused if type(r) is str))
        if refused:
            position, reason, field = min(refused)
            raise EventError(reason, f"[{position}]" + (f".{field}" if field else ""))
        rows = sorted((row for rows, _ in answers for row in rows), key=itemgetter(0))
        self._made(rows)
        return [sealable(row) for row in rows]

    def _prepare(self, items: Sequence[Any], received: str) -> list[Sealable] | None:
        try:
            requests = [request_frame(("prepare", received, *share)) for share in self._shares(items, subject_of)]
        except Exception:  # noqa: BLE001 - only this process can hold it (a lambda, a runaway nesting): prepare here
            return None
        answers = self._exchange(requests)
        if answers is None:
            return None
        return self._assemble(answers)

    def _shares(self, items: Sequence[Any], subject: Callable[[Any], Any], first: int = 0
                ) -> list[tuple[list[int], list[Any]]]:
        """(positions, items) per worker, every subject's items to one worker; positions from ``first``."""
        shares: list[tuple[list[int], list[Any]]] = [([], []) for _ in self._procs]
        for position, item in enumerate(items, first):
            positions, chosen = shares[self._worker_of(subject(item))]
            positions.append(position)
            chosen.append(item)
        return shares

    def _worker_of(self, subject: Any) -> int:
        """The worker whose vault cache holds this subject's values (the first for anything but a string)."""
        return hash(subject) % len(self._procs) if type(subject) is str else 0

    def _exchange(self, requests: list[bytes]) -> list[tuple] | None:
        """Send each worker its share, then read every answer; None (and the pool off) if one fails."""
        self._tell_written()
        try:
            for proc, request in zip(self._procs, requests, strict=True):
                write_frame(proc.stdin, request)  # every worker gets a share, if only an empty one
            answers = []
            for proc in self._procs:
                frame = read_frame(proc.stdout)
                if frame is None:
                    raise OSError(f"prepare worker {proc.pid} exited with {proc.poll()}")
                answers.append(marshal.loads(frame))
            return answers
        except (OSError, ValueError, EOFError, TypeError) as exc:
            log.warning("prepare workers stopped (%s); preparing in this process from now on", exc)
            self._shut("off", kill=True)
            return None

    def _assemble(self, answers: list[tuple]) -> list[Sealable] | None:
        """The Sealables in the batch's order; the first refusal (lowest position) raises. None if a worker
        failed on something unexpected: prepared here, the caller sees the failure itself. Either way the
        other events' vault rows will not be written: every worker forgets their values."""
        try:
            return self._part(answers)
        except EventError:
            self._tell(("forget_all",))
            raise
        except PoolFailure:
            self._tell(("forget_all",))
            return None

    def forget_subjects(self, subjects: Sequence[str], log_name: str | None) -> None:
        """After an erasure or a vault expiry: every worker forgets these subjects' values (before its next
        batch), told in one message."""
        with self._lock:
            self._tell(("forget", list(subjects), log_name))

    def forget_all(self) -> None:
        """After a failed commit or a refused batch: every worker forgets every value it remembered."""
        with self._lock:
            self._tell(("forget_all",))

    def unhold(self, rows: Sequence[Any]) -> None:
        """Vault rows the workers made that will not be written (the writer refused their batch): every
        worker forgets those values (``Protection.unhold``: only where it holds that very commitment)."""
        if rows and self._state == "ready":
            with self._lock:
                self._tell(("unhold", [astuple(row) for row in rows]))

    def _made(self, answer_rows: list[tuple]) -> None:
        """Remember the commitments of the vault rows in workers' answer rows (see the frame layout)."""
        made = [fields[2] for row in answer_rows for fields in row[10]]
        if made:
            with self._written_lock:
                if len(self._made_rows) > MAX_UNTOLD_ROWS:  # never committed (refused batches): forgotten
                    self._made_rows.clear()
                self._made_rows.update(made)

    def confirm(self, rows: Sequence[Any]) -> None:
        """Vault rows the writer committed: the workers that made them hear of it before their next request,
        and from then on reuse those values without carrying copies (``Protection.confirm``). Called by the
        writer thread, which may be iterating a streamed batch that holds the pool: no wait here."""
        if rows and self._made_rows:
            with self._written_lock:
                made = self._made_rows
                mine = [row for row in rows if row.commitment in made]
                made.difference_update(row.commitment for row in mine)
                self._written.extend((row.log, row.subject, row.value, row.commitment) for row in mine)

    def _tell_written(self) -> None:
        """Send every worker the vault values committed since the last request (the caller holds the lock)."""
        if self._written:
            with self._written_lock:
                written, self._written = self._written, []
            self._tell(("confirm", written))

    def _tell(self, message: tuple) -> None:
        """A message every worker reads before its next request (the caller holds the lock)."""
        try:
            for proc in self._procs:
                write_frame(proc.stdin, request_frame(message))
        except (OSError, ValueError):
            self._shut("off")

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> bool:
        """Start the workers now rather than on the first big batch, and wait until they can take one
        (a long-running appender's warm-up); False if the pool is off or not ready in time."""
        with self._lock:
            if self._state == "idle":
                self._start()
        deadline = time.monotonic() + timeout
        while self._state == "starting" and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.ready

    def _start(self) -> None:
        """Start the workers; a thread waits for each to say which policy it applies."""
        self._state = "starting"
        package_root = str(Path(__file__).resolve().parents[1])  # where `trailseal` is importable from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            self._procs = [subprocess.Popen([sys.executable, "-m", "trailseal.prepare_pool", str(self.directory)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                           for _ in range(self.size)]
        except OSError as exc:
            log.warning("cannot start prepare workers (%s); preparing in this process", exc)
            self._shut("off")
            return
        for proc in self._procs:
            widen_pipe(proc.stdin)
            widen_pipe(proc.stdout)
        threading.Thread(target=self._await_ready, name="trailseal-prepare-start", daemon=True).start()

    def _await_ready(self) -> None:
        expected = describe(self.protection)
        for proc in self._procs:
            frame = read_frame(proc.stdout)
            try:
                seen = _ready.decode(frame) if frame is not None else None
            except msgspec.DecodeError:
                seen = None
            if seen != expected:
                log.warning("prepare worker %s %s; preparing in this process", proc.pid,
                            "did not start" if seen is None else "sees another privacy policy or key")
                with self._lock:
                    self._shut("off")
                return
        with self._lock:
            if self._state == "starting" and self._hand_over_held():
                self._state = "ready"

    def _hand_over_held(self) -> bool:
        """Tell each worker the values this process's cache holds for its subjects (batches prepared here
        while the workers started), so those values keep their one vault row; False (and the pool off)
        if a worker cannot be told. The caller holds the lock."""
        shares: list[list[tuple]] = [[] for _ in self._procs]
        for held in self.protection.held():
            shares[self._worker_of(held[1])].append(held)
        try:
            for proc, share in zip(self._procs, shares, strict=True):
                if share:
                    write_frame(proc.stdin, request_frame(("hold", share)))
        except (OSError, ValueError):
            self._shut("off")
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._shut("off")

    def _shut(self, state: str, kill: bool = False) -> None:
        """Stop every worker: their input closed, each exits when it has read it all; or, after a failure
        (``kill``), killed first. A thread blocked writing to a worker that waits for us to read its answers
        holds that pipe's lock, so closing the pipe would wait forever; the kill ends the write (EPIPE)."""
        self._state = state
        procs, self._procs = self._procs, []
        for proc in procs:
            if kill and proc.poll() is None:
                proc.kill()
        for proc in procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


# -- the worker ------------------------------------------------------------------------------------
def prepare_share(protection: Any, received: str, positions: list[int], items: list[Any]) -> tuple[list, Any]:
    """Validate, normalize, protect and encode one share of a batch, stopping at the first refusal."""
    prepared = []
    for position, item in zip(positions, items, strict=True):
        try:
            prepared.append(answer_row(position, seal_received(protection, to_event(item), received)))
        except EventError as exc:
            return prepared, (position, exc.reason, exc.field)
    return prepared, None


def prepare_lines(protection: Any, received: str, positions: list[int], lines: list[bytes]) -> tuple[list, list]:
    """A worker's share of JSON lines: ``seal_lines`` with the answer rows the parent reads."""
    prepared, refused = seal_lines(protection, received, positions, lines)
    return [answer_row(position, item) for position, item in prepared], refused


def seal_lines(protection: Any, received: str, positions: Sequence[int], lines: Sequence[bytes]
               ) -> tuple[list[tuple[int, Sealable]], list[tuple[int, str]]]:
    """Parse, validate, protect and encode JSON lines, each with its position: (position, Sealable) for
    each line prepared, and (position, reason) for each refused (the others are still prepared)."""
    prepared, refused = [], []
    for position, line in zip(positions, lines, strict=True):
        try:
            prepared.append((position, seal_received(protection, decode_event(line), received)))
        except EventError as exc:
            refused.append((position, str(exc)))
    return prepared, refused


def prepare_records_share(protection: Any, received: str, reader: str, options: dict, positions: list[int],
                          records: list) -> tuple[list, list]:
    """A worker's share of a receiver's raw records: ``seal_records`` with the answer rows the parent reads."""
    from trailseal.receivers.records import seal_records

    prepared, refused = seal_records(protection, received, reader, options, positions, records)
    return [answer_row(position, item) for position, item in prepared], refused


def answer_row(position: int, sealable: Sealable) -> tuple:
    e = sealable.event
    return (position, sealable.id, sealable.log, sealable.canonical, e.time, e.received, e.category, e.action,
            e.outcome, e.actor.id, tuple(astuple(row) for row in sealable.vault), sealable.assigned)


WORK = {"prepare": prepare_share, "lines": prepare_lines, "records": prepare_records_share}


def serve_requests(directory: Path, stdin, stdout) -> None:
    """The worker: report the policy in force, then answer each request until the input ends."""
    from trailseal import config as cfg
    from trailseal.protection import Protection
    from trailseal.runtime import tune_gc

    protection = Protection.load(directory, cfg.load(directory).privacy)
    tune_gc()
    write_frame(stdout, _encode(describe(protection)))
    while (frame := read_frame(stdin)) is not None:
        request = read_request(frame)
        if request[0] in WORK:
            work = WORK[request[0]]
            try:
                answer = work(protection, *request[1:])
            except Exception as exc:  # noqa: BLE001 - the parent prepares the batch itself and sees it
                answer = [], f"{type(exc).__name__}: {exc}"
            write_frame(stdout, marshal.dumps(answer))
        elif request[0] == "forget":
            protection.forget_subjects(*request[1:])
        elif request[0] == "forget_all":
            protection.forget_all()
        elif request[0] == "confirm":
            protection.confirm_values(request[1])
        elif request[0] == "hold":
            protection.hold(request[1])
        elif request[0] == "unhold":
            protection.unhold(VaultRow(*fields) for fields in request[1])


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m trailseal.prepare_pool DATA_DIR  (started by trailseal itself)")
    serve_requests(Path(sys.argv[1]), sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()

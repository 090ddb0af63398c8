"""OCSF Parquet pages built in worker processes, in order: ``batches_in_order``.

Building a page's columns is pure CPU work in Python (``ocsf_arrow.page_batches``), so an export
of more than one page starts worker processes (``WORKER``: this module run as ``python -m``
runs it, without NumPy; a fresh interpreter: nothing of the caller's process is forked or
re-imported) and hands them pages over pipes, up to two pages each at a time (one to build, one
waiting, so a worker never waits for its next page). A page is its text: entries with vault values
joined, by the exporting process, whose one cache of values then meets every page (a cache per worker
would each miss the values first sealed in the pages the others built). That process writes the
files, and builds pages itself only until a worker is up (so nothing waits while the workers start)
or once every worker is gone; a page no worker can take then waits for the oldest page's result (it has
its own work, reading and joining pages and writing the files: building pages too made it the one busy
process while the workers waited; 1M default-policy events on 2 CPUs, 97-98k -> 104-108k/s). A thread
per worker writes its pages, so this process goes on reading results while a page is on its way. Frames
carry the page's text and the batches as Arrow IPC messages as they are (beside a small msgpack header), so
nothing large is copied twice. Results are taken in the pages' order, so the files are the same as when
every page is built here. A worker that fails gets no more pages: its page is built here.
"""

from __future__ import annotations

import gc
import os
import queue
import select
import subprocess
import sys
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec
import pyarrow as pa

from trailseal.frames import read_frame, widen_pipe, write_frame, write_frames
from trailseal.query.ocsf_arrow import Classes, arrow_schema, page_batches

# (JSON array text of the entries, vault values joined; their indexes; the log's name)
Page = tuple[bytes, list[int], str]
DEPTH = 2  # pages a worker holds at most: the one it builds and the next
# pyarrow then loads without NumPy: a worker uses none of it, and importing it is half of a worker's start
WITHOUT_NUMPY = "import sys; sys.modules['numpy'] = None"
# a worker's program: this module run as `python -m` runs it, without NumPy
WORKER = (
    f"{WITHOUT_NUMPY}; import runpy;"
    " runpy.run_module('trailseal.query.ocsf_workers', run_name='__main__', alter_sys=True)"
)


def batches_in_order(pages: Iterable[Page], workers: int = 0, only: int | None = None) -> Iterator[dict]:
    """``page_batches`` of each page (class_uid -> record batch), in the pages' order; with ``workers``
    > 0 and more than one page, pages after the first are built by that many worker processes too."""
    pages, classes = iter(pages), Classes()  # what this process learns of classes and sources, across pages

    def here(page: Page) -> dict:
        return build(page, only, classes)

    first, second = next(pages, None), next(pages, None)
    if first is None:
        return
    pool = start(workers) if workers > 0 and second is not None else None  # they start while page 1 builds
    try:
        yield here(first)
        rest = pages if second is None else _chain(second, pages)
        if pool is None:
            yield from map(here, rest)
        else:
            yield from pool.build(rest, only, here)
    finally:
        if pool is not None:
            pool.close()


def build(page: Page, only: int | None, classes: Classes) -> dict:
    """``page_batches`` of one page."""
    text, indexes, log = page
    return page_batches(text, indexes, log, classes, only)


def start(count: int) -> Workers | None:
    """``count`` workers, or None where no process can be started (every page is then built here)."""
    try:
        return Workers(count)
    except OSError:
        return None


def _chain(first: Page, rest: Iterator[Page]) -> Iterator[Page]:
    yield first
    yield from rest


class Workers:
    """Worker processes, each holding at most DEPTH pages. A page goes to the least busy worker that is
    up and can take one; when none can, it waits for the oldest page's result, and when none is up, this
    process builds it. Pages are written by a sender thread per
    worker (so the pipes never fill both ways at once: this process reads results while a page goes)."""

    def __init__(self, count: int):
        package_root = str(Path(__file__).resolve().parents[2])  # where `trailseal` is imported from
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.processes: list[subprocess.Popen] = []
        self.outboxes: list[queue.SimpleQueue] = []  # frames for each worker's sender thread; None: the end
        self.senders: list[threading.Thread] = []
        for _ in range(count):
            try:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-c", WORKER],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        env={**os.environ, "PYTHONPATH": path},
                    )
                )
            except OSError:
                self.close()
                raise
            widen_pipe(self.processes[-1].stdin)
            widen_pipe(self.processes[-1].stdout)  # a page crosses in a few writes, not a hundred
        self.ready: set[int] = set()  # workers that said they are up (an empty frame once imported)
        self.window = DEPTH * count + 2  # pages in flight at most
        for process in self.processes:
            self.outboxes.append(queue.SimpleQueue())
            self.senders.append(threading.Thread(target=_send_frames, args=(process.stdin, self.outboxes[-1])))
            self.senders[-1].start()

    def build(self, pages: Iterator[Page], only: int | None, here) -> Iterator[dict]:
        """Each page's batches in order; ``here(page)`` builds a page in this process."""
        pending: deque[list] = deque()  # [worker or None, page, batches or None], in the pages' order
        for page in pages:
            while True:
                worker = self.free(Counter(entry[0] for entry in pending if entry[0] is not None))
                if worker is not None and self.send(worker, page, only):
                    pending.append([worker, page, None])
                    break
                if not self.ready or not pending:  # no worker up yet (or every one gone): built here
                    pending.append([None, page, here(page)])
                    break
                yield self.result(pending.popleft(), here)  # every worker busy: wait for the oldest page
            while pending and (
                pending[0][2] is not None or len(pending) > self.window or self.answered(pending[0][0])
            ):
                yield self.result(pending.popleft(), here)
        while pending:
            yield self.result(pending.popleft(), here)

    def free(self, held: Counter) -> int | None:
        """The worker that is up and holds the fewest pages, under DEPTH, if any (without waiting)."""
        for worker in sorted(range(len(self.processes)), key=held.__getitem__):
            if held[worker] < DEPTH and (worker in self.ready or self.started(worker)):
                return worker
        return None

    def started(self, worker: int) -> bool:
        if self.answered(worker) and read_frame(self.processes[worker].stdout) == b"":
            self.ready.add(worker)
        return worker in self.ready

    def answered(self, worker: int) -> bool:
        """Whether the worker has written something this process has not read yet."""
        stdout = self.processes[worker].stdout
        return stdout is not None and bool(select.select([stdout], [], [], 0)[0])

    def send(self, worker: int, page: Page, only: int | None) -> bool:
        """Queue the page for the worker's sender thread (False if the worker is gone)."""
        if worker not in self.ready or self.processes[worker].poll() is not None:
            self.ready.discard(worker)  # gone: it gets no more pages
            return False
        text, indexes, log = page
        self.outboxes[worker].put([msgspec.msgpack.encode([indexes, log, only]), text])
        return True

    def result(self, entry: list, here) -> dict:
        """The batches of a pending page: built here already, or the worker's (built here if it failed)."""
        worker, page, batches = entry
        if batches is not None:
            return batches
        stdout = self.processes[worker].stdout
        header = read_frame(stdout)
        uids = msgspec.msgpack.decode(header) if header is not None else []
        streams = [read_frame(stdout) for _ in uids]
        if header is None or None in streams:  # the worker is gone: it gets no more pages
            self.ready.discard(worker)
            self.outboxes[worker].put(None)
            return here(page)
        return {uid: batch_of(uid, data) for uid, data in zip(uids, streams, strict=True)}

    def close(self) -> None:
        """Let the workers finish and exit (killed if they do not within seconds)."""
        for outbox in self.outboxes:
            outbox.put(None)  # the sender closes the worker's input: it exits when it reads the end
        for process in self.processes:
            if process.stdout is not None:
                process.stdout.close()  # no more results are read: a worker still writing one stops
        for sender, process in zip(self.senders, self.processes, strict=False):
            sender.join(timeout=5)
            if sender.is_alive():  # the worker reads no more
                process.kill()
                sender.join()
        for process in self.processes[len(self.senders) :]:
            _close(process)  # started while starting the others failed: it has no sender
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _send_frames(stream: BinaryIO, frames: queue.SimpleQueue) -> None:
    """A sender thread: write the frames queued for a worker until None comes (or the worker is gone),
    then close the worker's input."""
    try:
        while (page := frames.get()) is not None:
            write_frames(stream, page)
    except (OSError, ValueError):
        pass
    finally:
        _close_input(stream)


def _close(process: subprocess.Popen) -> None:
    """Close the worker's input (it exits when it reads the end)."""
    if process.stdin is not None:
        _close_input(process.stdin)


def _close_input(stream: BinaryIO) -> None:
    try:
        stream.close()
    except OSError:
        pass


def ipc_message(batch: pa.RecordBatch) -> pa.Buffer:
    """A batch as one Arrow IPC message, without its schema (both ends know a class's: ``batch_of``),
    written in one buffer of its exact size (a stream writer grows its buffer, copying, as it goes)."""
    return batch.serialize()


def batch_of(uid: int, message: bytes) -> pa.RecordBatch:
    """The record batch of a class that ``ipc_message`` wrote."""
    return pa.ipc.read_record_batch(pa.py_buffer(message), arrow_schema(uid))


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """A worker: read pages (a header [indexes, log, only], then the text), answer each with a header
    (the class_uids of its batches) and each batch as an Arrow IPC message (``ipc_message``)."""
    gc.disable()  # a page's objects hold no cycles
    classes = Classes()
    write_frame(sink, b"")  # up: send pages
    while (page := _next_page(source)) is not None:
        page, only = page
        batches = build(page, only, classes)
        write_frames(sink, [msgspec.msgpack.encode(list(batches)), *map(ipc_message, batches.values())])


def _next_page(source: BinaryIO) -> tuple[Page, int | None] | None:
    """The next page sent and the class it is built for (None at the end of the input)."""
    header = read_frame(source)
    text = None if header is None else read_frame(source)
    if header is None or text is None:
        return None
    indexes, log, only = msgspec.msgpack.decode(header)
    return (text, indexes, log), only


if __name__ == "__main__":
    answers = os.fdopen(os.dup(1), "wb")  # frames only: anything else printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        serve(sys.stdin.buffer, answers)
    except BrokenPipeError:  # the export stopped before its end: nobody reads the answers
        pass

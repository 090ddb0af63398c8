"""OCSF Parquet pages built in worker processes, in order: ``batches_in_order``.

Building a page's columns is pure CPU work in Python (``ocsf_arrow.page_batches``), so an export
that reads more than one page starts worker processes (``python -m trailseal.query.ocsf_workers``,
a fresh interpreter: nothing of the caller's process is forked or re-imported) and hands them pages
over pipes, one page each at a time, as they become free; the reading process reads the store, joins
vault values, writes the files, and builds a page itself when no worker is free (so nothing waits
while the workers start). Results come back as Arrow IPC streams and are taken in the pages' order,
so the files are the same as when every page is built here. A worker that fails gets no more pages:
its page is built here.
"""

from __future__ import annotations

import gc
import os
import select
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec
import pyarrow as pa

from trailseal.query.ocsf_arrow import Classes, page_batches

Page = tuple[bytes, list[int], str]  # (JSON array text of the entries, their indexes, the log's name)
_LENGTH = struct.Struct("<Q")


def batches_in_order(pages: Iterable[Page], workers: int = 0, only: int | None = None) -> Iterator[dict]:
    """``page_batches`` of each page (class_uid -> record batch), in the pages' order; with ``workers``
    > 0 and more than one page, pages after the first are built by that many worker processes too."""
    pages, classes = iter(pages), Classes()
    first, second = next(pages, None), next(pages, None)
    if first is None:
        return
    pool = start(workers) if workers > 0 and second is not None else None  # they start while page 1 builds
    try:
        yield page_batches(*first, classes, only)
        rest = pages if second is None else _chain(second, pages)
        if pool is None:
            yield from (page_batches(*page, classes, only) for page in rest)
        else:
            yield from pool.build(rest, only, lambda page: page_batches(*page, classes, only))
    finally:
        if pool is not None:
            pool.close()


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
    """Worker processes, each holding at most one page (so the pipes never fill both ways at once).
    A page goes to a worker that is up and free; when none is, this process builds it."""

    def __init__(self, count: int):
        package_root = str(Path(__file__).resolve().parents[2])  # where `trailseal` is imported from
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.processes: list[subprocess.Popen] = []
        for _ in range(count):
            try:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "trailseal.query.ocsf_workers"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        env={**os.environ, "PYTHONPATH": path},
                    )
                )
            except OSError:
                self.close()
                raise
        self.ready: set[int] = set()  # workers that said they are up (an empty frame once imported)
        self.window = 2 * count + 2  # pages in flight at most

    def build(self, pages: Iterator[Page], only: int | None, here) -> Iterator[dict]:
        """Each page's batches in order; ``here(page)`` builds a page in this process."""
        pending: deque[list] = deque()  # [worker or None, page, batches or None], in the pages' order
        for page in pages:
            worker = self.free({entry[0] for entry in pending})
            if worker is not None and self.send(worker, page, only):
                pending.append([worker, page, None])
            else:
                pending.append([None, page, here(page)])
            while pending and (
                pending[0][2] is not None or len(pending) > self.window or self.answered(pending[0][0])
            ):
                yield self.result(pending.popleft(), here)
        while pending:
            yield self.result(pending.popleft(), here)

    def free(self, busy: set) -> int | None:
        """A worker that is up and holds no page, if any (without waiting)."""
        for worker in range(len(self.processes)):
            if worker not in busy and (worker in self.ready or self.started(worker)):
                return worker
        return None

    def started(self, worker: int) -> bool:
        if self.answered(worker) and _read_frame(self.processes[worker].stdout) == b"":
            self.ready.add(worker)
        return worker in self.ready

    def answered(self, worker: int) -> bool:
        """Whether the worker has written something this process has not read yet."""
        stdout = self.processes[worker].stdout
        return stdout is not None and bool(select.select([stdout], [], [], 0)[0])

    def send(self, worker: int, page: Page, only: int | None) -> bool:
        process = self.processes[worker]
        if process.stdin is None or process.stdin.closed or process.poll() is not None:
            return False
        try:
            _write_frame(process.stdin, msgspec.msgpack.encode([*page, only]))
        except OSError:
            return False
        return True

    def result(self, entry: list, here) -> dict:
        """The batches of a pending page: built here already, or the worker's (built here if it failed)."""
        worker, page, batches = entry
        if batches is not None:
            return batches
        frame = _read_frame(self.processes[worker].stdout)
        if frame is None:  # the worker is gone: it gets no more pages
            self.ready.discard(worker)
            _close(self.processes[worker])
            return here(page)
        return {uid: pa.ipc.open_stream(data).read_next_batch() for uid, data in msgspec.msgpack.decode(frame)}

    def close(self) -> None:
        """Let the workers finish and exit (killed if they do not within seconds)."""
        for process in self.processes:
            _close(process)
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _close(process: subprocess.Popen) -> None:
    """Close the worker's input (it exits when it reads the end)."""
    if process.stdin is not None and not process.stdin.closed:
        try:
            process.stdin.close()
        except OSError:
            pass


def _write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_frame(stream: BinaryIO | None) -> bytes | None:
    """One length-prefixed frame, or None at the end of the stream (or a cut-short frame)."""
    head = stream.read(_LENGTH.size) if stream is not None else b""
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


def ipc_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """A worker: read pages, answer each with its batches as (class_uid, Arrow IPC stream) pairs."""
    gc.disable()  # a page's objects hold no cycles
    classes = Classes()
    _write_frame(sink, b"")  # up: send pages
    while (frame := _read_frame(source)) is not None:
        text, indexes, log, only = msgspec.msgpack.decode(frame)
        batches = page_batches(text, indexes, log, classes, only)
        _write_frame(sink, msgspec.msgpack.encode([(uid, ipc_bytes(batch)) for uid, batch in batches.items()]))


if __name__ == "__main__":
    answers = os.fdopen(os.dup(1), "wb")  # frames only: anything else printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, answers)

"""Exports of the events a query matches: JSONL, CSV, OCSF (JSON or Parquet, one class per file) and ECS.

Events are read a page at a time with the query engine's plans (vault values joined, erased
values stay ``pd:``), log by log in sealed order, and written as they come: memory stays constant whatever the
size of the export. Every export is sealed in the `trailseal` meta log (who, query, format, rows).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from trailseal.privacy.tokens import COMMITMENT_RE
from trailseal.query import ecs, index, ocsf
from trailseal.query.language import parse
from trailseal.query.sealed import resolve_sealed
from trailseal.query.search import plan
from trailseal.query.stored_pages import StoredPages, VaultValues, jsonl_line
from trailseal.read_ahead import read_ahead
from trailseal.runtime import paused_gc
from trailseal.store.base import on_postgres
from trailseal.store.readers import read_only

FORMATS = ("jsonl", "csv", "ocsf", "ocsf-parquet", "ecs")
PER_CLASS = ("ocsf", "ocsf-parquet")  # written as one file per OCSF class into a directory
PAGE = 5000
PARQUET_PAGE = 10_000  # events per page for Parquet (long columns for Arrow, short turns for the workers)
PARQUET_ROWS = 20_000  # rows buffered per class before a Parquet row group is written
WRITES_AHEAD = 2  # Parquet row groups handed to the writer thread and not yet written, at most
PARQUET_WORKERS: int | None = None  # worker processes building OCSF Parquet pages; None: one per CPU (at most 4)
CSV_COLUMNS = (
    "log",
    "index",
    "id",
    "time",
    "received",
    "category",
    "action",
    "outcome",
    "severity",
    "reason",
    "actor.id",
    "actor.type",
    "actor.name",
    "actor.session",
    "actor.roles",
    "actor.ip",
    "actor.user_agent",
    "source.component",
    "source.kind",
    "source.format",
    "source.host",
    "source.ip",
    "source.endpoint",
    "target.type",
    "target.id",
    "target.name",
    "request.method",
    "request.path",
    "request.status",
    "request.bytes",
    "request.trace_id",
    "request.span_id",
    "raw_hash",
    "attributes",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_COMMITMENT = re.compile(COMMITMENT_RE.pattern.encode())


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says why."""


@dataclass
class ExportResult:
    """What an export wrote: how many events, and the files (one for a stream, one per class for OCSF)."""

    rows: int = 0
    files: list[Path] = field(default_factory=list)
    classes: dict[int, int] = field(default_factory=dict)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def matching_rows(
    trail, query: str, log: str | None = None, page: int | None = None
) -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    """(log, [(index, sealed bytes)...]) of the matching entries, log by log in sealed order, a page at a time."""
    for name, rows, _ in _matching(trail, query, log, page):
        yield name, rows


def _matching(
    trail, query: str, log: str | None, page: int | None, columns: str = "e.idx, e.data"
) -> Iterator[tuple[str, list[tuple[Any, ...]], Any]]:
    """One statement per log, planned like ``search.count`` (the cheapest index, no ordering by time),
    on a read-only connection of its own (yielded too), so the export holds no page in memory. Rows
    are (index, sealed bytes), or on SQLite the ``columns`` asked for."""
    node, logs = _prepared(trail, query, log)
    if on_postgres(trail.store):
        yield from _matching_pg(trail.store, node, logs, page)
        return
    yield from _sqlite_rows(trail.store.path, node, logs, page, columns)


def _prepared(trail, query: str, log: str | None) -> tuple[Any, list[str]]:
    """The query parsed (sealed values resolved) and the logs it reads; on SQLite the search tables brought
    up to date (vault keys settled too: page lookups skip no tail)."""
    node = parse(query)
    logs = [log] if log else sorted(info.name for info in trail.logs())
    if trail.protection.enabled:
        node = resolve_sealed(node, trail, logs)
    if not on_postgres(trail.store):
        index.refresh(index.connection(trail.store))
    return node, logs


def _sqlite_rows(
    path: str, node, logs: list[str], page: int | None, columns: str
) -> Iterator[tuple[str, list[tuple[Any, ...]], sqlite3.Connection]]:
    """``_matching`` on a SQLite store, on a connection opened here (so in the thread that reads)."""
    conn = _reader(path)
    try:
        now = datetime.now(UTC)
        for name in logs:
            chosen = plan(conn, node, name, now, ordered=False)
            where, params = chosen.where()
            cursor = conn.execute(
                f"SELECT {columns} FROM {chosen.source} WHERE e.log = ? AND {where} ORDER BY e.idx",
                [*chosen.params, name, *params],
            )
            while rows := cursor.fetchmany(page or PAGE):
                yield name, rows, conn
    finally:
        conn.close()


def _stored_pages(trail, query: str, log: str | None, page: int, lines: bool) -> Iterator[tuple[bytes, list[int], str]]:
    """(the text of a page's entries, vault values joined; their indexes; the log) of each page on a SQLite
    store: a JSON array, or JSONL lines with ``index`` first. SQLite reads and concatenates each page in a
    thread of its own (``read_ahead``) while this one joins the values of the page before, on a
    connection of its own, with one cache of values for the whole export."""
    node, logs = _prepared(trail, query, log)
    path = trail.store.path
    vault, conn = VaultValues(), read_only(path)
    try:
        for text, found, name in read_ahead(lambda: _raw_pages(path, node, logs, page, lines)):
            yield vault.reveal_text(conn, text), found, name
    finally:
        conn.close()


def _raw_pages(path: str, node, logs: list[str], page: int, lines: bool) -> Iterator[tuple[bytes, list[int], str]]:
    """The same pages as they are stored (commitments not yet joined), read in the calling thread."""
    reader = StoredPages(path, lines=lines)
    try:
        for name, rows, _ in _sqlite_rows(path, node, logs, page, "e.idx"):
            text, found = reader.read(name, [idx for (idx,) in rows])
            yield text, found, name
    finally:
        reader.close()


def _matching_pg(store, node, logs: list[str], page: int | None):
    """The same on PostgreSQL: the search tables brought up to date, then one server-side cursor per log
    over the query compiled as search_pg compiles it (so an export holds no more than a page)."""
    from trailseal.query import index_pg, search_pg

    index_pg.refresh(store)
    where, params = search_pg.to_sql(node, datetime.now(UTC))
    conn = store._conn()
    reader = store_reader(store)
    for name in logs:
        with conn.transaction(), conn.cursor(name="trailseal_export") as cursor:
            cursor.execute(f"SELECT e.idx, e.data FROM entries e WHERE e.log = %s AND {where} ORDER BY e.idx",
                           [name, *params])
            while rows := cursor.fetchmany(page or PAGE):
                yield name, [(idx, bytes(data)) for idx, data in rows], reader


class _PgReader:
    """What an export reads beside the entries (vault values, checkpoints), on PostgreSQL, with SQLite's
    ``?`` marks."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()):
        return self.conn.execute(sql.replace("?", "%s"), list(params))


def store_reader(store):
    """A connection to read the store's tables with SQLite-style SQL, on either store."""
    if on_postgres(store):
        return _PgReader(store._conn())
    return index.connection(store)


def _reader(path: str) -> sqlite3.Connection:
    conn = read_only(path)
    conn.create_function("ts_ip_key", 1, index.ip_key, deterministic=True)
    return conn


def revealed_pages(
    trail, query: str, log: str | None = None, page: int | None = None
) -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    """(log, [(index, JSON text)...]) with vault values joined, a page at a time."""
    vault = VaultValues()
    for name, rows, conn in _matching(trail, query, log, page):
        yield name, vault.reveal(conn, rows)


def pages(
    trail, query: str, log: str | None = None, page: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The matching events with vault values joined (each with its `log` and `index`), a page at a time."""
    for name, rows in revealed_pages(trail, query, log, page):
        events = []
        for position, data in rows:
            event = _decode(data)
            event["log"], event["index"] = name, position
            events.append(event)
        yield events


def join_values(data: bytes, values: dict[bytes, str]) -> bytes:
    """Sealed JSON text with each known commitment (``pd:<hex>`` as bytes) replaced by its value."""
    if b"pd:" not in data:
        return data

    def value(match: re.Match) -> bytes:
        found = values.get(match.group(0))
        return match.group(0) if found is None else _encode(found)[1:-1]

    return _COMMITMENT.sub(value, data)


# -- line formats ----------------------------------------------------------------------------------
def jsonl_lines(events: list[dict[str, Any]]) -> bytes:
    return b"".join(_encode(event) + b"\n" for event in events)


def ecs_lines(events: list[dict[str, Any]]) -> bytes:
    return b"".join(_encode(ecs.to_ecs(event)) + b"\n" for event in events)


def ocsf_lines(events: list[dict[str, Any]]) -> bytes:
    return b"".join(_encode(ocsf.compact(ocsf.to_ocsf(event))) + b"\n" for event in events)


def csv_header() -> bytes:
    return (",".join(CSV_COLUMNS) + "\r\n").encode()


def csv_lines(events: list[dict[str, Any]]) -> bytes:
    """CSV rows; a text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for event in events:
        writer.writerow([_cell(_column(event, name)) for name in CSV_COLUMNS])
    return buffer.getvalue().encode()


def _column(event: dict[str, Any], name: str) -> Any:
    head, _, tail = name.partition(".")
    value = event.get(head)
    if tail:
        value = (value or {}).get(tail)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


LINES: dict[str, Callable[[list[dict[str, Any]]], bytes]] = {
    "jsonl": jsonl_lines,
    "ecs": ecs_lines,
    "ocsf": ocsf_lines,
    "csv": csv_lines,
}


def stream(
    trail,
    query: str,
    fmt: str,
    log: str | None = None,
    class_uid: int | None = None,
    counter: ExportResult | None = None,
) -> Iterator[bytes]:
    """A line format as chunks of bytes (one per page), for files and HTTP streaming responses."""
    check_format(fmt)
    if fmt not in LINES:
        raise ExportError(f"{fmt} is written one file per OCSF class into a directory, not streamed")
    counter = counter if counter is not None else ExportResult()
    if fmt == "csv":
        yield csv_header()
    if fmt == "jsonl" and class_uid is None:
        yield from _jsonl_stream(trail, query, log, counter)
        return
    for events in pages(trail, query, log):
        if class_uid is not None:
            events = [e for e in events if ocsf.class_of(e) == class_uid]
        counter.rows += len(events)
        if events:
            yield LINES[fmt](events)


def _jsonl_stream(trail, query: str, log: str | None, counter: ExportResult) -> Iterator[bytes]:
    """JSONL straight from the sealed JSON text: ``index`` goes in first (SQLite writes each page's lines),
    vault values are joined into the page's text, nothing is decoded or re-encoded."""
    if not on_postgres(trail.store):
        for text, found, _ in _stored_pages(trail, query, log, PAGE, lines=True):
            counter.rows += len(found)
            yield text
        return
    vault = VaultValues()
    for _, rows, conn in _matching(trail, query, log, None):
        counter.rows += len(rows)
        yield vault.reveal_text(conn, b"".join(map(jsonl_line, rows)))


# -- one file per OCSF class -----------------------------------------------------------------------
class ClassFiles:
    """OCSF records split by class into ``<dir>/<class_uid>_<name>.ocsf.jsonl`` or ``.parquet``.

    Each page's records become Arrow batches at once (few Python objects stay alive, so the garbage
    collector stays cheap); a class's batches are written as one row group once PARQUET_ROWS gather, by a
    thread of its own (Arrow encodes and compresses without the GIL, so the exporter goes on reading and
    joining pages meanwhile: a quarter of its work), in the order they came.
    """

    def __init__(self, directory: Path, parquet: bool):
        self.directory, self.parquet = directory, parquet
        self.batches: dict[int, list[Any]] = {}
        self.pending: dict[int, int] = {}
        self.writers: dict[int, Any] = {}
        self.files: dict[int, Path] = {}
        self.counts: dict[int, int] = {}
        self.writing: deque[Future] = deque()  # row groups handed to the writer thread, oldest first
        self.writer_thread: ThreadPoolExecutor | None = None

    def write(self, events: list[dict[str, Any]]) -> None:
        """OCSF JSON lines of a page's events, each to its class's file."""
        by_class: dict[int, list[dict[str, Any]]] = {}
        for event in events:
            record = ocsf.to_ocsf(event)
            by_class.setdefault(record["class_uid"], []).append(record)
        for uid, records in by_class.items():
            self.counts[uid] = self.counts.get(uid, 0) + len(records)
            self.touch(uid)
            self.writers[uid].write(b"".join(_encode(ocsf.compact(r)) + b"\n" for r in records))

    def write_batches(self, batches: dict[int, Any]) -> None:
        """A page's Arrow record batches (``ocsf_arrow.page_batches``), each to its class's file."""
        for uid, batch in batches.items():
            self.counts[uid] = self.counts.get(uid, 0) + batch.num_rows
            self.touch(uid)
            self.batches.setdefault(uid, []).append(batch)
            self.pending[uid] = self.pending.get(uid, 0) + batch.num_rows
            if self.pending[uid] >= PARQUET_ROWS:
                self._flush(uid)

    def _flush(self, uid: int) -> None:
        import pyarrow as pa

        batches = self.batches.pop(uid, None)
        self.pending[uid] = 0
        if not batches:
            return
        if self.writer_thread is None:
            self.writer_thread = ThreadPoolExecutor(1, thread_name_prefix="trailseal-parquet")
        self.writing.append(self.writer_thread.submit(self.writers[uid].write_table, pa.Table.from_batches(batches)))
        while len(self.writing) > WRITES_AHEAD:  # at most this many row groups wait in memory
            self.writing.popleft().result()

    def touch(self, uid: int) -> None:
        """Create the class's file (with its schema) even if no event of the class came."""
        if uid not in self.writers:
            self.files[uid] = self.directory / (
                ocsf.file_stem(uid) + (".parquet" if self.parquet else ".ocsf.jsonl")
            )
            self.writers[uid] = self._open(uid)

    def _open(self, uid: int):
        if not self.parquet:
            return open(self.files[uid], "wb")  # noqa: SIM115 - closed in close()
        import pyarrow.parquet as pq

        from trailseal.query import ocsf_arrow

        return pq.ParquetWriter(self.files[uid], arrow_schema(uid), **ocsf_arrow.parquet_options(uid))

    def close(self) -> list[Path]:
        """Write what is left and close every file (the first error writing raised, once all have ended)."""
        try:
            for uid in list(self.batches):
                self._flush(uid)
        finally:
            self._wait()
        for writer in self.writers.values():
            writer.close()
        return [self.files[uid] for uid in sorted(self.files)]

    def abort(self) -> None:
        """After an error: end the writer thread and close the files, raising nothing more."""
        try:
            self._wait()
        except Exception:  # noqa: BLE001, S110 - the error that stopped the export is the one raised
            pass
        for writer in self.writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001, S110 - as above
                pass

    def _wait(self) -> None:
        """Wait for every row group handed to the writer thread, then end it; raise the first error."""
        errors = [error for future in self.writing if (error := future.exception()) is not None]
        self.writing.clear()
        if self.writer_thread is not None:
            self.writer_thread.shutdown()
            self.writer_thread = None
        if errors:
            raise errors[0]


def arrow_schema(class_uid: int):
    """The pyarrow schema of a class's records (ocsf.shape)."""
    from trailseal.query import ocsf_arrow  # pyarrow loads only when Parquet is asked for

    return ocsf_arrow.arrow_schema(class_uid)


# -- to files --------------------------------------------------------------------------------------
def export_to(
    trail,
    query: str,
    fmt: str,
    out: Path,
    log: str | None = None,
    progress: Callable[[int], None] | None = None,
    class_uid: int | None = None,
) -> ExportResult:
    """Write an export: a file for line formats, a directory of per-class files for OCSF."""
    check_format(fmt)
    parse(query)  # a bad query fails before anything is created
    if fmt in PER_CLASS:
        return _export_classes(trail, query, out, fmt == "ocsf-parquet", log, progress, class_uid)
    result = ExportResult(files=[out])
    with _create(out) as sink:
        try:
            for chunk in stream(trail, query, fmt, log, class_uid, counter=result):
                sink.write(chunk)
                if progress is not None:
                    progress(result.rows)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    return result


def _create(out: Path) -> BinaryIO:
    try:
        return open(out, "xb")  # noqa: SIM115 - the caller's with closes it
    except FileExistsError:
        raise ExportError(f"{out} already exists: choose another --out or remove it first") from None
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror}") from None


def _export_classes(
    trail,
    query: str,
    out: Path,
    parquet: bool,
    log: str | None,
    progress: Callable[[int], None] | None,
    class_uid: int | None = None,
) -> ExportResult:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(
            f"{out} exists and is not an empty directory: OCSF exports write one file per class"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out}: {exc.strerror}") from None
    files = ClassFiles(out, parquet)
    result = ExportResult()
    try:
        for count in (_write_columns if parquet else _write_lines)(trail, query, log, class_uid, files):
            result.rows += count
            if progress is not None:
                progress(result.rows)
    except BaseException:
        files.abort()
        raise
    if class_uid is not None:
        files.touch(class_uid)  # the one class asked for gets its file, empty or not
    result.files = files.close()
    result.classes = dict(sorted(files.counts.items()))
    return result


def _write_lines(trail, query: str, log: str | None, class_uid: int | None, files: ClassFiles) -> Iterator[int]:
    """OCSF JSON: each page's events written; yields how many."""
    for events in pages(trail, query, log):
        if class_uid is not None:
            events = [e for e in events if ocsf.class_of(e) == class_uid]
        files.write(events)
        yield len(events)


def _write_columns(
    trail, query: str, log: str | None, class_uid: int | None, files: ClassFiles
) -> Iterator[int]:
    """OCSF Parquet: pages built column by column per class in worker processes (or here, when none is
    free: ``ocsf_workers.batches_in_order``), written here in order; yields how many. This process reads
    each page with its vault values joined (on SQLite as one text from the store, ``StoredPages``), so
    one cache meets every page: values recur across pages (an actor's id, an address it came from)."""
    from trailseal.query import ocsf_workers

    path = None if on_postgres(trail.store) else trail.store.path
    built = ocsf_workers.batches_in_order(_parquet_pages(trail, query, log, path), parquet_workers(), class_uid)
    while True:
        with paused_gc():  # a page's objects live briefly and hold no cycles: no collections while they do
            batches = next(built, None)
            if batches is None:
                return
            files.write_batches(batches)
        yield sum(batch.num_rows for batch in batches.values())


def _parquet_pages(trail, query: str, log: str | None, path: str | None) -> Iterator[tuple[bytes, list[int], str]]:
    """(JSON array text of the entries, vault values joined; their indexes; the log) of each page."""
    if path is None:  # PostgreSQL
        vault = VaultValues()
        for name, rows, conn in _matching(trail, query, log, PARQUET_PAGE):
            positions, entries = zip(*rows, strict=True)
            yield vault.reveal_text(conn, b"[%b]" % b",".join(entries)), list(positions), name
        return
    yield from _stored_pages(trail, query, log, PARQUET_PAGE, lines=False)


def parquet_workers() -> int:
    """Worker processes for OCSF Parquet: PARQUET_WORKERS, else one per CPU this process may use (at most
    4; none on one CPU). This process reads the pages, joins their vault values and writes the files (about
    half the work), and builds pages too when no worker is free, so a worker per CPU keeps every CPU busy
    (1M default-policy events on 2 CPUs: 86-90k/s with 2 workers, 71-72k/s with 1, 78-87k/s with 3)."""
    if PARQUET_WORKERS is not None:
        return PARQUET_WORKERS
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, 4)


# -- who exported what -----------------------------------------------------------------------------
def export_event(by: str, query: str, fmt: str, rows: int, time: str, **extra: Any) -> dict[str, Any]:
    """The meta-log event recording an export (PCI DSS 10.2.1.3: who read which audit records)."""
    return {
        "log": "trailseal",
        "time": time,
        "category": "data_access",
        "action": "trailseal.export",
        "outcome": "success",
        "actor": {"id": by, "type": "service"},
        "source": {"component": "trailseal", "kind": "trailseal", "format": "trailseal"},
        "attributes": {
            "query": query,
            "format": fmt,
            "rows": rows,
            **{k: v for k, v in extra.items() if v is not None},
        },
    }

"""Follow log files into the sealed log, across restarts and rotation, losing and duplicating nothing.

Each file is read from its last committed offset; the offset is written to ``state_path`` (atomically,
fsynced) only after the events read up to it are durably sealed. A record without an id of its own
gets ``tail:<file identity>:<offset>``, so what is read again after a crash (sealed, but the offset not
yet saved) dedupes instead of sealing twice. The file identity is (device, inode, generation, a hash
of the file's first bytes); the generation goes up each time the file is truncated in place.

Rotation, like ``tail -F``:

- rename (logrotate's default, ``create``): the old file is kept open and read to its end — for
  ``rotate_grace`` seconds after the new file appears, since writers reopen late — then closed;
- copytruncate: the truncation is seen (the file shrank or its first bytes changed); the rest of the
  old content is read from the copy (a sibling such as ``app.log.1`` whose first bytes match), then
  the file is read again from 0 as a new generation;
- either one while trailseal was stopped: the old file is found beside the new one by inode or by its
  first bytes and read from the saved offset first.

Records are lines; ``syslog`` and ``pgaudit`` join continuation lines (leading space or tab; quoted
newlines in csvlog), waiting ``settle`` seconds for a record's last continuation. Compressed
rotations (``.gz``...) are not read: rotate with ``delaycompress`` so the first rotation stays plain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from trailseal import formats
from trailseal.datadir import Trail
from trailseal.event import EventError, Sealable
from trailseal.formats import FormatError
from trailseal.pipeline import Overloaded
from trailseal.receivers.intake import (
    Rejection,
    Stats,
    count,
    meta_item,
    per_log,
    reason_of,
    rejected_bytes,
    rejection_event,
    sealable,
)

log = logging.getLogger("trailseal.receivers.tail")
FP_BYTES = 1024
READ_SIZE = 1 << 20
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4")
CONTINUED = frozenset({"syslog", "pgaudit"})
_PG_CSV = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? ?[A-Za-z0-9+:-]*,")


@dataclass(frozen=True)
class Identity:
    """What names one file's content for ids: device, inode, generation and a hash of its head."""

    dev: int
    ino: int
    gen: int
    fp: str
    fp_len: int

    @property
    def key(self) -> str:
        text = f"{self.dev}:{self.ino}:{self.gen}:{self.fp}:{self.fp_len}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class Source:
    """One open file being read: where it is, whose content it holds, and the committed offset."""

    path: str
    file: BinaryIO
    dev: int
    ino: int
    identity: Identity
    offset: int
    final_at: float | None = None  # set once rotated away: read to the very end after this time
    skipping: bool = False  # inside a line longer than READ_SIZE
    size_seen: int = -1
    changed_at: float = field(default_factory=time.monotonic)

    def is_final(self, now: float) -> bool:
        return self.final_at is not None and now >= self.final_at

    def saved(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "identity": asdict(self.identity),
            "offset": self.offset,
        }

    def close(self) -> None:
        self.file.close()


def head_hash(file: BinaryIO, length: int) -> str:
    """SHA-256 of a file's first ``length`` bytes."""
    return hashlib.sha256(os.pread(file.fileno(), length, 0)).hexdigest()


def open_source(path: str, gen: int = 0) -> Source | None:
    """A new Source at offset 0, or None if the file is gone."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - kept open while followed
    except FileNotFoundError:
        return None
    st = os.fstat(file.fileno())
    fp_len = min(st.st_size, FP_BYTES)
    identity = Identity(st.st_dev, st.st_ino, gen, head_hash(file, fp_len), fp_len)
    return Source(path, file, st.st_dev, st.st_ino, identity, 0)


def restore_source(saved: dict[str, Any], followed: str, final_at: float) -> Source | None:
    """Reopen a saved source: the same file (at its path or renamed beside the followed path), else a
    copy of it (a sibling holding its first bytes and at least its offset)."""
    identity, offset = Identity(**saved["identity"]), saved["offset"]
    for candidate in dict.fromkeys([saved["path"], followed, *siblings(followed)]):
        source = open_source(candidate)
        if (
            source is not None
            and (source.dev, source.ino) == (saved["dev"], saved["ino"])
            and _holds(source, identity, offset)
        ):
            return _adopt(source, identity, offset, final_at)
        if source is not None:
            source.close()
    for candidate in siblings(followed):
        source = open_source(candidate)
        if source is not None and _is_copy(source, identity, offset):
            return _adopt(source, identity, offset, final_at)
        if source is not None:
            source.close()
    return None


def _holds(source: Source, identity: Identity, offset: int) -> bool:
    """True if the file still has the content (head and length) this identity and offset describe."""
    size = os.fstat(source.file.fileno()).st_size
    return size >= offset and head_hash(source.file, identity.fp_len) == identity.fp


def _is_copy(source: Source, identity: Identity, offset: int) -> bool:
    return identity.fp_len > 0 and _holds(source, identity, offset)


def _adopt(source: Source, identity: Identity, offset: int, final_at: float | None) -> Source:
    source.identity, source.offset, source.final_at = identity, offset, final_at
    return source


def siblings(path: str) -> list[str]:
    """Rotated versions of a file beside it (``app.log.1``, ``app.log-20240101``), newest first."""
    base = Path(path)
    try:
        names = [
            p
            for p in base.parent.iterdir()
            if p.name != base.name and p.name.startswith(base.name) and not p.name.endswith(COMPRESSED)
        ]
    except OSError:
        return []
    return [str(p) for p in sorted(names, key=lambda p: p.stat().st_mtime, reverse=True) if p.is_file()]


def _inode(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return st.st_dev, st.st_ino


class Follower:
    """One followed path: the current file and the rotated ones still being read."""

    def __init__(self, path: str, saved: dict[str, Any] | None, grace: float):
        self.path, self.grace = path, grace
        self.current: Source | None = None
        self.draining: list[Source] = []
        self.saved_current = (saved or {}).get("current")
        for entry in (saved or {}).get("draining", []):
            self._restore_old(entry)
        self.known = {_inode(p) for p in siblings(path)}  # rotated before we started: not ours to read

    def sources(self) -> list[Source]:
        """Oldest content first: rotated files, then the current one."""
        return [*self.draining, *([self.current] if self.current else [])]

    def saved(self) -> dict[str, Any]:
        return {
            "current": self.current.saved() if self.current else self.saved_current,
            "draining": [s.saved() for s in self.draining],
        }

    def refresh(self) -> None:
        """Notice a new, renamed or truncated file and arrange to read everything exactly once."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # renamed and not yet recreated: go on reading the old file
        current = self.current
        if current is None:
            self._open_current()
        elif (st.st_dev, st.st_ino) != (current.dev, current.ino):
            current.final_at = time.monotonic() + self.grace
            self.draining.append(current)
            self.current = None
            self._open_current()
            self._adopt_missed()
        elif self._truncated(current, st.st_size):
            self._truncate(current)

    def _adopt_missed(self) -> None:
        """Files that were current and rotated away between two polls (two rotations in one interval):
        siblings with an inode never seen before, read from their start, oldest first."""
        ours = {(s.dev, s.ino) for s in self.sources()}
        for path in sorted(siblings(self.path), key=lambda p: os.stat(p).st_mtime):
            inode = _inode(path)
            if inode not in self.known and inode not in ours:
                missed = open_source(path)
                if missed is not None:
                    missed.final_at = time.monotonic() + self.grace
                    self.draining.append(missed)
        self.known |= {_inode(p) for p in siblings(self.path)} | ours

    def _truncated(self, source: Source, size: int) -> bool:
        if size < source.offset:
            return True
        length = source.identity.fp_len
        return length > 0 and size >= length and head_hash(source.file, length) != source.identity.fp

    def _truncate(self, source: Source) -> None:
        """copytruncate: read the rest of the old content from its copy, then start a new generation."""
        if source.offset > 0:
            copy = self._find_copy(source.identity, source.offset)
            if copy is None:
                log.warning(
                    "tail: %s was truncated; no rotated copy holds bytes after offset %d",
                    self.path,
                    source.offset,
                )
            else:
                self.draining.append(copy)
        fresh = open_source(self.path, source.identity.gen + 1)
        source.close()
        self.current = fresh
        self.known |= {_inode(p) for p in siblings(self.path)}  # the copies: read above, or older

    def _find_copy(self, identity: Identity, offset: int) -> Source | None:
        for candidate in siblings(self.path):
            source = open_source(candidate)
            if source is not None and _is_copy(source, identity, offset):
                return _adopt(source, identity, offset, 0.0)
            if source is not None:
                source.close()
        return None

    def _open_current(self) -> None:
        """Open the file at the path, resuming from the saved offset when it is the same content."""
        source = open_source(self.path)
        if source is None:
            return
        saved, self.saved_current = self.saved_current, None
        if saved is not None:
            identity = Identity(**saved["identity"])
            if (source.dev, source.ino) == (saved["dev"], saved["ino"]) and _holds(
                source, identity, saved["offset"]
            ):
                _adopt(source, identity, saved["offset"], None)
            else:
                self._restore_old(saved)
                if (source.dev, source.ino) == (identity.dev, identity.ino):
                    source.identity = Identity(
                        source.dev, source.ino, identity.gen + 1, source.identity.fp, source.identity.fp_len
                    )
        self.current = source

    def _restore_old(self, saved: dict[str, Any]) -> None:
        old = restore_source(saved, self.path, 0.0)
        if old is None:
            log.warning(
                "tail: the file read from %s (offset %d) is gone; bytes after it may be lost",
                saved["path"],
                saved["offset"],
            )
        elif self.current is not None and (old.dev, old.ino) == (self.current.dev, self.current.ino):
            old.close()
        else:
            self.draining.append(old)


@dataclass
class Chunk:
    """Records read from one source: (start offset, bytes) each, and the offset after the last."""

    source: Source
    records: list[tuple[int, bytes]]
    end: int
    refused: list[Rejection] = field(default_factory=list)


class Tailer:
    """Follow paths with one format and seal what they hold (see the module docstring)."""

    def __init__(
        self,
        trail: Trail,
        paths: list[str],
        format: str,
        state_path: str | os.PathLike,
        *,
        ctx: dict[str, Any] | None = None,
        log_name: str = "default",
        batch: int = 2000,
        rotate_grace: float = 1.0,
        settle: float = 1.0,
        metrics: Any = None,
    ):
        self.trail, self.format, self.module = trail, format, formats.get(format)
        self.ctx, self.log_name, self.batch, self.settle, self.metrics = (
            dict(ctx or {}),
            log_name,
            batch,
            settle,
            metrics,
        )
        self.state_path = Path(state_path)
        self.stats = Stats()
        saved = self._load()
        self.followers = [Follower(str(p), saved.get(str(p)), rotate_grace) for p in paths]

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text("utf-8"))["files"]
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{self.state_path} is not a tail state file: {exc}") from None

    def save(self) -> None:
        """Write every offset atomically: temp file, fsync, rename, fsync the directory."""
        data = json.dumps({"version": 1, "files": {f.path: f.saved() for f in self.followers}}, indent=1)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.state_path)
        fd = os.open(self.state_path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def run(self, stop: threading.Event | None = None, *, once: bool = False, poll: float = 0.25) -> Stats:
        """Follow until ``stop`` is set (or, with ``once``, until everything present now is sealed)."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                self.step(once=once)
                if once:
                    break
                stop.wait(poll)
        finally:
            self.close()
        return self.stats

    def step(self, *, once: bool = False) -> None:
        """One pass: notice rotations, then seal everything readable, oldest content first."""
        for follower in self.followers:
            follower.refresh()
            for source in follower.sources():
                self._drain(follower, source, once)

    def _drain(self, follower: Follower, source: Source, once: bool) -> None:
        while True:
            chunk = self._read(source, once)
            if chunk.end == source.offset and not chunk.records:
                break
            self._seal(chunk)
            source.offset = chunk.end
            self.save()
        now = time.monotonic()
        if source in follower.draining and (once or source.is_final(now)) and self._at_end(source):
            follower.draining.remove(source)
            source.close()
            self.save()

    def _at_end(self, source: Source) -> bool:
        return os.fstat(source.file.fileno()).st_size <= source.offset

    def _read(self, source: Source, once: bool) -> Chunk:
        """The next complete records of a source, at most ``batch`` of them."""
        data = os.pread(source.file.fileno(), READ_SIZE, source.offset)
        self._fingerprint(source, data)
        now = time.monotonic()
        if len(data) != source.size_seen:
            source.size_seen, source.changed_at = len(data), now
        final = source.is_final(now)  # rotated away: its unterminated last line is complete
        if source.skipping or (b"\n" not in data and len(data) == READ_SIZE):
            return self._skip_long(source, data)
        end = len(data) if final and len(data) < READ_SIZE else data.rfind(b"\n") + 1
        settled = once or final or now - source.changed_at >= self.settle
        records, accounted = group(data[:end], source.offset, self._mode(data), settled=settled, final=final)
        if len(records) > self.batch:
            accounted = records[self.batch].start
            records = records[: self.batch]
        return Chunk(source, [(r.start, r.raw) for r in records], accounted)

    def _fingerprint(self, source: Source, data: bytes) -> None:
        """Give a file that was empty when opened the identity of its first bytes, taken from the very bytes
        read (a size looked up before the read can be stale: the writer may append in between)."""
        if source.identity.fp_len == 0 and source.offset == 0 and data:
            head = data[:FP_BYTES]
            source.identity = replace(source.identity, fp=hashlib.sha256(head).hexdigest(), fp_len=len(head))

    def _skip_long(self, source: Source, data: bytes) -> Chunk:
        """Reject a line longer than READ_SIZE, up to and including its LF (or up to the end of what is
        written so far), as one rejection identified by its SHA-256."""
        digest, size, fd = hashlib.sha256(), 0, source.file.fileno()
        while data:
            newline = data.find(b"\n")
            part = data[: newline + 1] if newline >= 0 else data
            digest.update(part)
            size += len(part)
            if newline >= 0:
                break
            data = os.pread(fd, READ_SIZE, source.offset + size)
        source.skipping = newline < 0
        rejection = Rejection(
            source.offset, f"line longer than {READ_SIZE} bytes", None, digest.hexdigest(), size
        )
        return Chunk(source, [], source.offset + size, [rejection])

    def _mode(self, data: bytes) -> str:
        if self.format == "pgaudit" and _PG_CSV.match(data):
            return "csv"
        return "continued" if self.format in CONTINUED else "lines"

    def _seal(self, chunk: Chunk) -> None:
        """Seal a chunk's events (and a note of its rejections) and wait until they are durable."""
        items, refused = self._normalize(chunk)
        size = max(1, self.trail.sealer.max_queue_events)
        for start in range(0, len(items), size):
            self._seal_slice(items[start : start + size])
        events = [i for i in items if i.log != "trailseal" or i.event.action != "trailseal.ingest.rejected"]
        self.stats.records += len(chunk.records) + len(chunk.refused)
        self.stats.sealed += len(events)
        self.stats.reject(refused)
        count(self.metrics, per_log(events), refused, "tail")

    def _seal_slice(self, items: list[Sealable]) -> None:
        """Seal and wait, waiting (not dropping) while the sealer's queue is full."""
        delay = 0.01
        while True:
            try:
                self.trail.sealer.seal(items)
                return
            except Overloaded:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _normalize(self, chunk: Chunk) -> tuple[list[Sealable], list[Rejection]]:
        received = self.trail.clock()
        source, items, refused = chunk.source, [], list(chunk.refused)
        for start, raw in chunk.records:
            try:
                events = self._parse(raw)
            except Exception as exc:  # noqa: BLE001 - see reason_of
                refused.append(rejected_bytes(start, reason_of(exc), raw))
                continue
            for n, event in enumerate(events):
                try:
                    items.append(
                        self._sealable(event, source, start, n if len(events) > 1 else None, received)
                    )
                except EventError as exc:
                    refused.append(rejected_bytes(start, exc.reason, raw))
        if refused:
            note = rejection_event(
                "tail",
                refused,
                {"id": "tail", "type": "service"},
                received,
                path=source.path,
                format=self.format,
            )
            first = chunk.records[0][0] if chunk.records else source.offset
            note["id"] = f"tail-rejected:{source.identity.key}:{first}"
            item = meta_item(self.trail.protection, note, received)
            items.extend([item] if item else [])
        return items, refused

    def _parse(self, raw: bytes) -> list[dict[str, Any]]:
        """A record's events; for batch formats, the good items of a record that also has bad ones."""
        batch = getattr(self.module, "parse_batch", None)
        if batch is None:
            return self.module.parse(raw, **self.ctx)
        events, rejected = batch(raw, **self.ctx)
        if rejected and not events:
            index, reason = rejected[0]
            raise FormatError(f"item {index}: {reason}")
        return events

    def _sealable(
        self, event: dict[str, Any], source: Source, start: int, n: int | None, received: str
    ) -> Sealable:
        if "id" not in event:
            event["id"] = f"tail:{source.identity.key}:{start}" + (f":{n}" if n is not None else "")
        event.setdefault("log", self.log_name)
        event.setdefault("attributes", {}).update({"log.file.path": source.path, "log.file.offset": start})
        return sealable(self.trail.protection, event, received)

    def close(self) -> None:
        for follower in self.followers:
            for source in follower.sources():
                with contextlib.suppress(OSError):
                    source.close()


@dataclass
class Record:
    """One record of a file: where it starts, where its last line ends, and its bytes (no final LF)."""

    start: int
    end: int
    raw: bytes


def group(data: bytes, base: int, mode: str, *, settled: bool, final: bool) -> tuple[list[Record], int]:
    """The records in ``data`` (read from offset ``base``) and the offset up to which it is accounted for.

    ``lines``: each non-blank line; ``continued``: lines starting with space or tab join the record
    before; ``csv``: a record ends at a newline outside double quotes. A record that may still grow
    (not ``settled``, or an open quote before the file is ``final``) is left for a later read."""
    records: list[Record] = []
    pos = quotes = 0
    for line in data.splitlines(keepends=True):
        start, pos = base + pos, pos + len(line)
        body = line.rstrip(b"\r\n")
        last = records[-1] if records else None
        joins = (
            last is not None
            and last.end == start
            and ((mode == "continued" and body[:1] in (b" ", b"\t")) or (mode == "csv" and quotes % 2 == 1))
        )
        if joins:
            last.raw += b"\n" + body
            last.end = base + pos
            quotes += body.count(b'"')
        elif body.strip():
            records.append(Record(start, base + pos, body))
            quotes = body.count(b'"')
    held = records and (
        (mode != "lines" and not settled) or (mode == "csv" and quotes % 2 == 1 and not final)
    )
    if held:
        return records, records.pop().start
    return records, base + len(data)


def tail(
    trail: Trail,
    paths: list[str | os.PathLike],
    format: str,
    state_path: str | os.PathLike,
    *,
    stop: threading.Event | None = None,
    once: bool = False,
    poll: float = 0.25,
    **options: Any,
) -> Stats:
    """Follow ``paths`` with a :mod:`trailseal.formats` format until ``stop`` is set (or once)."""
    tailer = Tailer(trail, [str(p) for p in paths], format, state_path, **options)
    return tailer.run(stop, once=once, poll=poll)


class TailThread:
    """A Tailer on a thread of its own, stopped (after sealing what it read) by ``stop()``."""

    def __init__(
        self,
        trail: Trail,
        paths: list[str | os.PathLike],
        format: str,
        state_path: str | os.PathLike,
        *,
        poll: float = 0.25,
        **options: Any,
    ):
        self.tailer = Tailer(trail, [str(p) for p in paths], format, state_path, **options)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.tailer.run,
            kwargs={"stop": self._stop, "poll": poll},
            name=f"trailseal-tail-{format}",
            daemon=True,
        )

    @property
    def stats(self) -> Stats:
        return self.tailer.stats

    def start(self) -> TailThread:
        self.tailer.trail.sealer  # noqa: B018 - take the writer here, not in a race between threads
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

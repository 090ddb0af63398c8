"""The client's spool: append-only NDJSON segment files that hold every accepted event until the server
has sealed it.

Layout of one spool directory (a *slot*, locked by one process at a time)::

    slot-0/lock                    flock'ed while a client owns the slot
    slot-0/seg-000000000001.ndjson one canonical event per line, appended, fsync'ed per policy
    slot-0/ack                     "<segment> <offset>": everything before it is sealed
    slot-0/rejected.ndjson         events the server refused for good, with its reason

Appends and reads are FIFO, so replay after a restart keeps the order events were logged in; the server
deduplicates by event id, so re-sending what was sealed just before a crash seals nothing twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import zlib
from collections import deque
from pathlib import Path

FSYNC_POLICIES = ("always", "interval", "never")
SEGMENT_GLOB = "seg-*.ndjson"
MAX_LINE = 256 * 1024
ACK_WIDTH = 48


class Batch:
    """Consecutive spooled lines, kept as the one block of bytes they are on disk, and where reading
    stopped (to acknowledge them); ``lines`` splits them only when asked (to halve or reject a batch)."""

    __slots__ = ("data", "count", "segment", "end", "_lines")

    def __init__(self, lines: list[bytes] | None = None, segment: int = 0, end: int = 0, *,
                 data: bytes | None = None, count: int = 0):
        if data is None:
            lines = lines or []
            data, count = b"".join(lines), len(lines)
        self.data, self.count, self.segment, self.end, self._lines = data, count, segment, end, lines

    @property
    def lines(self) -> list[bytes]:
        if self._lines is None:
            self._lines = [line + b"\n" for line in self.data.split(b"\n")[:-1]]
        return self._lines

    def body(self) -> bytes:
        return self.data


def segment_name(number: int) -> str:
    return f"seg-{number:012d}.ndjson"


def fsync_dir(path: Path) -> None:
    """Make a new or renamed file's directory entry durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_slot(root: Path) -> tuple[Path, int]:
    """Lock the first free ``slot-N`` under ``root`` (creating it); returns its path and lock fd."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for number in range(1024):
        path = root / f"slot-{number}"
        path.mkdir(exist_ok=True, mode=0o700)
        fd = try_lock(path)
        if fd is not None:
            return path, fd
    raise RuntimeError(f"no free spool slot under {root}")


def try_lock(slot: Path) -> int | None:
    """The slot's lock fd if no other process holds it, else None."""
    fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def line_block(data: bytes, max_lines: int, limit: int) -> tuple[int, int]:
    """(bytes, lines) of the whole lines at the front of ``data``: at most ``max_lines``, within ``limit``
    bytes but at least one."""
    end = data.rfind(b"\n", 0, limit) + 1 or data.find(b"\n") + 1
    count = data.count(b"\n", 0, end)
    if count <= max_lines:
        return end, count
    return nth_line_end(data, max_lines, end * max_lines // count), max_lines


def nth_line_end(data: bytes, n: int, guess: int) -> int:
    """Where the first ``n`` lines of ``data`` end (past their last newline; ``data`` holds more than ``n``),
    counted from a guess of that place — lines of about one size put it a few lines off, so a few finds,
    not ``n``, get there."""
    seen = data.count(b"\n", 0, guess)
    if seen >= n:  # the n-th newline is before the guess: step back over the later ones
        for _ in range(seen - n + 1):
            guess = data.rfind(b"\n", 0, guess)
        return guess + 1
    end = guess - 1
    for _ in range(n - seen):
        end = data.index(b"\n", end + 1)
    return end + 1


def ack_record(segment: int, offset: int) -> bytes:
    """The ack mark as written in place: "<segment> <offset> <crc32>", padded to a fixed width; a mark
    torn by a crash fails its checksum and is read as "replay the oldest segment" (the server
    deduplicates), never as a wrong offset."""
    mark = f"{segment} {offset}"
    return f"{mark} {zlib.crc32(mark.encode()):08x}\n".ljust(ACK_WIDTH).encode()


def parse_ack(text: str) -> tuple[int, int]:
    """(segment, offset) of an ack record; ValueError if it is torn or garbled."""
    parts = text.split()
    if len(parts) == 3 and f"{zlib.crc32(f'{parts[0]} {parts[1]}'.encode()):08x}" != parts[2]:
        raise ValueError("ack mark fails its checksum")
    if len(parts) not in (2, 3):
        raise ValueError("not an ack mark")
    return int(parts[0]), int(parts[1])


def complete_lines(data: bytes, limit: int, max_lines: int) -> list[bytes]:
    """Whole lines from the front of ``data``: at most ``max_lines``, within ``limit`` bytes but at least one."""
    end = data.rfind(b"\n", 0, limit) + 1 or data.find(b"\n") + 1
    return [line + b"\n" for line in data[:end].split(b"\n", max_lines)[:-1]][:max_lines]


class MemorySpool:
    """The spool interface without a disk: a bounded FIFO in memory (lost if the process dies)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max_bytes
        self.lines: deque[bytes] = deque()
        self.bytes = 0
        self.appended = self.acked = 0
        self.recovered = 0
        self.lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self.appended - self.acked

    def append(self, lines: list[bytes]) -> int:
        """Keep as many lines as fit; returns how many were kept."""
        kept = 0
        with self.lock:
            for line in lines:
                if self.bytes + len(line) > self.max_bytes:
                    break
                self.lines.append(line)
                self.bytes += len(line)
                kept += 1
            self.appended += kept
        return kept

    def read(self, max_lines: int, max_bytes: int) -> Batch:
        with self.lock:
            lines, size = [], 0
            for line in self.lines:
                if len(lines) >= max_lines or (lines and size + len(line) > max_bytes):
                    break
                lines.append(line)
                size += len(line)
        return Batch(lines)

    def ack(self, batch: Batch) -> None:
        with self.lock:
            for _ in range(batch.count):
                self.bytes -= len(self.lines.popleft())
            self.acked += batch.count

    def reject(self, line: bytes, reason: dict) -> None:
        """Nowhere to keep refused events in memory; the client reports them."""

    def close(self) -> None:
        """Nothing to release."""


class Spool(MemorySpool):
    """A bounded on-disk FIFO of NDJSON lines in one locked slot directory."""

    def __init__(self, root: str | os.PathLike, *, max_bytes: int = 256 * 1024 * 1024,
                 segment_bytes: int = 4 * 1024 * 1024, fsync: str = "always", fsync_interval: float = 1.0):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        super().__init__(max_bytes)
        self.root = Path(root)
        self.segment_bytes, self.fsync, self.fsync_interval = segment_bytes, fsync, fsync_interval
        self.path, self.lock_fd = lock_slot(self.root)
        self.sizes: dict[int, int] = {}  # segment number -> bytes written (complete lines only)
        self.ack_at = (0, 0)
        self.fd = -1
        self.last_sync = 0.0
        self.ack_fd = -1
        self.line_size = 1024  # recent lines' mean size: a batch reads about what it needs
        self.recover()
        self.adopt_orphans()
        self.recovered = self.appended

    # -- opening ---------------------------------------------------------------------------------
    def recover(self) -> None:
        """Cut any torn last line, read the ack mark, drop sealed segments and count what is pending."""
        for path in sorted(self.path.glob(SEGMENT_GLOB)):
            self.sizes[int(path.stem[4:])] = path.stat().st_size
        if not self.sizes:
            self.sizes[1] = 0
        last = max(self.sizes)
        self.sizes[last] = self.truncate_torn(self.path / segment_name(last), self.sizes[last])
        self.ack_at = self.read_ack()
        for number in [n for n in self.sizes if n < self.ack_at[0]]:
            self.drop_segment(number)
        self.fd = os.open(self.path / segment_name(last), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.appended = self.count_pending()
        self.bytes = sum(self.sizes.values()) - self.ack_at[1]

    def truncate_torn(self, path: Path, size: int) -> int:
        """Cut bytes after the last newline (a write torn by a crash); returns the new size."""
        if size == 0 or not path.exists():
            return 0
        with open(path, "r+b") as f:
            f.seek(max(0, size - MAX_LINE))
            tail = f.read()
            keep = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
            if keep != size:
                f.truncate(keep)
                os.fsync(f.fileno())
        return keep

    def read_ack(self) -> tuple[int, int]:
        """The ack mark, clamped to the segments that exist."""
        first = min(self.sizes)
        try:
            segment, offset = parse_ack((self.path / "ack").read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return first, 0
        if segment not in self.sizes:
            return (first, 0) if segment < first else (max(self.sizes), self.sizes[max(self.sizes)])
        return segment, min(offset, self.sizes[segment])

    def count_pending(self) -> int:
        """Lines after the ack mark, across all segments."""
        count = 0
        for number in sorted(self.sizes):
            if number < self.ack_at[0]:
                continue
            with open(self.path / segment_name(number), "rb") as f:
                f.seek(self.ack_at[1] if number == self.ack_at[0] else 0)
                while chunk := f.read(1 << 20):
                    count += chunk.count(b"\n")
        return count

    def adopt_orphans(self) -> None:
        """Take over the pending events of slots no live process holds (e.g. fewer workers than before)."""
        for slot in sorted(self.root.glob("slot-*")):
            if slot == self.path or not any(slot.glob(SEGMENT_GLOB)):
                continue
            fd = try_lock(slot)
            if fd is None:
                continue
            try:
                orphan = _Orphan(slot)
                while batch := orphan.read_all():
                    self.append(batch, force=True)
                    orphan.finish()
            finally:
                os.close(fd)

    # -- writing ---------------------------------------------------------------------------------
    def append(self, lines: list[bytes], force: bool = False) -> int:
        """Append lines to the current segment (rotating it when full); returns how many fit."""
        with self.lock:
            kept = len(lines) if force else self.fitting(lines)
            if kept:
                data = b"".join(lines[:kept])
                self.rotate_if_full()
                self.write_all(data)
                self.sizes[max(self.sizes)] += len(data)
                self.bytes += len(data)
                self.appended += kept
                self.sync_by_policy()
        return kept

    def write_all(self, data: bytes) -> None:
        """Write all of ``data`` or, if the disk refuses (full), none of it."""
        view, size = memoryview(data), self.sizes[max(self.sizes)]
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            os.ftruncate(self.fd, size)
            raise

    def fitting(self, lines: list[bytes]) -> int:
        """How many of ``lines`` fit under the size bound."""
        room, kept = self.max_bytes - self.bytes, 0
        if sum(map(len, lines)) <= room:  # all of them (the usual case), summed in C
            return len(lines)
        for line in lines:
            room -= len(line)
            if room < 0:
                break
            kept += 1
        return kept

    def rotate_if_full(self) -> None:
        """Start the next segment once the current one has reached ``segment_bytes``."""
        last = max(self.sizes)
        if self.sizes[last] < self.segment_bytes:
            return
        if self.fsync != "never":
            os.fsync(self.fd)
        os.close(self.fd)
        self.sizes[last + 1] = 0
        self.fd = os.open(self.path / segment_name(last + 1), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.fsync != "never":
            fsync_dir(self.path)

    def sync_by_policy(self) -> None:
        """fsync after a write as the policy says."""
        now = time.monotonic()
        if self.fsync == "always" or (self.fsync == "interval" and now - self.last_sync >= self.fsync_interval):
            os.fsync(self.fd)
            self.last_sync = now

    # -- reading and acknowledging ---------------------------------------------------------------
    def read(self, max_lines: int, max_bytes: int) -> Batch:
        """The oldest unacknowledged lines (from one segment), without consuming them."""
        with self.lock:
            self.skip_finished_segment()
            segment, offset = self.ack_at
            available = self.sizes[segment] - offset
        if available <= 0:
            return Batch([], segment, offset)
        with open(self.path / segment_name(segment), "rb") as f:
            f.seek(offset)
            data = f.read(min(available, max_bytes, max_lines * self.line_size * 5 // 4 + 4096))
            if b"\n" not in data and available > len(data):  # one line longer than that
                data += f.read(min(available - len(data), max(max_bytes, MAX_LINE)))
        size, count = line_block(data, max_lines, max_bytes)
        if count:
            self.line_size = size // count
        return Batch(segment=segment, end=offset + size, data=data[:size], count=count)

    def skip_finished_segment(self) -> None:
        """Move the ack mark past a fully acknowledged segment that is no longer written to."""
        segment, offset = self.ack_at
        while segment < max(self.sizes) and offset >= self.sizes[segment]:
            self.drop_segment(segment)
            segment, offset = segment + 1, 0
            self.ack_at = (segment, offset)
            self.write_ack()

    def ack(self, batch: Batch) -> None:
        """Everything in ``batch`` is sealed (or refused for good): move the mark past it."""
        with self.lock:
            self.ack_at = (batch.segment, batch.end)
            self.acked += batch.count
            self.bytes -= len(batch.data)
            self.write_ack()
            self.skip_finished_segment()

    def write_ack(self) -> None:
        """Overwrite the ack mark in place (not fsync'ed: replaying a little too much is harmless)."""
        if self.ack_fd < 0:
            self.ack_fd = os.open(self.path / "ack", os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self.ack_fd, ack_record(*self.ack_at), 0)

    def drop_segment(self, number: int) -> None:
        """Forget and delete a segment whose events are all sealed."""
        self.sizes.pop(number, None)
        (self.path / segment_name(number)).unlink(missing_ok=True)

    def reject(self, line: bytes, reason: dict) -> None:
        """Keep an event the server refused for good beside the spool, with the server's reason."""
        record = json.dumps({"error": reason, "event": line.decode("utf-8", "replace").rstrip("\n")})
        with open(self.path / "rejected.ndjson", "a", encoding="utf-8") as f:
            f.write(record + "\n")

    def close(self) -> None:
        """fsync, close the segment and release the slot."""
        with self.lock:
            if self.fd >= 0:
                os.fsync(self.fd)
                os.close(self.fd)
                self.fd = -1
            if self.ack_fd >= 0:
                os.close(self.ack_fd)
                self.ack_fd = -1
            if self.lock_fd >= 0:
                os.close(self.lock_fd)
                self.lock_fd = -1


class _Orphan:
    """Read-out of an abandoned slot: its pending lines, then its segments removed."""

    def __init__(self, slot: Path):
        self.slot = slot
        self.segments = sorted(slot.glob(SEGMENT_GLOB))
        try:
            self.mark = parse_ack((slot / "ack").read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            self.mark = (0, 0)

    def read_all(self) -> list[bytes]:
        """Every complete pending line of the next segment ([] when none are left)."""
        while self.segments:
            path = self.segments[0]
            number = int(path.stem[4:])
            data = path.read_bytes()
            if number < self.mark[0]:
                self.finish()
                continue
            data = data[self.mark[1]:] if number == self.mark[0] else data
            lines = complete_lines(data, len(data), len(data))
            if lines:
                return lines
            self.finish()
        return []

    def finish(self) -> None:
        """Remove the segment just read (its lines are now in the adopting spool)."""
        self.segments.pop(0).unlink(missing_ok=True)
        if not self.segments:
            (self.slot / "ack").unlink(missing_ok=True)

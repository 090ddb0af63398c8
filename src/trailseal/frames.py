"""Length-prefixed frames over a pipe: how `serve` and `export` talk to their child processes
(alerts/worker.py, query/ocsf_workers.py)."""

from __future__ import annotations

import fcntl
import struct
from typing import BinaryIO

_LENGTH = struct.Struct("<Q")
PIPE_BYTES = 1024 * 1024  # Linux's default /proc/sys/fs/pipe-max-size
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def widen_pipe(stream: BinaryIO, size: int = PIPE_BYTES) -> None:
    """Let a pipe hold ``size`` bytes instead of Linux's default 64 KiB, so a writer ahead of its reader goes
    on working instead of blocking on a full pipe; where the system refuses, the pipe keeps its size."""
    try:
        fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, size)
    except OSError:
        pass


def write_frames(stream: BinaryIO, frames: list) -> None:
    """Length-prefixed frames (bytes or buffers), then a flush."""
    for data in frames:
        stream.write(_LENGTH.pack(len(data)))
        stream.write(data)
    stream.flush()


def write_frame(stream: BinaryIO, data: bytes) -> None:
    write_frames(stream, [data])


def read_frame(stream: BinaryIO | None) -> bytes | None:
    """One frame, or None at the end of the stream (or a cut-short frame)."""
    head = stream.read(_LENGTH.size) if stream is not None else b""
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None

"""A directory archive target: one read-only file per segment, retention kept in a read-only sidecar.

Retention here is enforced by trailseal and by file modes only: whoever owns the directory (or root)
can still delete. For retention that survives its administrators, use S3 with Object Lock.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path, PurePosixPath

from trailseal.archive import ArchiveError, RetentionLocked, parse_time, rfc3339

RETAIN = ".retain"
HOLD = ".hold"
SIDECARS = (RETAIN, HOLD, ".tmp")


class DirTarget:
    """Segments as files under a root directory."""

    def __init__(self, root: str | os.PathLike):
        """Use (and create) root."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.name = f"dir:{self.root}"

    def _path(self, key: str) -> Path:
        """The file of key; keys are relative POSIX paths without '..'."""
        parts = PurePosixPath(key).parts
        if not parts or key.startswith("/") or ".." in parts or key.endswith(SIDECARS):
            raise ArchiveError(f"bad archive key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, blob: bytes, retain_until: datetime) -> None:
        """Write blob and its retention sidecar, both read-only; refuse an existing key."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_new(path.with_name(path.name + RETAIN), rfc3339(retain_until).encode())
        _write_new(path, blob)

    def get(self, key: str) -> bytes:
        """The blob at key."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ArchiveError(f"{self.name}: no segment {key}") from None

    def keys(self, prefix: str = "") -> list[str]:
        """Every stored key under prefix, sorted."""
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.endswith(SIDECARS):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        return sorted(found)

    def retain_until(self, key: str) -> datetime:
        """When key's retention ends."""
        path = self._path(key)
        return parse_time(path.with_name(path.name + RETAIN).read_text().strip())

    def held(self, key: str) -> bool:
        """Whether key is under legal hold."""
        path = self._path(key)
        return path.with_name(path.name + HOLD).exists()

    def replace(self, key: str, blob: bytes, retain_until: datetime) -> None:
        """Atomically replace key's bytes (rewrap); retention may only grow."""
        path = self._path(key)
        if not path.exists():
            raise ArchiveError(f"{self.name}: no segment {key}")
        if retain_until < self.retain_until(key):
            raise RetentionLocked(f"{key}: retention cannot be shortened")
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        _write_new(tmp, blob)
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def delete(self, key: str, now: datetime) -> None:
        """Delete key once its retention has ended and no hold is on it."""
        path = self._path(key)
        if self.held(key):
            raise RetentionLocked(f"{key} is under legal hold")
        until = self.retain_until(key)
        if now < until:
            raise RetentionLocked(f"{key} is retained until {rfc3339(until)}")
        path.unlink()
        path.with_name(path.name + RETAIN).unlink()
        _fsync_dir(path.parent)

    def set_hold(self, key: str, on: bool) -> None:
        """Place or lift a legal hold (a read-only marker file)."""
        marker = self._path(key).with_name(self._path(key).name + HOLD)
        if on and not marker.exists():
            _write_new(marker, b"legal hold\n")
        elif not on and marker.exists():
            marker.unlink()


def _write_new(path: Path, data: bytes) -> None:
    """Create path (never overwrite) with data, fsync it, and make it read-only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ArchiveError(f"{path} already exists; archive keys are never reused") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o444)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a directory's new or removed names durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

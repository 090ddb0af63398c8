"""The archive: sealed, encrypted segments written to a directory or to S3 with Object Lock.

``Archive`` ties a Target (where blobs live, locked until their retention ends) to a KeyProvider
(master keys). Segments are built and verified by ``segment.py``; ``retention.py`` decides what
goes into them and when.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from trailseal.archive import segment as seg
from trailseal.archive.crypto import DEFAULT_ENV, EnvKeys, FileKeys, KeyProvider
from trailseal.ledger import Verifier


class ArchiveError(RuntimeError):
    """The archive cannot do what was asked (missing segment, misconfigured target)."""


class RetentionLocked(ArchiveError):
    """The target refused to delete or shorten: the blob is under retention or legal hold."""


class Target(Protocol):
    """Where segments live. Every blob is locked against deletion until its retain_until."""

    name: str

    def put(self, key: str, blob: bytes, retain_until: datetime) -> None:
        """Store a new blob, locked until retain_until; never overwrite an existing key."""

    def get(self, key: str) -> bytes:
        """The blob's bytes; ArchiveError if there is none."""

    def keys(self, prefix: str = "") -> list[str]:
        """Keys of stored blobs under prefix, sorted."""

    def replace(self, key: str, blob: bytes, retain_until: datetime) -> None:
        """Store new bytes for key (a rewrapped segment), locked until retain_until."""

    def delete(self, key: str, now: datetime) -> None:
        """Delete every copy of key; RetentionLocked while it is retained or held."""

    def set_hold(self, key: str, on: bool) -> None:
        """Place or lift a legal hold on key (no deletion while on)."""


@dataclass(frozen=True)
class Written:
    """A segment that was written and read back intact."""

    key: str
    manifest: seg.Manifest
    size: int
    leaves: list[bytes]  # leaf hash of each entry written, in order


@dataclass
class RotateReport:
    """What a master-key rotation did."""

    rewrapped: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)


def rfc3339(moment: datetime) -> str:
    """UTC, microseconds, Z."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class Archive:
    """Segments in a target, encrypted under keys; opened segments are cached (LRU)."""

    def __init__(self, target: Target, keys: KeyProvider, *, compression: str = seg.DEFAULT_COMPRESSION,
                 cache: int = 4):
        """Archive into target with master keys from keys."""
        self.target = target
        self.keys = keys
        self.compression = compression
        self._cache: OrderedDict[str, seg.Segment] = OrderedDict()
        self._cache_size = cache
        self._cache_lock = threading.Lock()  # API reads open segments from several threads

    def write(self, log: str, policy: str, rows: Sequence[tuple[int, bytes]], *, checkpoint: str, size: int,
              read_tile: seg.ReadTile, retain_until: datetime, created: datetime) -> Written:
        """Build, store and read back one segment; returns its key."""
        built = seg.build(log, policy, rows, checkpoint=checkpoint, size=size, read_tile=read_tile,
                          retain_until=rfc3339(retain_until), created=rfc3339(created), keys=self.keys,
                          compression=self.compression)
        key = segment_key(log, policy, rows[0][0], rows[-1][0] + 1, created)
        self.target.put(key, built.blob, retain_until)
        if hashlib.sha256(self.target.get(key)).digest() != hashlib.sha256(built.blob).digest():
            raise ArchiveError(f"{self.target.name}: segment {key} did not read back as written")
        return Written(key, seg.read_manifest(built.blob), len(built.blob), built.leaves)

    def open(self, key: str) -> seg.Segment:
        """The decrypted segment at key (kept in a small LRU cache)."""
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            opened = seg.open_segment(self.target.get(key), self.keys)
            self._cache[key] = opened
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return opened

    def verify(self, key: str, verifier: Verifier | Sequence[Verifier]) -> seg.SegmentReport:
        """Verify the segment at key on its own."""
        return seg.verify_segment(self.target.get(key), verifier, self.keys)

    def manifest(self, key: str) -> seg.Manifest:
        """The segment's manifest (read without decrypting)."""
        return seg.read_manifest(self.target.get(key))

    def rotate(self, kek_id: str | None = None, *, on_rewrap: Callable[[str], None] | None = None) -> RotateReport:
        """Rewrap every segment's data key under kek_id (default: current); the data is not re-encrypted."""
        target_kek = kek_id or self.keys.current()
        report = RotateReport()
        for key in self.target.keys():
            blob = self.target.get(key)
            if seg.key_id(blob) == target_kek:
                report.current.append(key)
                continue
            manifest = seg.read_manifest(blob)
            self.target.replace(key, seg.rewrap_segment(blob, self.keys, target_kek),
                                parse_time(manifest.retain_until))
            report.rewrapped.append(key)
            if on_rewrap is not None:
                on_rewrap(key)
        return report

    def delete(self, key: str, now: datetime) -> None:
        """Delete a segment whose retention has ended."""
        with self._cache_lock:
            self._cache.pop(key, None)
        self.target.delete(key, now)

    def set_hold(self, key: str, on: bool) -> None:
        """Place or lift a legal hold on a segment."""
        self.target.set_hold(key, on)


def segment_key(log: str, policy: str, start: int, end: int, created: datetime) -> str:
    """A fresh key: <log>/<policy>/<start>-<end>-<created>-<random>.tseg (never reused)."""
    stamp = created.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{log}/{policy}/{start:012d}-{end:012d}-{stamp}-{secrets.token_hex(4)}.tseg"


def open_keys(conf: Mapping[str, Any], directory: Path) -> KeyProvider:
    """Master keys from `key_file` (relative to the data dir) or `key_env` (default TRAILSEAL_ARCHIVE_KEYS)."""
    if conf.get("key_file"):
        return FileKeys(directory / conf["key_file"])
    return EnvKeys(conf.get("key_env", DEFAULT_ENV), os.environ)


def open_target(conf: Mapping[str, Any], directory: Path) -> Target:
    """The target `[retention.archive]` names: type = "dir" (path) or "s3" (bucket, prefix, endpoint_url...)."""
    kind = conf.get("type", "dir")
    if kind == "dir":
        from trailseal.archive.dir import DirTarget

        return DirTarget(directory / conf.get("path", "archive"))
    if kind == "s3":
        from trailseal.archive.s3 import S3Target

        return S3Target.from_config(conf)
    raise ArchiveError(f"archive type {kind!r}: use 'dir' or 's3'")


def open_archive(conf: Mapping[str, Any], directory: Path) -> Archive:
    """The Archive `[retention.archive]` configures."""
    return Archive(open_target(conf, directory), open_keys(conf, directory),
                   compression=conf.get("compression", seg.DEFAULT_COMPRESSION))


__all__ = [
    "Archive",
    "ArchiveError",
    "RetentionLocked",
    "RotateReport",
    "Target",
    "Written",
    "open_archive",
    "open_keys",
    "open_target",
    "parse_time",
    "rfc3339",
    "segment_key",
]

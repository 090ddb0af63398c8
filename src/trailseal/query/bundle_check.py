"""Verify an evidence bundle offline: no server, no data dir, only the zip (and the keys you trust).

Every problem is collected with the file (and entry) it is about, so a tampered bundle is reported
in full. Hostile zips (not a zip, path traversal, zip bombs, huge members) are refused first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from trailseal.keys import log_origin
from trailseal.ledger import (
    InclusionChecker,
    LedgerError,
    Verifier,
    key_id,
    leaf_hash,
    open_checkpoint,
    parse_proof,
    verify_consistency,
    verify_inclusion,
)
from trailseal.query.bundle import (
    FORMAT,
    checkpoint_name,
    consistency_name,
    key_name,
    proof_name,
)
from trailseal.query.export import join_values

MAX_MEMBERS = 4_000_000
MAX_MEMBER_BYTES = 64 << 20
MAX_TOTAL_BYTES = 8 << 30
DECODED_LINES = 1 << 20  # proof-hash lines kept decoded (about 200 bytes each)
MAX_RATIO = 200  # uncompressed/compressed beyond this (for members over 1 MiB) is a zip bomb
_NAME = re.compile(
    r"(README\.md|manifest\.json|privacy-policy\.txt|seal/export\.(json|tlog-proof)"
    r"|keys/[a-z0-9][a-z0-9._-]{0,62}\.vkey"
    r"|events/[a-z0-9][a-z0-9._-]{0,62}/(0|[1-9][0-9]{0,17})\.json"
    r"|readable/[a-z0-9][a-z0-9._-]{0,62}\.jsonl"
    r"|proofs/[a-z0-9][a-z0-9._-]{0,62}/(0|[1-9][0-9]{0,17})\.tlog-proof"
    r"|checkpoints/[a-z0-9][a-z0-9._-]{0,62}/(0|[1-9][0-9]{0,17})\.checkpoint"
    r"|consistency/[a-z0-9][a-z0-9._-]{0,62}/(0|[1-9][0-9]{0,17})-(0|[1-9][0-9]{0,17})\.txt)"
)
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    zlib.error,
    struct.error,
)
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip member's local file header (APPNOTE 4.3.7)
_ENTRY = re.compile(r"events/([^/]+)/(\d+)\.json")
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")


class BundleError(ValueError):
    """The file cannot be checked at all (not a zip, hostile, no manifest); the message says why."""


@dataclass
class BundleReport:
    """The outcome: problems (each naming its file) and what was verified."""

    path: str
    problems: list[str] = field(default_factory=list)
    events: int = 0
    checkpoints: int = 0
    keys: list[str] = field(default_factory=list)  # the vkeys used
    query: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, name: str, problem: str) -> None:
        self.problems.append(f"{name}: {problem}")


def open_bundle(path: Path) -> zipfile.ZipFile:
    """The zip, once its directory has passed the safety checks."""
    try:
        bundle = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except _ZIP_ERRORS as exc:
        raise BundleError(f"{path} is not a zip evidence bundle ({exc})") from None
    try:
        check_members(bundle.infolist())
    except BundleError:
        bundle.close()
        raise
    return bundle


def check_members(members: list[zipfile.ZipInfo]) -> None:
    """Refuse path traversal, unexpected names, duplicates, encrypted members and zip bombs."""
    if len(members) > MAX_MEMBERS:
        raise BundleError(f"the zip has {len(members)} members; a bundle has at most {MAX_MEMBERS}")
    seen, total = set(), 0
    for info in members:
        name = info.filename
        if not _NAME.fullmatch(name):
            raise BundleError(
                f"unexpected member {name[:200]!r}: not a file an evidence bundle holds "
                "(absolute and '..' paths are refused)"
            )
        if name in seen:
            raise BundleError(f"member {name!r} appears twice")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise BundleError(f"member {name!r} is encrypted")
        if info.file_size > MAX_MEMBER_BYTES:
            raise BundleError(f"member {name!r} is {info.file_size} bytes; the limit is {MAX_MEMBER_BYTES}")
        if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise BundleError(
                f"member {name!r} expands {info.file_size // max(info.compress_size, 1)}x: "
                "refused as a zip bomb"
            )
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise BundleError(f"the zip expands to more than {MAX_TOTAL_BYTES} bytes: refused as a zip bomb")


def read_member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, never more than its declared size (a lying header is an error)."""
    with bundle.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise BundleError(f"member {info.filename!r} does not hold the size its header declares")
    return data


def read_stored(source: BinaryIO, info: zipfile.ZipInfo) -> bytes:
    """A stored (uncompressed) member's bytes, read with zipfile's checks: the local header's signature
    and name, the declared size and the CRC-32."""
    source.seek(info.header_offset)
    head = source.read(_LOCAL_HEADER.size)
    if len(head) != _LOCAL_HEADER.size:
        raise zipfile.BadZipFile(f"truncated local file header for {info.orig_filename!r}")
    (signature, _, _, flags, _, _, _, _, _, _, name_size, extra_size) = _LOCAL_HEADER.unpack(head)
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local file header for {info.orig_filename!r}")
    raw_name = source.read(name_size)
    name = raw_name.decode("ascii" if raw_name.isascii() else "utf-8" if flags & 0x800 else "cp437")
    if name != info.orig_filename:
        raise zipfile.BadZipFile(f"file name in directory {info.orig_filename!r} and header {name!r} differ")
    source.seek(extra_size, 1)
    data = source.read(info.file_size)
    if len(data) != info.file_size:
        raise BundleError(f"member {info.filename!r} does not hold the size its header declares")
    if zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 for member {info.filename!r}")
    return data


def read_members(path: Path, bundle: zipfile.ZipFile) -> dict[str, bytes]:
    """name -> bytes of every member; stored ones (entries, proofs: most of a bundle) read here, in file
    order through one buffer (zipfile's per-member reader costs more than the member), the others by zipfile."""
    with open(path, "rb", buffering=1 << 20) as source:
        return {
            info.filename: read_stored(source, info)
            if info.compress_type == zipfile.ZIP_STORED
            and info.compress_size == info.file_size
            and not info.flag_bits & 0x61  # encrypted, patched, strongly encrypted: zipfile says why
            else read_member(bundle, info)
            for info in bundle.infolist()
        }


def verify_bundle(path: Path, trusted: list[Verifier] | None = None) -> BundleReport:
    """Check a bundle end to end; ``trusted`` keys, when given, must be the ones that signed it."""
    report = BundleReport(str(path))
    with open_bundle(path) as bundle:
        try:
            files = read_members(path, bundle)
        except _ZIP_ERRORS as exc:  # CRC errors, truncated data, unsupported compression
            raise BundleError(f"{path}: a member cannot be read ({exc})") from None
    manifest = _manifest(files)
    report.query = str(manifest.get("query", ""))
    _check_hashes(files, manifest, report)
    verifiers = _keys(files, manifest, trusted, report)
    windows = _windows(manifest, report)
    _check_seal(files, verifiers, windows.get("trailseal", []), report)
    roots = _check_checkpoints(files, manifest, verifiers, windows, report)
    _check_events(files, roots, report)
    return report


def _manifest(files: dict[str, bytes]) -> dict[str, Any]:
    if "manifest.json" not in files:
        raise BundleError("manifest.json is missing: this is not an evidence bundle")
    try:
        manifest = msgspec.json.decode(files["manifest.json"])
    except msgspec.DecodeError as exc:
        raise BundleError(f"manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"manifest.json: not a {FORMAT} manifest")
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("logs"), dict):
        raise BundleError("manifest.json: 'files' and 'logs' must be objects")
    return manifest


def _check_hashes(files: dict[str, bytes], manifest: dict, report: BundleReport) -> None:
    listed = manifest["files"]
    for name, digest in listed.items():
        if name not in files:
            report.fail(name, "listed in manifest.json but missing from the bundle")
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            report.fail(name, "SHA-256 differs from manifest.json: the file was changed")
    for name in files:
        if name not in listed and name not in ("manifest.json", "seal/export.json", "seal/export.tlog-proof"):
            report.fail(name, "not listed in manifest.json: the file was added")


def _keys(
    files: dict[str, bytes], manifest: dict, trusted: list[Verifier] | None, report: BundleReport
) -> dict[str, list[Verifier]]:
    """log -> its keys (one vkey a line: the current one, then rotated-out ones), each checked against
    the trusted keys when given."""
    found = {}
    for log in sorted({*manifest["logs"], "trailseal"}):
        name = key_name(log)
        try:
            keys = [Verifier.from_vkey(line) for line in files[name].decode().split()]
        except KeyError:
            report.fail(name, "missing")
            continue
        except (LedgerError, UnicodeDecodeError) as exc:
            report.fail(name, f"not a verifier key ({exc})")
            continue
        for key in keys:
            if not key.name.endswith("/" + log):
                report.fail(name, f"key name {key.name!r} is not for log {log!r}")
            if trusted is not None and key.public_key not in {
                k.public_key for k in _pinned(trusted, key.name)
            }:
                report.fail(name, f"not a key you trust for {key.name} (bundle key {key.vkey})")
        if trusted is not None:
            keys = [k for key in keys for k in _pinned(trusted, key.name)] or keys
        report.keys.extend(k.vkey for k in keys if k.vkey not in report.keys)
        found[log] = keys
    return found


def _pinned(trusted: list[Verifier], name: str) -> list[Verifier]:
    """The trusted keys under a log's key name: given for that log, or for another log of the same data
    dir (all logs share the key, under per-log names), or the data dir's base key."""
    log = name.rsplit("/", 1)[-1]
    pinned = []
    for key in trusted:
        if key.name == name:
            pinned.append(key)
        elif name in (log_origin(key.name, log), log_origin(key.name.rsplit("/", 1)[0], log)):
            pinned.append(Verifier(name, key_id(name, key.public_key), key.public_key))
    return pinned


def _windows(manifest: dict, report: BundleReport) -> dict[str, list[tuple[int, bytes]]]:
    """log -> [(until, public key)] of its rotated-out keys, oldest first (``retired_keys``)."""
    found: dict[str, list[tuple[int, bytes]]] = {}
    for log, keys in (manifest.get("retired_keys") or {}).items():
        try:
            found[log] = [(int(key["until"]), Verifier.from_vkey(key["vkey"]).public_key) for key in keys]
        except (LedgerError, KeyError, TypeError, ValueError) as exc:
            report.fail("manifest.json", f"retired_keys of log {log!r} is not a list of vkey/until ({exc})")
    return found


class KeyWindowError(LedgerError):
    """A checkpoint signed by a rotated-out key beyond the tree size that key retired at."""


def open_in_window(note: str, keys: list[Verifier], windows: list[tuple[int, bytes]]):
    """Open a checkpoint with the one key valid at its size (as keys.KeyHistory.keys_at): a retired key
    up to the size it retired at, the current key after; KeyWindowError names a key used out of its window."""
    checkpoint = open_checkpoint(note, keys)
    allowed = _valid_at(keys, windows, checkpoint.size)
    try:
        return open_checkpoint(note, allowed)
    except LedgerError:
        for until, public_key in windows:
            signer = [k for k in keys if k.public_key == public_key]
            if until < checkpoint.size and signer and _opens(note, signer):
                raise KeyWindowError(
                    f"signed by {signer[0].vkey}, a key rotated out at tree size {until}, but this checkpoint"
                    f" has size {checkpoint.size}: a retired key signs nothing past its retirement"
                ) from None
        raise


def _valid_at(keys: list[Verifier], windows: list[tuple[int, bytes]], size: int) -> list[Verifier]:
    for until, public_key in windows:
        if size <= until:
            return [k for k in keys if k.public_key == public_key]
    retired = {public_key for _, public_key in windows}
    return [k for k in keys if k.public_key not in retired]


def _opens(note: str, keys: list[Verifier]) -> bool:
    try:
        open_checkpoint(note, keys)
    except LedgerError:
        return False
    return True


def _check_seal(
    files: dict[str, bytes],
    verifiers: dict[str, list[Verifier]],
    windows: list[tuple[int, bytes]],
    report: BundleReport,
) -> None:
    """The meta-log entry recording the export must be sealed and carry this manifest's SHA-256."""
    entry, proof = files.get("seal/export.json"), files.get("seal/export.tlog-proof")
    if entry is None or proof is None:
        report.fail("seal/export.json" if entry is None else "seal/export.tlog-proof", "missing")
        return
    if "trailseal" in verifiers:
        try:
            proof_text = proof.decode()
            parsed = parse_proof(proof_text)
            checkpoint = open_in_window(parsed.checkpoint_note, verifiers["trailseal"], windows)
            verify_inclusion(leaf_hash(entry), parsed.index, checkpoint.size, parsed.hashes, checkpoint.root)
        except (LedgerError, UnicodeDecodeError) as exc:
            report.fail("seal/export.tlog-proof", f"the export entry is not proven in the meta log ({exc})")
    try:
        attributes = msgspec.json.decode(entry).get("attributes") or {}
    except (msgspec.DecodeError, AttributeError):
        attributes = {}
    if attributes.get("manifest_sha256") != hashlib.sha256(files["manifest.json"]).hexdigest():
        report.fail(
            "manifest.json",
            "its SHA-256 is not the one sealed in seal/export.json: the manifest (or the seal) was changed",
        )


def _check_checkpoints(
    files: dict[str, bytes],
    manifest: dict,
    verifiers: dict[str, list[Verifier]],
    windows: dict[str, list[tuple[int, bytes]]],
    report: BundleReport,
) -> dict[tuple[str, int], tuple[str, bytes]]:
    """(log, size) -> (note, root) of every checkpoint that verifies; consistency along each chain."""
    roots = {}
    for log, info in manifest["logs"].items():
        chain = info.get("checkpoints") if isinstance(info, dict) else None
        if not isinstance(chain, list) or not all(isinstance(s, int) for s in chain):
            report.fail("manifest.json", f"log {log!r} has no list of checkpoint sizes")
            continue
        for size in chain:
            name = checkpoint_name(log, size)
            checkpoint = _open_checkpoint(files, name, verifiers.get(log), windows.get(log, []), report)
            if checkpoint is not None and checkpoint.size != size:
                report.fail(name, f"says size {checkpoint.size}: a checkpoint was swapped")
            elif checkpoint is not None:
                roots[(log, size)] = (files[name].decode(), checkpoint.root)
                report.checkpoints += 1
        for old, new in zip(chain, chain[1:], strict=False):
            if (log, old) in roots and (log, new) in roots:
                _check_consistency(files, log, old, new, roots, report)
    return roots


def _open_checkpoint(
    files: dict[str, bytes],
    name: str,
    verifiers: list[Verifier] | None,
    windows: list[tuple[int, bytes]],
    report: BundleReport,
):
    if name not in files:
        report.fail(name, "missing")
        return None
    if not verifiers:
        report.fail(name, "no key to check it with")
        return None
    try:
        return open_in_window(files[name].decode(), verifiers, windows)
    except KeyWindowError as exc:
        report.fail(name, str(exc))
        return None
    except (LedgerError, UnicodeDecodeError) as exc:
        report.fail(name, f"signature or format does not verify ({exc})")
        return None


def _check_consistency(
    files: dict[str, bytes],
    log: str,
    old: int,
    new: int,
    roots: dict[tuple[str, int], tuple[str, bytes]],
    report: BundleReport,
) -> None:
    name = consistency_name(log, old, new)
    if name not in files:
        report.fail(name, "missing")
        return
    try:
        head, _, note = files[name].decode().partition("\n\n")
        lines = head.split("\n")
        match = _OLD.fullmatch(lines[0])
        if not match or int(match[1]) != old or note != roots[(log, new)][0]:
            raise LedgerError(f"not a consistency proof from size {old} to the checkpoint at size {new}")
        hashes = [base64.b64decode(line, validate=True) for line in lines[1:]]
        verify_consistency(old, new, roots[(log, old)][1], roots[(log, new)][1], hashes)
    except (LedgerError, ValueError) as exc:
        report.fail(name, f"does not prove size {new} extends size {old} ({exc})")


def _check_events(
    files: dict[str, bytes], roots: dict[tuple[str, int], tuple[str, bytes]], report: BundleReport
) -> None:
    proofs = _Proofs({note: (log, InclusionChecker(size, root)) for (log, size), (note, root) in roots.items()})
    readable = _readable_lines(files, report)
    for name in sorted(files):
        match = _ENTRY.fullmatch(name)
        if match is None:
            continue
        log, position = match[1], int(match[2])
        report.events += 1
        where = f"{name} (entry {log}:{position})"
        _check_inclusion(files, log, position, proofs, where, report)
        _check_readable(files[name], readable.pop((log, position), None), where, report)
    for name in files:
        if name.startswith("proofs/"):
            log, stem = name.split("/")[1:]
            if f"events/{log}/{stem.split('.')[0]}.json" not in files:
                report.fail(name, "has no sealed entry in events/: an event was dropped")
    for (log, position), (name, number, _) in readable.items():
        report.fail(
            f"{name} line {number}",
            f"entry {log}:{position} has no sealed entry in events/: an event was dropped or added",
        )


@dataclass
class _Proofs:
    """The verified checkpoints (note -> log and an inclusion checker for its tree head), and the proof
    hash lines decoded so far: the proofs of one tree share most of their hashes."""

    by_note: dict[str, tuple[str, InclusionChecker]]
    decoded: dict[str, bytes] = field(default_factory=dict)


class _Line(msgspec.Struct):
    """A readable line; the event is kept as its JSON text, to compare with the joined sealed entry."""

    log: Any = None
    index: Any = None
    event: msgspec.Raw = msgspec.Raw(b"")
    disclosures: Any = None


_decode_line = msgspec.json.Decoder(_Line).decode


def _readable_lines(
    files: dict[str, bytes], report: BundleReport
) -> dict[tuple[str, int], tuple[str, int, _Line]]:
    """(log, index) -> (file, line number, decoded line) of every readable line."""
    found = {}
    for name, data in files.items():
        if not name.startswith("readable/"):
            continue
        log = name[len("readable/") : -len(".jsonl")]
        for number, line in enumerate(data.splitlines(), 1):
            try:
                shown = _decode_line(line)
                key = (shown.log, shown.index)
                if key[0] != log or not isinstance(key[1], int) or key in found:
                    raise ValueError("wrong or repeated log/index")
            except (msgspec.DecodeError, TypeError, ValueError) as exc:
                report.fail(f"{name} line {number}", f"not a readable event line ({exc})")
                continue
            found[key] = (name, number, shown)
    return found


def _check_inclusion(
    files: dict[str, bytes], log: str, position: int, proofs: _Proofs, where: str, report: BundleReport
) -> None:
    name = proof_name(log, position)
    if name not in files:
        report.fail(where, f"its proof {name} is missing")
        return
    if len(proofs.decoded) > DECODED_LINES:
        proofs.decoded.clear()
    try:
        proof = parse_proof(files[name].decode(), proofs.decoded)
        if proof.index != position:
            raise LedgerError(f"the proof is for index {proof.index}")
        found = proofs.by_note.get(proof.checkpoint_note)
        if found is None or found[0] != log:
            raise LedgerError("its checkpoint is not one of this log's verified checkpoints in the bundle")
        found[1].verify(leaf_hash(files[f"events/{log}/{position}.json"]), position, proof.hashes)
    except (LedgerError, UnicodeDecodeError) as exc:
        report.fail(where, f"not proven by {name}: the entry or its proof was changed ({exc})")


def _check_readable(
    sealed: bytes, readable: tuple[str, int, _Line] | None, where: str, report: BundleReport
) -> None:
    """The readable line must be the sealed event with only disclosed (salt-checked) values joined: the
    same JSON text, or (written another way) the same JSON value."""
    if readable is None:
        report.fail(where, "its readable line in readable/ is missing")
        return
    name, number, shown = readable
    try:
        disclosed = shown.disclosures or {}
        if disclosed:
            sealed = join_values(sealed, _disclosures(disclosed, sealed))
        if sealed != bytes(shown.event) and msgspec.json.decode(sealed) != _event(shown):
            raise ValueError("it differs from the sealed entry")
    except (msgspec.DecodeError, ValueError, AttributeError, TypeError, KeyError) as exc:
        report.fail(f"{name} line {number}", f"does not match {where} ({exc})")


def _event(shown: _Line) -> Any:
    """The readable line's event as a JSON value (None when the line has none)."""
    return msgspec.json.decode(shown.event) if shown.event else None


def _disclosures(disclosed: dict, sealed: bytes) -> dict[bytes, str]:
    """commitment -> value, each disclosure checked: SHA-256(salt || value) is a commitment of the entry."""
    values = {}
    for commitment, opened in disclosed.items():
        salt = binascii.a2b_base64(opened["salt"], strict_mode=True)
        value = opened["value"]
        digest = "pd:" + hashlib.sha256(salt + value.encode("utf-8", "surrogatepass")).hexdigest()
        if digest != commitment or commitment.encode() not in sealed:
            raise ValueError(
                f"the disclosure of {commitment[:16]}... does not open a commitment of the entry"
            )
        values[commitment.encode()] = value
    return values

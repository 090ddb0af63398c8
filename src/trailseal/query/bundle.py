"""Evidence bundles: the events a query matches, with everything needed to verify them offline.

A bundle is a zip (layout in ``README_TEXT`` and docs/evidence.md):

- ``events/<log>/<index>.json``: each entry exactly as sealed (its SHA-256 leaf is in the tree);
- ``readable/<log>.jsonl``: one line per event, in index order: the event with vault values joined
  back, and for each one the salt that opens its sealed commitment (erased values stay ``pd:`` and
  have no disclosure);
- ``proofs/<log>/<index>.tlog-proof``: a C2SP tlog-proof against the checkpoint signed at the commit
  that sealed the entry (or the next one kept, see ``MAX_CHECKPOINTS``);
- ``checkpoints/<log>/<size>.checkpoint``: those signed checkpoints, and the log's head at export;
- ``consistency/<log>/<old>-<new>.txt``: consistency proofs chaining them, as C2SP tlog-witness
  add-checkpoint bodies (``old N``, proof hashes, blank line, the newer checkpoint);
- ``keys/<log>.vkey``: the verifier keys, one a line (the current one, then any rotated out);
  ``privacy-policy.txt``; ``README.md``;
- ``manifest.json``: what was asked, the SHA-256 of every file above, and each rotated-out key with
  the tree size it retired at (``retired_keys``: it signs no checkpoint beyond that size);
- ``seal/export.json`` and ``seal/export.tlog-proof``: the `trailseal` meta-log entry recording the
  export, which carries the manifest's SHA-256, and its proof: so no file can change, even with a
  recomputed manifest, without breaking a signature.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from trailseal.ledger.proof import format_proof
from trailseal.privacy.protect import commitments_in, reveal
from trailseal.query.export import ExportError, export_event, matching_rows, store_reader

FORMAT = "trailseal-evidence-bundle/1"
MAX_EVENTS = 1_000_000
MAX_CHECKPOINTS = 256  # per log; beyond, each event is proven against the next checkpoint kept
CHUNK = 1000
_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode


@dataclass
class BundleResult:
    path: Path
    events: int = 0
    logs: dict[str, int] = field(default_factory=dict)
    manifest_sha256: str = ""


def entry_name(log: str, index: int) -> str:
    return f"events/{log}/{index}.json"


def readable_name(log: str) -> str:
    return f"readable/{log}.jsonl"


def proof_name(log: str, index: int) -> str:
    return f"proofs/{log}/{index}.tlog-proof"


def checkpoint_name(log: str, size: int) -> str:
    return f"checkpoints/{log}/{size}.checkpoint"


def consistency_name(log: str, old: int, new: int) -> str:
    return f"consistency/{log}/{old}-{new}.txt"


def key_name(log: str) -> str:
    return f"keys/{log}.vkey"


def format_consistency(old: int, hashes: list[bytes], new_checkpoint: str) -> str:
    """A C2SP tlog-witness add-checkpoint body: `old N`, the proof hashes, a blank line, the checkpoint."""
    return "".join(
        [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in hashes), "\n", new_checkpoint]
    )


# -- choosing what to include ----------------------------------------------------------------------
def matching(trail, query: str, log: str | None) -> dict[str, list[int]]:
    """The (log -> ascending indices) of the entries a query matches."""
    found: dict[str, list[int]] = {}
    total = 0
    for name, rows in matching_rows(trail, query, log):
        total += len(rows)
        if total > MAX_EVENTS:
            raise ExportError(
                f"the query matches more than {MAX_EVENTS} events: narrow it (since:, until:, "
                "actor:...) or export it in several bundles"
            )
        found.setdefault(name, []).extend(position for position, _ in rows)
    return found


def commit_sizes(trail, log: str, indices: list[int]) -> list[int]:
    """For each index (ascending), the size of the checkpoint signed at the commit that sealed it."""
    conn = store_reader(trail.store)
    sizes, current = [], -1
    for position in indices:
        if position >= current:
            row = conn.execute("SELECT min(size) FROM checkpoints WHERE log=? AND size>?", (log, position)).fetchone()
            if row[0] is None:
                raise ExportError(f"log {log!r} has no signed checkpoint covering entry {position}")
            current = row[0]
        sizes.append(current)
    return sizes


def thin(sizes: list[int], head: int, limit: int | None = None) -> list[int]:
    """Each event's checkpoint size after keeping at most ``limit`` distinct ones (the head always kept)."""
    limit = limit or MAX_CHECKPOINTS
    distinct = sorted({*sizes, head})
    if len(distinct) > limit:
        step = -(-len(distinct) // (limit - 1))
        distinct = sorted({*distinct[step - 1 :: step], head})
    chosen, pointer = [], 0
    for size in sizes:
        while distinct[pointer] < size:
            pointer += 1
        chosen.append(distinct[pointer])
    return chosen


# -- writing ---------------------------------------------------------------------------------------
class _Zip:
    """A zip being written, remembering the SHA-256 of every file for the manifest."""

    def __init__(self, path: Path):
        try:
            self.zip = zipfile.ZipFile(path, "x", zipfile.ZIP_DEFLATED, compresslevel=1)
        except FileExistsError:
            raise ExportError(f"{path} already exists: choose another name or remove it first") from None
        except OSError as exc:
            raise ExportError(f"cannot write {path}: {exc.strerror}") from None
        self.hashes: dict[str, str] = {}

    def add(self, name: str, data: bytes | str, listed: bool = True) -> None:
        """Add a small file, stored (they are too small to compress; stored members read fastest)."""
        raw = data.encode() if isinstance(data, str) else data
        self.zip.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), raw, zipfile.ZIP_STORED)
        if listed:
            self.hashes[name] = hashlib.sha256(raw).hexdigest()

    def add_file(self, name: str, path: Path) -> None:
        """Add a (large) file from disk, compressed."""
        digest = hashlib.sha256()
        with open(path, "rb") as source:
            while block := source.read(1 << 20):
                digest.update(block)
        self.zip.write(path, name, zipfile.ZIP_DEFLATED)
        self.hashes[name] = digest.hexdigest()


def write_bundle(
    trail,
    query: str,
    out: Path,
    log: str | None = None,
    by: str = "cli",
    progress: Callable[[int, int], None] | None = None,
) -> BundleResult:
    """Write an evidence bundle of the events ``query`` matches; seal the export in the meta log."""
    found = matching(trail, query, log)
    total = sum(len(v) for v in found.values())
    if not total:
        raise ExportError("the query matches no events: nothing to put in a bundle")
    result = BundleResult(out, total, {name: len(v) for name, v in found.items()})
    bundle = _Zip(out)
    try:
        done = 0
        chains = {}
        for name, indices in found.items():
            tick = (lambda n, base=done: progress(base + n, total)) if progress else None
            chains[name] = _write_log(trail, bundle, name, indices, tick)
            done += len(indices)
        for name in sorted({*found, "trailseal"}):
            bundle.add(key_name(name), "".join(key.vkey + "\n" for key in trail.verifiers(name)))
        bundle.add("privacy-policy.txt", trail.protection.describe() + "\n")
        bundle.add("README.md", README_TEXT)
        manifest = _manifest(trail, query, log, found, chains, bundle.hashes)
        bundle.add("manifest.json", manifest, listed=False)
        result.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        _seal_export(trail, bundle, query, by, total, result.manifest_sha256)
    except BaseException:
        bundle.zip.close()
        out.unlink(missing_ok=True)
        raise
    bundle.zip.close()
    return result


def _write_log(
    trail, bundle: _Zip, log: str, indices: list[int], tick: Callable[[int], None] | None = None
) -> list[int]:
    """One log's entries, readable events, proofs, checkpoints and consistency proofs; its chain of sizes."""
    head = trail.store.tree_size(log)
    sizes = thin(commit_sizes(trail, log, indices), head)
    notes = {size: _checkpoint(trail, log, size) for size in sorted(set(sizes) | {head})}
    with tempfile.NamedTemporaryFile(prefix="trailseal-readable-") as lines:
        for start in range(0, len(indices), CHUNK):
            chunk = list(zip(indices[start : start + CHUNK], sizes[start : start + CHUNK], strict=True))
            _write_entries(trail, bundle, log, chunk, notes, lines)
            if tick is not None:
                tick(start + len(chunk))
        lines.flush()
        bundle.add_file(readable_name(log), Path(lines.name))
    chain = sorted(notes)
    for size in chain:
        bundle.add(checkpoint_name(log, size), notes[size])
    for old, new in zip(chain, chain[1:], strict=False):
        hashes = trail.consistency_proof(old, new, log)
        bundle.add(consistency_name(log, old, new), format_consistency(old, hashes, notes[new]))
    return chain


def _checkpoint(trail, log: str, size: int) -> str:
    note = trail.store.checkpoint_at(log, size)
    if note is None:
        raise ExportError(f"log {log!r} has no stored checkpoint at size {size}; run `trailseal verify`")
    return note


def _write_entries(
    trail, bundle: _Zip, log: str, chunk: list[tuple[int, int]], notes: dict[int, str], lines
) -> None:
    entries = [trail.entry(position, log) for position, _ in chunk]
    sealed = [_decode(data) for data in entries]
    wanted = set().union(*(commitments_in(event) for event in sealed))
    rows = trail.store.vault_get(sorted(wanted)) if wanted else {}
    for (position, size), data, event in zip(chunk, entries, sealed, strict=True):
        bundle.add(entry_name(log, position), data)
        lines.write(readable(log, position, event, rows))
        hashes = trail.inclusion_proof(position, size, log)
        bundle.add(proof_name(log, position), format_proof(position, hashes, notes[size]))


def readable(log: str, position: int, event: dict[str, Any], rows: dict) -> bytes:
    """One line: the event with vault values joined, and the salts that let anyone check them."""
    held = {c: rows[c] for c in commitments_in(event) if c in rows}
    disclosures = {
        c: {"value": row.value, "salt": base64.b64encode(row.salt).decode()} for c, row in held.items()
    }
    line = {"log": log, "index": position, "event": reveal(event, held), "disclosures": disclosures}
    return _encode(line) + b"\n"


def _manifest(
    trail,
    query: str,
    log: str | None,
    found: dict[str, list[int]],
    chains: dict[str, list[int]],
    hashes: dict[str, str],
) -> bytes:
    logs = {
        name: {
            "events": len(found[name]),
            "checkpoints": chains[name],
            "head": chains[name][-1],
            "vkey": key_name(name),
        }
        for name in found
    }
    body = {
        "format": FORMAT,
        "created": trail.clock(),
        "query": query,
        "log": log,
        "events": sum(len(v) for v in found.values()),
        "logs": logs,
        "retired_keys": {name: retired_keys(trail, name) for name in sorted({*found, "trailseal"})},
        "files": dict(sorted(hashes.items())),
    }
    return msgspec.json.format(_encode(body), indent=2) + b"\n"


def retired_keys(trail, log: str) -> list[dict[str, Any]]:
    """Each rotated-out key of a log, oldest first, with the tree size it was valid up to (keys.KeyHistory)."""
    from trailseal.keys import KeyHistory

    history = KeyHistory.load(trail.directory, trail.base_vkey)
    return [{"vkey": key.verifier(log).vkey, "until": key.sizes.get(log, 0)} for key in history.retired]


def _seal_export(trail, bundle: _Zip, query: str, by: str, rows: int, manifest_sha256: str) -> None:
    """Seal the export (with the manifest's hash) in the meta log; add that entry and its proof."""
    event = export_event(by, query, "bundle", rows, trail.clock(), manifest_sha256=manifest_sha256)
    (receipt,) = trail.append([event])
    bundle.add("seal/export.json", trail.entry(receipt.index, "trailseal"), listed=False)
    bundle.add("seal/export.tlog-proof", trail.prove(receipt.index, "trailseal"), listed=False)


README_TEXT = """\
# Evidence bundle (trailseal)

This archive holds audit events and everything needed to check, **without trusting trailseal and
without its server**, that each one is exactly what was sealed in an append-only Merkle log (RFC 9162)
whose signed checkpoints (C2SP tlog-checkpoint, Ed25519 signed notes) the log's operator published.

## With the CLI (any machine, no data dir)

    pip install trailseal
    trailseal verify bundle.zip --vkey "<the log's verifier key, obtained from the operator>"

It prints OK, or names every file and entry that fails. Without `--vkey` the keys inside the bundle
are used and their key ids are printed: compare them with the keys you got from the operator, since
someone who rewrote the whole bundle could also have replaced its keys.

## By hand

1. `manifest.json` lists the SHA-256 of every file: `sha256sum` each one and compare.
2. `seal/export.json` is the entry trailseal sealed in its `trailseal` meta log when this bundle was
   made; its `attributes.manifest_sha256` must equal `sha256sum manifest.json`, and
   `seal/export.tlog-proof` proves that entry is in the meta log (steps 4-5 with `keys/trailseal.vkey`).
3. Each `checkpoints/<log>/<size>.checkpoint` is a signed note: the Ed25519 signature over the text
   before the blank line must verify with `keys/<log>.vkey` (key id = SHA-256(name || 0x0A || 0x01 ||
   public key)[:4]).
4. Each `proofs/<log>/<index>.tlog-proof` (C2SP tlog-proof) holds the index, the inclusion proof hashes
   and a checkpoint. Leaf hash = SHA-256(0x00 || bytes of `events/<log>/<index>.json`); fold the proof
   hashes as RFC 9162 section 2.1.3.2 says; the result must be the checkpoint's root hash.
5. `consistency/<log>/<old>-<new>.txt` (the body of a C2SP tlog-witness add-checkpoint request) proves
   the log at size `new` extends the log at size `old` (RFC 9162 section 2.1.4.2): no entry was changed
   or removed in between. The last checkpoint of each log is its head when the bundle was made.
6. `readable/<log>.jsonl` has one line per event for humans: personal values that the sealed entry holds
   as commitments `pd:<hex>` are joined back, each with its salt in `disclosures`, so SHA-256(salt ||
   value) must equal the hex. A value erased under GDPR Art. 17 stays `pd:<hex>` and has no disclosure.
7. `privacy-policy.txt` is the privacy policy in force when the bundle was made.
"""

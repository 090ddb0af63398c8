"""Bundles across a key rotation: a rotated-out key is valid only up to the tree size it retired at."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

import trailseal
from tests.conftest import make_event
from tests.export.conftest import rewrite
from trailseal.keys import log_signer, rotate_signing_key
from trailseal.ledger import Signer, Verifier, sign
from trailseal.query.bundle import write_bundle
from trailseal.query.bundle_check import verify_bundle
from trailseal.query.export import export_event


@pytest.fixture
def rotated(data_dir, tmp_path):
    """(data dir, bundle, old base signer, retirement size of `default`, old vkey, new vkey)."""
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(10)])
        old = Signer.from_skey((Path(data_dir) / trail.config.key_file).read_text().strip())
        old_vkey = trail.vkey()
        rotation = rotate_signing_key(trail, actor="test")
        trail.append([make_event(i) for i in range(10, 20)])
        write_bundle(trail, "log:default", tmp_path / "rotated.zip")
        new_vkey = trail.vkey()
    return data_dir, tmp_path / "rotated.zip", old, rotation.sizes["default"], old_vkey, new_vkey


def test_the_manifest_names_each_retired_key_and_its_last_size(rotated):
    _, bundle, _, until, old_vkey, _ = rotated
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    assert manifest["retired_keys"]["default"] == [{"vkey": old_vkey, "until": until}]
    assert verify_bundle(bundle).ok


def forge_head_with_the_old_key(data_dir: Path, bundle: Path, old: Signer, target: Path) -> str:
    """A bundle whose head checkpoint (beyond the rotation) is re-signed by the retired key, with the
    manifest re-hashed and re-sealed: consistent in every way but the key's validity window."""
    with zipfile.ZipFile(bundle) as z:
        manifest = json.loads(z.read("manifest.json"))
    head = manifest["logs"]["default"]["checkpoints"][-1]
    name = f"checkpoints/default/{head}.checkpoint"
    with zipfile.ZipFile(bundle) as z:
        genuine = z.read(name).decode()
    forged = sign(genuine.split("\n\n")[0] + "\n", log_signer(old, "default"))
    changed = {name: forged.encode()}
    with zipfile.ZipFile(bundle) as z:
        for member in z.namelist():
            if member.startswith(("consistency/default/", "proofs/default/")):  # they carry the note too
                data = z.read(member)
                if genuine.encode() in data:
                    changed[member] = data.replace(genuine.encode(), forged.encode())
    for member, data in changed.items():
        manifest["files"][member] = hashlib.sha256(data).hexdigest()
    changed["manifest.json"] = json.dumps(manifest, indent=2).encode()
    with trailseal.open(data_dir) as trail:  # the seal, as write_bundle makes it, over the new manifest
        digest = hashlib.sha256(changed["manifest.json"]).hexdigest()
        event = export_event("test", manifest["query"], "bundle", 20, trail.clock(), manifest_sha256=digest)
        (receipt,) = trail.append([event])
        changed["seal/export.json"] = trail.entry(receipt.index, "trailseal")
        changed["seal/export.tlog-proof"] = trail.prove(receipt.index, "trailseal").encode()
    rewrite(bundle, target, lambda member, data: changed.get(member, data))
    return name


def test_a_checkpoint_signed_by_a_retired_key_beyond_its_retirement_is_refused(rotated, tmp_path):
    data_dir, bundle, old, until, old_vkey, new_vkey = rotated
    name = forge_head_with_the_old_key(data_dir, bundle, old, tmp_path / "forged.zip")
    for trusted in (None, [Verifier.from_vkey(new_vkey), Verifier.from_vkey(old_vkey)]):
        report = verify_bundle(tmp_path / "forged.zip", trusted)
        size = name.split("/")[-1].split(".")[0]
        refused = (
            f"{name}: signed by {old_vkey}, a key rotated out at tree size {until}, but this checkpoint has"
            f" size {size}: a retired key signs nothing past its retirement"
        )
        assert report.problems[0] == refused, report.problems
        # the only other problems: the events proven against that checkpoint are, in turn, unproven
        assert all(p.startswith("events/default/") and "not proven" in p for p in report.problems[1:])


def test_a_bundle_whose_retired_keys_were_edited_fails(rotated, tmp_path):
    _, bundle, _, _, _, _ = rotated

    def widen(member: str, data: bytes) -> bytes:
        if member != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["retired_keys"]["default"][0]["until"] = 10**9
        return json.dumps(manifest, indent=2).encode()

    rewrite(bundle, tmp_path / "widened.zip", widen)
    report = verify_bundle(tmp_path / "widened.zip")
    assert not report.ok and any(p.startswith("manifest.json") for p in report.problems), report.problems

"""Evidence bundles: they verify offline, any edit to any file is caught and named, erased values stay
erased, and hostile zips get a clear refusal."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import trailseal
from tests.export.conftest import rewrite
from trailseal.cli import app
from trailseal.ledger import Verifier, generate, sign
from trailseal.query import bundle as bundle_module
from trailseal.query.bundle import thin, write_bundle
from trailseal.query.bundle_check import BundleError, verify_bundle

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(sealed, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "evidence.zip"
    with trailseal.open(sealed) as trail:
        result = write_bundle(trail, "log:default (outcome:failure OR id:evt-00001000)", path, by="test")
    assert result.events > 20
    return path


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return z.namelist()


def test_a_fresh_bundle_verifies_with_its_keys_and_with_the_pinned_key(bundle, sealed):
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    assert report.events > 20 and report.checkpoints >= 2
    with trailseal.open(sealed) as trail:
        pinned = Verifier.from_vkey(trail.vkey("default"))
    assert verify_bundle(bundle, [pinned]).ok


def test_layout_checkpoints_chain_and_the_export_is_sealed(bundle, sealed):
    listed = names(bundle)
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    chain = manifest["logs"]["default"]["checkpoints"]
    assert len(chain) >= 2 and chain == sorted(chain)
    for old, new in zip(chain, chain[1:], strict=False):
        assert f"consistency/default/{old}-{new}.txt" in listed
    assert {
        "README.md",
        "privacy-policy.txt",
        "keys/default.vkey",
        "keys/trailseal.vkey",
        "seal/export.json",
    } <= set(listed)
    sealed_export = json.loads(zipfile.ZipFile(bundle).read("seal/export.json"))
    assert sealed_export["action"] == "trailseal.export" and sealed_export["attributes"]["format"] == "bundle"


def readable_lines(path: Path) -> list[dict]:
    with zipfile.ZipFile(path) as z:
        return [json.loads(line) for line in z.read("readable/default.jsonl").splitlines()]


def test_erased_values_stay_erased_and_disclosures_open_the_others(bundle):
    lines = readable_lines(bundle)
    gone = [line for line in lines if line["event"]["id"] == "evt-00001000"]
    assert gone and gone[0]["event"]["actor"]["id"].startswith("pd:") and gone[0]["disclosures"] == {}
    with zipfile.ZipFile(bundle) as z:
        text = b"".join(z.read(n) for n in z.namelist())
    assert b"192.0.2.9" not in text and b'"gone"' not in text
    shown = next(line for line in lines if line["disclosures"])
    assert shown["event"]["actor"]["id"] in {d["value"] for d in shown["disclosures"].values()}
    assert [line["index"] for line in lines] == sorted(line["index"] for line in lines)


def first(path: Path, prefix: str) -> str:
    return next(n for n in names(path) if n.startswith(prefix))


def tampered(bundle: Path, tmp_path: Path, change) -> list[str]:
    target = tmp_path / "t.zip"
    rewrite(bundle, target, change)
    report = verify_bundle(target)
    assert not report.ok
    return report.problems


def test_editing_one_event_is_caught_and_named(bundle, tmp_path):
    victim = first(bundle, "events/default/")
    index = victim.split("/")[-1].split(".")[0]
    problems = tampered(
        bundle,
        tmp_path,
        lambda n, d: d.replace(b'"outcome":"failure"', b'"outcome":"success"') if n == victim else d,
    )
    assert any(victim in p and f"default:{index}" in p and "proven" in p for p in problems), problems
    assert any(p.startswith(victim) and "SHA-256" in p for p in problems)


def test_editing_one_stored_event_is_caught_and_named(bundle, tmp_path):
    """Stored (uncompressed) members, as the bundle writer makes them, are read straight from the file."""
    victim = first(bundle, "events/default/")
    index = victim.split("/")[-1].split(".")[0]
    target = tmp_path / "stored.zip"
    rewrite(
        bundle,
        target,
        lambda n, d: d.replace(b'"outcome":"failure"', b'"outcome":"success"') if n == victim else d,
        zipfile.ZIP_STORED,
    )
    problems = verify_bundle(target).problems
    assert any(victim in p and f"default:{index}" in p and "proven" in p for p in problems), problems
    assert any(p.startswith(victim) and "SHA-256" in p for p in problems)


def stored_member(path: Path, prefix: str) -> tuple[zipfile.ZipInfo, int]:
    """A stored member and the offset of its data in the file."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.startswith(prefix))
    assert info.compress_type == zipfile.ZIP_STORED
    name_size, extra_size = struct.unpack_from("<2H", path.read_bytes(), info.header_offset + 26)
    return info, info.header_offset + 30 + name_size + extra_size


@pytest.mark.parametrize(("where", "needle"), [("data", "CRC"), ("name", "differ"), ("signature", "header")])
def test_a_stored_member_damaged_in_place_is_refused(bundle, tmp_path, where, needle):
    info, start = stored_member(bundle, "proofs/default/")
    data = bytearray(bundle.read_bytes())
    position = {"data": start + 3, "name": info.header_offset + 30 + 8, "signature": info.header_offset + 1}[where]
    data[position] ^= 0x20
    (tmp_path / "damaged.zip").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"cannot be read.*{needle}"):
        verify_bundle(tmp_path / "damaged.zip")


def test_editing_an_event_and_its_manifest_line_is_still_caught(bundle, tmp_path):
    import hashlib

    victim = first(bundle, "events/default/")
    with zipfile.ZipFile(bundle) as z:
        edited = z.read(victim).replace(b'"outcome":"failure"', b'"outcome":"success"')
        manifest = json.loads(z.read("manifest.json"))
    manifest["files"][victim] = hashlib.sha256(edited).hexdigest()
    problems = tampered(
        bundle,
        tmp_path,
        lambda n, d: edited if n == victim else json.dumps(manifest).encode() if n == "manifest.json" else d,
    )
    assert any(victim in p and "not proven" in p for p in problems)
    assert any(p.startswith("manifest.json") and "sealed" in p for p in problems)


def test_dropping_a_proof_is_caught_and_named(bundle, tmp_path):
    victim = first(bundle, "proofs/default/")
    index = victim.split("/")[-1].split(".")[0]
    problems = tampered(bundle, tmp_path, lambda n, d: None if n == victim else d)
    assert any(f"default:{index}" in p and "missing" in p for p in problems), problems


def test_dropping_an_event_is_caught(bundle, tmp_path):
    victim = first(bundle, "events/default/")
    problems = tampered(bundle, tmp_path, lambda n, d: None if n == victim else d)
    assert any(p.startswith(victim) and "missing" in p for p in problems)


def test_swapping_a_checkpoint_is_caught_and_named(bundle, tmp_path):
    chain = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))["logs"]["default"]["checkpoints"]
    first_name, last_name = (
        f"checkpoints/default/{chain[0]}.checkpoint",
        f"checkpoints/default/{chain[-1]}.checkpoint",
    )
    with zipfile.ZipFile(bundle) as z:
        a, b = z.read(first_name), z.read(last_name)
    problems = tampered(bundle, tmp_path, lambda n, d: b if n == first_name else a if n == last_name else d)
    assert any(p.startswith(first_name) and "swapped" in p for p in problems), problems


def test_changing_the_key_is_caught(bundle, tmp_path):
    _, other = generate("test.trailseal/default")
    problems = tampered(
        bundle, tmp_path, lambda n, d: other.encode() + b"\n" if n == "keys/default.vkey" else d
    )
    assert any(p.startswith("checkpoints/default/") and "does not verify" in p for p in problems), problems
    assert any(p.startswith("keys/default.vkey") for p in problems)


def test_a_bundle_re_signed_with_another_key_fails_against_the_pinned_key(bundle, sealed, tmp_path):
    forger_skey, forger_vkey = generate("test.trailseal/default")
    from trailseal.ledger import Signer

    forger = Signer.from_skey(forger_skey)
    names_ = names(bundle)

    def forge(name: str, data: bytes) -> bytes:
        if name == "keys/default.vkey":
            return forger_vkey.encode() + b"\n"
        if name.startswith("checkpoints/default/"):
            return sign(data.decode().split("\n\n")[0] + "\n", forger).encode()
        return data

    target = tmp_path / "forged.zip"
    rewrite(bundle, target, forge)
    assert names(target) == names_
    with trailseal.open(sealed) as trail:
        pinned = Verifier.from_vkey(trail.vkey("default"))
    report = verify_bundle(target, [pinned])
    assert not report.ok and any(
        p.startswith("keys/default.vkey") and "not a key you trust" in p for p in report.problems
    )


@pytest.mark.parametrize("victim", ["README.md", "privacy-policy.txt", "manifest.json"])
def test_editing_the_readme_policy_or_manifest_is_caught(bundle, tmp_path, victim):
    problems = tampered(
        bundle, tmp_path, lambda n, d: d.replace(b'"query"', b'"query" ', 1) + b"\n" if n == victim else d
    )
    assert any(p.startswith(victim) for p in problems), problems


def test_a_readable_event_that_differs_from_the_seal_is_caught(bundle, tmp_path):
    import hashlib

    lines = readable_lines(bundle)
    lines[3]["event"]["actor"]["id"] = "mallory"
    edited = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    with zipfile.ZipFile(bundle) as z:
        manifest = json.loads(z.read("manifest.json"))
    manifest["files"]["readable/default.jsonl"] = hashlib.sha256(edited).hexdigest()
    problems = tampered(
        bundle, tmp_path, lambda n, d: edited if n == "readable/default.jsonl"
        else json.dumps(manifest).encode() if n == "manifest.json" else d
    )
    index = lines[3]["index"]
    assert any(p.startswith("readable/default.jsonl line 4") and f"default:{index}" in p for p in problems), problems


def test_hostile_zips_are_refused_clearly(tmp_path, bundle):
    (tmp_path / "text.zip").write_text("not a zip")
    cases = {"text.zip": "not a zip"}
    with zipfile.ZipFile(tmp_path / "traversal.zip", "w") as z:
        z.writestr("../../etc/passwd", "x")
    cases["traversal.zip"] = "unexpected member"
    with zipfile.ZipFile(tmp_path / "absolute.zip", "w") as z:
        z.writestr("/tmp/evil", "x")
    cases["absolute.zip"] = "unexpected member"
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.md", b"\0" * (8 << 20))
    cases["bomb.zip"] = "zip bomb"
    with zipfile.ZipFile(tmp_path / "dup.zip", "w") as z:
        z.writestr("README.md", "a")
        with pytest.warns(UserWarning):
            z.writestr("README.md", "b")
    cases["dup.zip"] = "twice"
    with zipfile.ZipFile(tmp_path / "nomanifest.zip", "w") as z:
        z.writestr("README.md", "a")
    cases["nomanifest.zip"] = "manifest.json is missing"
    for name, needle in cases.items():
        with pytest.raises(BundleError, match=needle):
            verify_bundle(tmp_path / name)


def test_huge_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("trailseal.query.bundle_check.MAX_MEMBER_BYTES", 1000)
    with zipfile.ZipFile(tmp_path / "huge.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr("README.md", b"x" * 2000)
    with pytest.raises(BundleError, match="limit"):
        verify_bundle(tmp_path / "huge.zip")


def test_thinning_keeps_every_event_provable():
    sizes = list(range(1, 1001))
    chosen = thin(sizes, 1500, limit=10)
    assert len(set(chosen) | {1500}) <= 10
    assert all(c >= s for c, s in zip(chosen, sizes, strict=True)) and chosen[-1] >= 1000


def test_a_thinned_bundle_verifies(sealed, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_module, "MAX_CHECKPOINTS", 2)
    with trailseal.open(sealed) as trail:
        write_bundle(trail, "log:default", tmp_path / "thin.zip")
    report = verify_bundle(tmp_path / "thin.zip")
    assert report.ok, report.problems
    assert report.checkpoints <= 2


def test_cli_bundle_and_verify(sealed, tmp_path, bundle):
    path = tmp_path / "cli.zip"
    made = runner.invoke(app, ["export", "action:user.login", "--bundle", str(path), "--data", str(sealed)])
    assert made.exit_code == 0 and "sealed in the trailseal log" in " ".join(made.output.split()), made.output
    ok = runner.invoke(app, ["verify", str(path)])
    assert ok.exit_code == 0 and "bundle OK" in ok.output
    with trailseal.open(sealed) as trail:
        vkey = trail.vkey("default")
    assert runner.invoke(app, ["verify", str(path), "--vkey", vkey]).exit_code == 0
    broken = tmp_path / "broken.zip"
    rewrite(path, broken, lambda n, d: None if n.startswith("proofs/") else d)
    bad = runner.invoke(app, ["verify", str(broken)])
    assert bad.exit_code == 1 and "FAILED events/default/" in bad.output and "missing" in bad.output
    shutil.copy(bundle, tmp_path / "copy.zip")
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04garbage")
    junk = runner.invoke(app, ["verify", str(tmp_path / "junk.zip")])
    assert junk.exit_code == 2 and "not a zip" in junk.output


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), min_size=1,
                max_size=4))
def test_damaged_bundles_never_crash_the_verifier(bundle, tmp_path, flips):
    data = bytearray(bundle.read_bytes())
    for position, value in flips:
        data[position % len(data)] = value
    (tmp_path / "damaged.zip").write_bytes(bytes(data))
    try:
        report = verify_bundle(tmp_path / "damaged.zip")
    except BundleError as exc:
        assert str(exc)
    else:
        assert report.ok or all(":" in problem for problem in report.problems)


def test_bundling_while_another_process_writes_says_what_to_do(sealed, tmp_path):
    with trailseal.open(sealed) as writer:
        writer.sealer  # takes the data dir's writer lock, as a running server does  # noqa: B018
        result = runner.invoke(app, ["export", "", "--bundle", str(tmp_path / "b.zip"), "--data", str(sealed)])
    assert result.exit_code == 2 and "GET /v1/export/bundle" in " ".join(result.output.split()), result.output
    assert not (tmp_path / "b.zip").exists()


def test_a_query_matching_nothing_makes_no_bundle(sealed, tmp_path):
    result = runner.invoke(app, ["export", "actor:nobody-at-all", "--bundle", str(tmp_path / "e.zip"),
                                 "--data", str(sealed)])
    assert result.exit_code == 2 and "matches no events" in result.output
    assert not (tmp_path / "e.zip").exists()


def test_a_bundle_spanning_a_key_rotation_verifies_with_both_keys(data_dir, tmp_path):
    from tests.conftest import make_event
    from trailseal.keys import rotate_signing_key

    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(10)])
        old_vkey = trail.vkey()
        rotate_signing_key(trail, actor="test")
        trail.append([make_event(i) for i in range(10, 20)])
        write_bundle(trail, "log:default", tmp_path / "rotated.zip")
        new_vkey = trail.vkey()
    report = verify_bundle(tmp_path / "rotated.zip")
    assert report.ok, report.problems
    assert old_vkey in report.keys and new_vkey in report.keys
    pinned = verify_bundle(tmp_path / "rotated.zip", [Verifier.from_vkey(new_vkey)])
    assert not pinned.ok and any("not a key you trust" in p for p in pinned.problems)
    both = [Verifier.from_vkey(new_vkey), Verifier.from_vkey(old_vkey)]
    assert verify_bundle(tmp_path / "rotated.zip", both).ok

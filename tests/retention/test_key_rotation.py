"""Checkpoint signing key rotation: old checkpoints keep verifying under the old key, the rotation is a
sealed event both keys signed, and a checkpoint is accepted only from the key valid at its size."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import trailseal
from tests.conftest import make_event
from trailseal.cli import app
from trailseal.keys import KeyHistory, check_statement, rotate_signing_key
from trailseal.ledger import Verifier, verify_proof
from trailseal.ledger.checkpoint import open_checkpoint


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_rotation_keeps_old_checkpoints_verifying_and_is_sealed_under_both_keys(data_dir):
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(20)])
        old_note, old_vkey, old_proof = trail.checkpoint(), trail.vkey(), trail.prove(3)
        rotation = rotate_signing_key(trail, actor="alice-admin")
        trail.append([make_event(i) for i in range(20, 40)])
        assert trail.vkey() != old_vkey and trail.vkey() == trail.verifiers()[0].vkey
        assert [v.vkey for v in trail.verifiers()] == [trail.vkey(), old_vkey]
        assert all(report.ok for report in trail.verify()), [r.summary() for r in trail.verify()]
        assert trail.verify("default", trusted=old_note)[0].ok
        # the old checkpoint verifies with the old key only, the new one with the new key only
        open_checkpoint(old_note, Verifier.from_vkey(old_vkey))
        open_checkpoint(trail.checkpoint(), trail.verifier())
        verify_proof(old_proof, trail.entry(3), Verifier.from_vkey(old_vkey))
        event = json.loads(trail.entry(rotation.index, "trailseal"))
    assert event["action"] == "keys.rotate" and event["actor"]["id"] != ""
    old, new = check_statement(event["attributes"]["statement"])
    assert old.vkey == rotation.old_vkey and new.vkey == rotation.new_vkey
    assert rotation.sizes["default"] == 20


def test_a_checkpoint_signed_by_the_retired_key_after_its_retirement_fails(data_dir):
    old_skey = (data_dir / "signing.key").read_text()
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(10)])
        rotate_signing_key(trail)
    key = data_dir / "signing.key"
    key.write_text(old_skey)  # someone keeps signing with the retired key
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(10, 15)])
        report = trail.verify("default")[0]
    assert not report.ok and "size 15" in report.problem


def test_statement_signed_by_one_key_only_is_refused(data_dir):
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(0)])
        statement = rotate_signing_key(trail).statement
    one_signature = statement[:statement.rindex("\u2014")]  # drop the new key's signature line
    try:
        check_statement(one_signature)
    except Exception as exc:  # noqa: BLE001 - NoteError or KeyRotationError, both say which key
        assert "signature" in str(exc) or "signed" in str(exc)
    else:
        raise AssertionError("a statement missing the new key's signature was accepted")


def test_history_windows_by_tree_size(data_dir):
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(5)])
        first = rotate_signing_key(trail)
        trail.append([make_event(i) for i in range(5, 9)])
        second = rotate_signing_key(trail)
        history = KeyHistory.load(data_dir, trail.base_vkey)
        keys_at = history.keys_at("default", trail.verifier())
        assert [v.public_key for v in keys_at(5)] == [Verifier.from_vkey(first.old_vkey).public_key]
        assert [v.public_key for v in keys_at(6)] == [Verifier.from_vkey(second.old_vkey).public_key]
        assert keys_at(10) == [trail.verifier()]
        assert all(r.ok for r in trail.verify())


def test_cli_keys_rotate_list_and_vkey_all(data_dir):
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(5)])
    before = run("vkey", "--data", str(data_dir)).stdout.strip()
    rotated = run("keys", "rotate", "--data", str(data_dir))
    assert rotated.exit_code == 0, rotated.output
    assert "signing key rotated" in rotated.stdout and "old: test.trailseal+" in rotated.stdout
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(5, 10)])
    keys = run("vkey", "--all", "--data", str(data_dir)).stdout.split()
    assert len(keys) == 2 and keys[1] == before and keys[0] != before
    listed = run("keys", "list", "--data", str(data_dir))
    assert listed.exit_code == 0 and "retired" in listed.stdout and "default <= 5" in listed.stdout
    verified = run("verify", "--data", str(data_dir))
    assert verified.exit_code == 0, verified.output
    (data_dir / "signing.history").write_text("not json")
    broken = run("keys", "list", "--data", str(data_dir))
    assert broken.exit_code == 2 and "signing.history" in broken.stderr


def test_rotation_refused_while_another_process_writes(data_dir):
    with trailseal.open(data_dir) as writer:
        writer.append([make_event(0)])
        result = run("keys", "rotate", "--data", str(data_dir))
    assert result.exit_code == 2 and "another trailseal process" in result.stderr


def test_the_integrity_watch_of_serve_accepts_rotated_keys(data_dir):
    from trailseal.alerts.integrity import IntegrityWatch

    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(10)])
        rotate_signing_key(trail)
        trail.append([make_event(i) for i in range(10, 20)])
        watch = IntegrityWatch(trail)
        assert watch.check("default").ok, watch.states["default"].problem  # full verify: old and new key
        trail.append([make_event(i) for i in range(20, 25)])
        assert watch.check("default").ok  # incremental, under the new key

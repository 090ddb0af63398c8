"""`trailseal archive list/verify/restore/rotate-key` and reads that fall back to the archive
(`trailseal entry`, `GET /v1/events/{log}/{i}`), on a directory archive configured in trailseal.toml."""

from __future__ import annotations

import os
import warnings

import pytest
from typer.testing import CliRunner

import trailseal
from tests.archive.helpers import T0, FakeClock, entries, seal
from tests.conftest import make_event
from trailseal.api import create_app
from trailseal.archive.crypto import add_key_file
from trailseal.cli import app
from trailseal.ledger.tiles import encode_entry_bundle
from trailseal.store.base import Filters

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient  # noqa: E402

LATER = "2026-03-15T00:00:00Z"  # data_access (hot 30d) archived, authentication (hot 90d) still hot
EXPIRED = "2026-08-01T00:00:00Z"  # data_access (keep 180d) expired
RETENTION = """
[retention]
segment_entries = 20

[retention.policies]
authentication = { hot = "90d", keep = "1y" }
data_access = { hot = "30d", keep = "180d" }

[retention.archive]
type = "dir"
path = "archive"
key_file = "archive.keys"
"""


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def archived(data_dir):
    """100 events sealed at T0 (data_access = i % 5 in (1, 3)), retention applied at LATER."""
    (data_dir / "trailseal.toml").write_text((data_dir / "trailseal.toml").read_text() + RETENTION)
    add_key_file(data_dir / "archive.keys", "k1")
    seal(data_dir, FakeClock(T0), range(100))
    with trailseal.open(data_dir) as trail:
        original = entries(trail.store)
    applied = run("retention", "apply", "--data", str(data_dir), "--at", LATER)
    assert applied.exit_code == 0 and "archived 40" in applied.stdout, applied.output
    return data_dir, original


def test_list_verify_and_entry_reads_from_the_archive(archived):
    data_dir, original = archived
    listed = run("archive", "list", "--data", str(data_dir))
    assert listed.exit_code == 0 and "2 segments" in listed.stdout and "20 archived" in listed.stdout
    with trailseal.open(data_dir) as trail:
        assert 1 not in entries(trail.store)  # the payload left the store ...
        assert trail.entry(1) == original[1]  # ... and reads fall back to the archive
    shown = run("entry", "1", "--data", str(data_dir))
    assert shown.exit_code == 0 and shown.stdout_bytes == original[1]
    verified = run("archive", "verify", "--data", str(data_dir))
    assert verified.exit_code == 0 and "2 of 2 segments verified" in verified.stdout, verified.output
    assert run("verify", "--data", str(data_dir)).exit_code == 0
    assert run("keys", "rotate", "--data", str(data_dir)).exit_code == 0  # segments hold old-key checkpoints
    again = run("archive", "verify", "--data", str(data_dir))
    assert again.exit_code == 0 and "2 of 2 segments verified" in again.stdout, again.output


def test_raw_segments_hold_no_plaintext(archived):
    data_dir, original = archived
    needles = [b"evt-00000001", b"/api/v1/orders/3", b"orders_1", b'"category"', b"node-1"]
    assert all(n in original[1] + original[3] for n in needles)  # the control: the entries hold them
    segments = list((data_dir / "archive").rglob("*.tseg"))
    assert len(segments) == 2
    for path in segments:
        raw = path.read_bytes()
        assert [n for n in needles if n in raw] == []


def test_a_tampered_segment_fails_verify_and_reads(archived):
    data_dir, _ = archived
    segment = sorted((data_dir / "archive").rglob("*.tseg"))[0]
    os.chmod(segment, 0o644)
    raw = bytearray(segment.read_bytes())
    raw[-10] ^= 1
    segment.write_bytes(bytes(raw))
    verified = run("archive", "verify", "--data", str(data_dir))
    assert verified.exit_code == 1 and "FAILED" in verified.stderr and "1 of 2 segments verified" in verified.stderr
    shown = run("entry", "1", "--data", str(data_dir))
    assert shown.exit_code == 2 and "segment" in shown.stderr


def test_rotate_key_rewraps_without_reencrypting(archived):
    data_dir, original = archived
    before = {p: p.read_bytes() for p in (data_dir / "archive").rglob("*.tseg")}
    rotated = run("archive", "rotate-key", "--data", str(data_dir), "--new-id", "k2")
    assert rotated.exit_code == 0 and "rewrapped 2 segments under master key k2" in rotated.stdout, rotated.output
    for path, old in before.items():
        new = path.read_bytes()
        assert new != old and new[-1000:] == old[-1000:]  # key block changed, ciphertext did not
    assert run("archive", "verify", "--data", str(data_dir)).exit_code == 0
    again = run("archive", "rotate-key", "--data", str(data_dir))
    assert "rewrapped 0 segments" in again.stdout and "2 already were" in again.stdout
    with trailseal.open(data_dir) as trail:
        assert trail.entry(3) == original[3]
    env = run("archive", "rotate-key", "--data", str(data_dir), "--new-id", "k2")
    assert env.exit_code == 2 and "already has a master key 'k2'" in env.stderr


def test_restore_brings_payloads_back_byte_identical(archived):
    data_dir, original = archived
    bad = run("archive", "restore", "--data", str(data_dir), "--from", "50", "--to", "10")
    assert bad.exit_code == 2 and "--to 10 must be greater than --from 50" in bad.stderr
    bad_query = run("archive", "restore", "--data", str(data_dir), "--query", "colour:red")
    assert bad_query.exit_code == 2 and "unknown field" in bad_query.stderr
    some = run("archive", "restore", "--data", str(data_dir), "--query", "id:evt-00000006 id:evt-00000011")
    assert some.exit_code == 0 and "restored 2 entries matching" in some.stdout, some.output
    with trailseal.open(data_dir) as trail:
        assert sorted(set(original) - set(entries(trail.store)))[:3] == [1, 3, 8]  # 6 and 11 are back
        assert entries(trail.store)[6] == original[6]
    restored = run("archive", "restore", "--data", str(data_dir))
    assert restored.exit_code == 0 and "restored 38 entries of log default from 2 segments" in restored.stdout
    with trailseal.open(data_dir) as trail:
        assert entries(trail.store) == original
        assert all(r.ok for r in trail.verify())
        hits = trail.store.select(["default"], Filters(category="data_access"), None, 100)
        assert len(hits) == 40  # queries see them again


def test_api_reads_archived_entries_and_says_when_one_expired(archived):
    data_dir, original = archived
    with trailseal.open(data_dir) as trail:
        application = create_app(trail, scheduled=False, detect=False)
        token = application.state.service.tokens.create("reader")[0]
        with TestClient(application) as client:
            answer = client.get("/v1/events/default/1", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200 and answer.json()["sealed"].encode() == original[1]
            bundle = client.get("/tlog/default/tile/entries/000.p/100")  # C2SP tlog-tiles, archived entries too
            assert bundle.status_code == 200
            assert bundle.content == encode_entry_bundle([original[i] for i in range(100)])
    assert run("retention", "apply", "--data", str(data_dir), "--at", EXPIRED).exit_code == 0
    with trailseal.open(data_dir) as trail:
        application = create_app(trail, scheduled=False, detect=False)
        token = application.state.service.tokens.create("reader")[0]
        with TestClient(application) as client:
            gone = client.get("/v1/events/default/1", headers={"Authorization": f"Bearer {token}"})
            hot = client.get("/v1/events/default/0", headers={"Authorization": f"Bearer {token}"})
            bundle = client.get("/tlog/default/tile/entries/000.p/100")
    assert gone.status_code == 410 and "pruned by policy data_access on 2026-08-01" in gone.json()["error"]
    assert bundle.status_code == 404 and "pruned by policy data_access" in bundle.json()["error"]
    assert hot.status_code == 200 and hot.json()["sealed"].encode() == original[0]
    shown = run("entry", "1", "--data", str(data_dir))
    assert shown.exit_code == 2 and "pruned by policy data_access" in shown.stderr


def test_commands_without_an_archive_say_how_to_configure_one(data_dir):
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(0)])
    for command in (["archive", "list"], ["archive", "verify"], ["archive", "restore"], ["archive", "rotate-key"]):
        result = run(*command, "--data", str(data_dir))
        assert result.exit_code == 2 and "[retention.archive]" in result.stderr, (command, result.output)


def test_a_missing_master_key_is_a_clear_error_not_a_traceback(archived):
    data_dir, original = archived
    (data_dir / "archive.keys").unlink()
    shown = run("entry", "1", "--data", str(data_dir))
    assert shown.exit_code == 2 and "cannot be opened" in shown.stderr and "archive.keys" in shown.stderr
    assert run("entry", "0", "--data", str(data_dir)).stdout_bytes == original[0]  # hot entries still read
    listed = run("archive", "list", "--data", str(data_dir))
    assert listed.exit_code == 2 and "[retention] in trailseal.toml" in listed.stderr and "archive.keys" in listed.stderr


def test_verify_file_offline_with_only_the_vkey_and_the_master_key(archived, tmp_path):
    data_dir, _ = archived
    segment = sorted((data_dir / "archive").rglob("*.tseg"))[0]
    vkeys = run("vkey", "--all", "--data", str(data_dir)).stdout.split()
    (tmp_path / "vkey").write_text(vkeys[0] + "\n")
    ok = run("archive", "verify-file", str(segment), "--vkey", str(tmp_path / "vkey"),
             "--key-file", str(data_dir / "archive.keys"))
    assert ok.exit_code == 0 and "OK" in ok.stdout and "policy data_access" in ok.stdout, ok.output
    other = run("vkey", "--data", str(data_dir), "--log", "trailseal").stdout.strip()  # a key of another log
    wrong = run("archive", "verify-file", str(segment), "--vkey", other, "--key-file", str(data_dir / "archive.keys"))
    assert wrong.exit_code == 1 and "FAILED" in wrong.stderr
    missing = run("archive", "verify-file", str(tmp_path / "nope.tseg"), "--vkey", vkeys[0],
                  "--key-file", str(data_dir / "archive.keys"))
    assert missing.exit_code == 2 and "nope.tseg" in missing.stderr


def test_verify_segment_as_the_verify_command_spells_it(archived, tmp_path):
    """`trailseal verify segment FILE` (and a .tseg file given to `trailseal verify`) checks a segment
    offline, as `archive verify-file` does; a changed byte fails it."""
    data_dir, _ = archived
    segment = sorted((data_dir / "archive").rglob("*.tseg"))[0]
    vkey = run("vkey", "--all", "--data", str(data_dir)).stdout.split()[0]
    keys = ["--key-file", str(data_dir / "archive.keys")]
    for args in (["segment", str(segment)], [str(segment)]):
        ok = run("verify", *args, "--vkey", vkey, *keys)
        assert ok.exit_code == 0 and "OK" in ok.stdout and "policy data_access" in ok.stdout, ok.output
    changed = tmp_path / "changed.tseg"
    blob = bytearray(segment.read_bytes())
    blob[-20] ^= 1
    changed.write_bytes(bytes(blob))
    bad = run("verify", "segment", str(changed), "--vkey", vkey, *keys)
    assert bad.exit_code == 1 and "FAILED" in bad.stderr
    no_key = run("verify", "segment", str(segment), *keys)
    assert no_key.exit_code == 2 and "pass --vkey" in no_key.stderr
    no_file = run("verify", "segment", "--vkey", vkey)
    assert no_file.exit_code == 2 and "needs the segment file" in no_file.stderr

"""The archive CLI on a real S3 with Object Lock (SeaweedFS): apply, list, read through, verify, rotate
the master key (a new locked version, the old one kept), restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

import trailseal
from tests.archive.helpers import FakeClock, entries, seal
from trailseal.archive.crypto import add_key_file
from trailseal.cli import app


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_cli_round_trip_on_s3_object_lock(data_dir, seaweedfs, bucket_name, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    config = data_dir / "trailseal.toml"
    config.write_text(config.read_text() + f"""
[retention.policies]
data_access = {{ hot = "1h", keep = "2d" }}

[retention.archive]
type = "s3"
bucket = "{bucket_name}"
prefix = "trail/"
endpoint_url = "{seaweedfs.endpoint}"
region = "us-east-1"
create_bucket = true
key_file = "archive.keys"
""")
    add_key_file(data_dir / "archive.keys", "k1")
    now = datetime.now(UTC)  # S3 refuses a retain-until in the past: seal at real time, apply 2 h ahead
    seal(data_dir, FakeClock(now), range(100))
    with trailseal.open(data_dir) as trail:
        original = entries(trail.store)
    at = (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    applied = run("retention", "apply", "--data", str(data_dir), "--at", at)
    assert applied.exit_code == 0 and "archived 40" in applied.stdout, applied.output
    listed = run("archive", "list", "--data", str(data_dir))
    assert listed.exit_code == 0 and "1 segments" in listed.stdout and "40 archived" in listed.stdout
    shown = run("entry", "3", "--data", str(data_dir))
    assert shown.exit_code == 0 and shown.stdout_bytes == original[3]  # read through from S3

    rotated = run("archive", "rotate-key", "--data", str(data_dir), "--new-id", "k2")
    assert rotated.exit_code == 0 and "rewrapped 1 segments under master key k2" in rotated.stdout, rotated.output
    s3 = seaweedfs.client()
    versions = s3.list_object_versions(Bucket=bucket_name, Prefix="trail/")["Versions"]
    assert len(versions) == 2  # the old version, wrapped by k1, stays locked beside the new one
    assert all(s3.head_object(Bucket=bucket_name, Key=v["Key"], VersionId=v["VersionId"])["ObjectLockMode"]
               == "COMPLIANCE" for v in versions)
    verified = run("archive", "verify", "--data", str(data_dir))
    assert verified.exit_code == 0 and "1 of 1 segments verified" in verified.stdout, verified.output

    restored = run("archive", "restore", "--data", str(data_dir))
    assert restored.exit_code == 0 and "restored 40 entries" in restored.stdout
    with trailseal.open(data_dir) as trail:
        assert entries(trail.store) == original and all(r.ok for r in trail.verify())

"""S3 target against a real SeaweedFS: segments written with Object Lock in COMPLIANCE mode.

What SeaweedFS 4.48 enforces through its S3 API is proven here (each refusal is the server's); the
last test shows what it does not: its filer HTTP API deletes a locked version (see docs/retention.md).
"""

from __future__ import annotations

import time
import zlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from botocore.exceptions import ClientError

import trailseal
from tests.archive.helpers import FakeClock, entries, seal
from trailseal.archive import Archive, ArchiveError, RetentionLocked, open_target, parse_time
from trailseal.archive import segment as seg
from trailseal.archive.crypto import StaticKeys, new_key
from trailseal.archive.s3 import S3Target, object_lock_enabled
from trailseal.retention import Policies, Retention

POLICIES = {"policies": {"authentication": {"hot": "1h", "keep": "2d"},
                         "data_access": {"hot": "1h", "keep": "3d"}}}
NEEDLES = (b"evt-0000", b"/api/v1/orders/", b"user.login", b"db.query", b"orders_1")


@pytest.fixture
def target(s3, bucket_name) -> S3Target:
    return S3Target(s3, bucket_name, prefix="trail")


@pytest.fixture
def archived(data_dir, target, keys):
    """500 events sealed now (real time: S3 refuses a retain-until in the past), archived 2 h later."""
    clock = FakeClock(datetime.now(UTC))
    seal(data_dir, clock, range(500))
    with trailseal.open(data_dir, clock=clock) as trail:
        original = entries(trail.store)
        retention = Retention(trail.store, Policies.from_config(POLICIES), Archive(target, keys),
                              verifier=trail.verifier, clock=clock.moment)
        applied = retention.apply(clock.now + timedelta(hours=2))
        assert applied.count("archive") == 300
        yield trail, retention, original, [s.segment for s in applied.steps if s.segment]


def version(target: S3Target, key: str) -> str:
    (only,) = target._versions(key)
    return only


def refused(call) -> str:
    """Run an S3 call that the server must refuse; return its error code."""
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def test_bucket_is_created_with_object_lock_and_versioning(target, s3, bucket_name):
    assert object_lock_enabled(s3, bucket_name)
    assert s3.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Enabled"
    assert refused(lambda: s3.put_bucket_versioning(
        Bucket=bucket_name, VersioningConfiguration={"Status": "Suspended"})) == "InvalidBucketState"


def test_target_from_config_uses_the_standard_credential_chain(seaweedfs, bucket_name, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    conf = {"type": "s3", "bucket": bucket_name, "prefix": "logs/", "endpoint_url": seaweedfs.endpoint,
            "create_bucket": True}
    target = open_target(conf, seaweedfs.data_dir)
    assert isinstance(target, S3Target) and target.name == f"s3://{bucket_name}/logs/"
    with pytest.raises(ArchiveError, match="needs a bucket"):
        open_target({"type": "s3"}, seaweedfs.data_dir)


def test_a_bucket_without_object_lock_is_refused(s3, bucket_name):
    s3.create_bucket(Bucket=bucket_name)
    with pytest.raises(ArchiveError, match="no Object Lock"):
        S3Target(s3, bucket_name, create=False)


def test_archived_segments_read_back_verify_and_restore(archived, target, s3):
    trail, retention, original, keys = archived
    assert len(keys) == 2 and target.keys() == sorted(keys)
    for key in keys:
        manifest = retention.archive.manifest(key)
        assert retention.archive.verify(key, trail.verifier()).ok
        head = s3.head_object(Bucket=target.bucket, Key="trail/" + key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert abs(head["ObjectLockRetainUntilDate"] - parse_time(manifest.retain_until)) < timedelta(seconds=1)
    assert all(retention.read("default", i) == data for i, data in original.items())
    assert retention.verify("default", deep=True).ok
    assert retention.restore("default") == 300
    assert entries(trail.store) == original and trail.verify("default")[0].ok


def test_deleting_a_locked_version_is_refused(archived, target, s3):
    trail, retention, original, keys = archived
    key, full = keys[0], "trail/" + keys[0]
    vid = version(target, key)
    assert refused(lambda: s3.delete_object(Bucket=target.bucket, Key=full, VersionId=vid)) == "AccessDenied"
    batch = s3.delete_objects(Bucket=target.bucket, Delete={"Objects": [{"Key": full, "VersionId": vid}]})
    assert [e["Code"] for e in batch["Errors"]] == ["AccessDenied"]
    with pytest.raises(RetentionLocked):
        target.delete(key, datetime.now(UTC) + timedelta(days=400))
    marker = s3.delete_object(Bucket=target.bucket, Key=full)  # no version: only hides it
    assert marker["DeleteMarker"] is True
    assert refused(lambda: s3.get_object(Bucket=target.bucket, Key=full)) in {"NoSuchKey", "404"}
    assert target.keys() == sorted(keys) and version(target, key) == vid
    assert retention.archive.verify(key, trail.verifier()).ok
    assert retention.restore("default") == 300 and entries(trail.store) == original


def test_shortening_or_weakening_retention_is_refused(archived, target, s3):
    _, _, _, keys = archived
    full, vid = "trail/" + keys[0], version(target, keys[0])
    mode, until = target.retention(keys[0])
    earlier = {"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(days=1)}
    calls = {
        "shorten": lambda: s3.put_object_retention(Bucket=target.bucket, Key=full, VersionId=vid, Retention=earlier),
        "shorten with bypass": lambda: s3.put_object_retention(Bucket=target.bucket, Key=full, VersionId=vid,
                                                               Retention=earlier, BypassGovernanceRetention=True),
        "to governance": lambda: s3.put_object_retention(Bucket=target.bucket, Key=full, VersionId=vid, Retention={
            "Mode": "GOVERNANCE", "RetainUntilDate": until + timedelta(days=1)}),
    }
    assert {name: refused(call) for name, call in calls.items()} == dict.fromkeys(calls, "AccessDenied")
    assert target.retention(keys[0]) == (mode, until) == ("COMPLIANCE", until)
    later = until + timedelta(days=30)
    s3.put_object_retention(Bucket=target.bucket, Key=full, VersionId=vid,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later})
    assert target.retention(keys[0]) == ("COMPLIANCE", later)


def test_raw_objects_and_server_files_hold_no_plaintext(archived, target, s3, seaweedfs):
    _, _, original, keys = archived
    plaintext = b"".join(original.values())
    assert all(needle in plaintext for needle in NEEDLES)
    for key in keys:
        raw = s3.get_object(Bucket=target.bucket, Key="trail/" + key)["Body"].read()
        ciphertext = seg.split(raw).ciphertext
        assert not [n for n in NEEDLES if n in raw]
        assert len(zlib.compress(ciphertext, 9)) > 0.99 * len(ciphertext)  # indistinguishable from random
    control = b"CONTROL-" + bytes(range(256))  # proves the scan below sees what the server stores
    s3.put_object(Bucket=target.bucket, Key="control.bin", Body=control * 8)
    on_disk = [p.read_bytes() for p in seaweedfs.data_dir.rglob("*") if p.is_file()]
    assert any(control in data for data in on_disk)
    assert not [n for data in on_disk for n in NEEDLES if n in data]


def test_retention_end_allows_delete_but_a_legal_hold_blocks_it(target):
    until = datetime.now(UTC) + timedelta(seconds=2)
    target.put("free.tseg", b"one", until)
    target.put("held.tseg", b"two", until)
    target.set_hold("held.tseg", True)
    with pytest.raises(RetentionLocked):
        target.delete("free.tseg", datetime.now(UTC))
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.2)
    target.delete("free.tseg", datetime.now(UTC))
    with pytest.raises(RetentionLocked):
        target.delete("held.tseg", datetime.now(UTC))
    target.set_hold("held.tseg", False)
    target.delete("held.tseg", datetime.now(UTC))
    assert target.keys() == [] and target._versions("free.tseg") == []


def test_rotation_adds_a_locked_version_with_the_same_ciphertext(archived, target, s3, keys):
    trail, retention, original, segments = archived
    key = segments[0]
    old_version = version(target, key)
    before = seg.split(target.get(key))
    rotated = StaticKeys({"k2": new_key(), "k1": keys._keys["k1"]})
    retention.archive.keys = rotated
    assert sorted(retention.archive.rotate().rewrapped) == sorted(segments)
    versions = target._versions(key)
    assert len(versions) == 2 and versions[1] == old_version
    after = seg.split(target.get(key))
    assert after.ciphertext == before.ciphertext and after.key_block.kek == "k2"
    assert target.retention(key, versions[0]) == target.retention(key, old_version)
    assert refused(lambda: s3.delete_object(Bucket=target.bucket, Key="trail/" + key,
                                            VersionId=old_version)) == "AccessDenied"
    retention.archive.keys = StaticKeys({"k2": rotated._keys["k2"]})
    assert retention.archive.verify(key, trail.verifier()).ok


def test_finding_the_filer_http_api_bypasses_object_lock(archived, target, s3, seaweedfs):
    """SeaweedFS enforces Object Lock in its S3 gateway only: the filer's own HTTP API (on loopback here)
    deletes a COMPLIANCE-locked version. Deployments must not expose the filer, volume or master
    ports to anyone but the storage operators (-filer.disableHttp, firewall, security.toml JWT)."""
    _, _, _, keys = archived
    key, vid = keys[0], version(target, keys[0])
    reply = httpx.delete(f"{seaweedfs.filer_url}/buckets/{target.bucket}/trail/{key}.versions/v_{vid}")
    assert reply.status_code == 204
    assert refused(lambda: s3.get_object(Bucket=target.bucket, Key="trail/" + key, VersionId=vid)) == "NoSuchVersion"

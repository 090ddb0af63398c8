"""An S3 archive target: every segment written with Object Lock in COMPLIANCE mode until its
retention ends. Works with any S3 that implements Object Lock (AWS, MinIO, SeaweedFS).

The bucket must have Object Lock enabled (which also turns versioning on); ``ensure_bucket``
creates it so or refuses a bucket without it. A plain DeleteObject only adds a delete marker, so
``get`` falls back to the newest real version; ``delete`` removes every version, which the server
refuses while any of them is locked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from trailseal.archive import ArchiveError, RetentionLocked

MODE = "COMPLIANCE"
_REFUSED = {"AccessDenied", "InvalidRequest", "ObjectLocked"}


class S3Target:
    """Segments as objects under bucket/prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, create: bool = True):
        """Use bucket through a boto3 client; create it with Object Lock if create and it is missing."""
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.name = f"s3://{bucket}/{self.prefix}"
        self.ensure_bucket(create)

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> S3Target:
        """From `[retention.archive]`: bucket, prefix, endpoint_url, region; credentials from the
        standard AWS chain (AWS_ACCESS_KEY_ID ... or a profile)."""
        if not conf.get("bucket"):
            raise ArchiveError("[retention.archive] type = 's3' needs a bucket")
        return cls(make_client(conf.get("endpoint_url"), conf.get("region")), conf["bucket"],
                   conf.get("prefix", ""), create=bool(conf.get("create_bucket", False)))

    def ensure_bucket(self, create: bool) -> None:
        """The bucket must exist with Object Lock enabled; create it so if allowed."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not create or _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise ArchiveError(f"{self.name}: bucket is not usable: {_code(exc)}") from None
            self.client.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True)
        if not object_lock_enabled(self.client, self.bucket):
            raise ArchiveError(f"{self.name}: bucket has no Object Lock; create one with "
                               "ObjectLockEnabledForBucket=True (it cannot be added safely later)")

    def put(self, key: str, blob: bytes, retain_until: datetime) -> None:
        """Write one locked object version; refuse if the key already exists."""
        if self._versions(key):
            raise ArchiveError(f"{self.name}{key} already exists; archive keys are never reused")
        self._put(key, blob, retain_until)

    def _put(self, key: str, blob: bytes, retain_until: datetime) -> str:
        """PutObject with COMPLIANCE retention; returns the version id."""
        reply = self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=blob,
                                       ObjectLockMode=MODE, ObjectLockRetainUntilDate=retain_until)
        return reply.get("VersionId", "")

    def get(self, key: str) -> bytes:
        """The newest version's bytes, even behind a delete marker."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except ClientError as exc:
            if _code(exc) not in {"NoSuchKey", "404", "NoSuchVersion", "MethodNotAllowed"}:
                raise
        versions = self._versions(key)
        if not versions:
            raise ArchiveError(f"{self.name}: no segment {key}")
        reply = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key, VersionId=versions[0])
        return reply["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        """Keys with at least one stored version under prefix, sorted."""
        found = {v["Key"][len(self.prefix):] for v in self._list_versions(self.prefix + prefix)
                 if "ETag" in v}
        return sorted(found)

    def _list_versions(self, prefix: str) -> Iterator[dict]:
        """Every version and delete marker under prefix (marked by the absence of ETag)."""
        pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Versions", [])
            yield from page.get("DeleteMarkers", [])

    def _versions(self, key: str) -> list[str]:
        """Version ids of key's real versions (no delete markers), newest first."""
        rows = [v for v in self._list_versions(self.prefix + key) if v["Key"] == self.prefix + key and "ETag" in v]
        rows.sort(key=lambda v: v["LastModified"], reverse=True)
        return [v["VersionId"] for v in rows]

    def retention(self, key: str, version: str | None = None) -> tuple[str, datetime]:
        """(mode, retain_until) of key's newest (or the given) version."""
        version = version or self._versions(key)[0]
        reply = self.client.get_object_retention(Bucket=self.bucket, Key=self.prefix + key, VersionId=version)
        return reply["Retention"]["Mode"], reply["Retention"]["RetainUntilDate"]

    def replace(self, key: str, blob: bytes, retain_until: datetime) -> None:
        """A new locked version (rewrapped key); older versions stay until their own retention ends."""
        self._put(key, blob, retain_until)

    def delete(self, key: str, now: datetime) -> None:
        """Delete every version and marker of key; RetentionLocked if the server refuses any."""
        full = self.prefix + key
        for version in [v["VersionId"] for v in self._list_versions(full) if v["Key"] == full]:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=full, VersionId=version)
            except ClientError as exc:
                if _code(exc) in _REFUSED:
                    raise RetentionLocked(f"{self.name}{key} version {version}: {_code(exc)}") from None
                raise

    def set_hold(self, key: str, on: bool) -> None:
        """Object Lock legal hold on every real version of key."""
        for version in self._versions(key):
            self.client.put_object_legal_hold(Bucket=self.bucket, Key=self.prefix + key, VersionId=version,
                                              LegalHold={"Status": "ON" if on else "OFF"})


def make_client(endpoint_url: str | None = None, region: str | None = None, **credentials: str) -> Any:
    """A boto3 S3 client; path-style addressing for endpoints other than AWS."""
    config = Config(s3={"addressing_style": "path"} if endpoint_url else {},
                    retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config,
                        **credentials)


def object_lock_enabled(client: Any, bucket: str) -> bool:
    """Whether the bucket has Object Lock enabled."""
    try:
        conf = client.get_object_lock_configuration(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in {"ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration", "404"}:
            return False
        raise
    return conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"


def _code(exc: ClientError) -> str:
    """The S3 error code of a ClientError."""
    return str(exc.response.get("Error", {}).get("Code", ""))

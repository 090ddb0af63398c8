"""Fixtures for archive tests: master keys, sealed data dirs, and a real SeaweedFS with Object Lock."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

import trailseal
from tests.archive import seaweed
from tests.archive.helpers import FakeClock, seal
from trailseal.archive.crypto import StaticKeys, new_key


@pytest.fixture
def keys() -> StaticKeys:
    """One in-memory master key, 'k1'."""
    return StaticKeys({"k1": new_key()})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sealed(data_dir, clock) -> Iterator[trailseal.Trail]:
    """An open data dir with 1000 events sealed in 4 commits."""
    for start in range(0, 1000, 250):
        seal(data_dir, clock, range(start, start + 250))
    with trailseal.open(data_dir, clock=clock) as trail:
        yield trail


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[seaweed.Seaweed]:
    """A real SeaweedFS (weed server -filer -s3) on loopback for the whole session."""
    server = seaweed.start(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def s3(seaweedfs):
    """A boto3 client of the running SeaweedFS."""
    return seaweedfs.client()


@pytest.fixture
def bucket_name() -> str:
    """A fresh bucket name per test."""
    return f"trail-{secrets.token_hex(6)}"

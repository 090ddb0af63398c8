"""Fixtures for retention tests: a data dir on an injected clock, policies and a directory archive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import trailseal
from tests.archive.helpers import FakeClock
from trailseal.archive import Archive
from trailseal.archive.crypto import StaticKeys, new_key
from trailseal.archive.dir import DirTarget
from trailseal.retention import Policies, Retention, trail_actor_ids

CONFIG = {"policies": {
    "authentication": {"hot": "90d", "keep": "1y"},
    "data_access": {"hot": "30d", "keep": "180d"},
    "admin": {"keep": "7y"},
}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def trail(data_dir, clock) -> Iterator[trailseal.Trail]:
    """An open data dir whose `received` times come from the injected clock."""
    with trailseal.open(data_dir, clock=clock) as opened:
        yield opened


@pytest.fixture
def archive(tmp_path) -> Archive:
    return Archive(DirTarget(tmp_path / "archive"), StaticKeys({"k1": new_key()}))


@pytest.fixture
def retention(trail, archive, clock) -> Retention:
    return Retention(trail.store, Policies.from_config(CONFIG), archive, verifier=trail.verifier,
                     clock=clock.moment, actor_ids=trail_actor_ids(trail))

"""Fixtures for retention tests: a data dir on an injected clock, policies and a directory archive."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import trailseal
from tests.archive.helpers import T0, FakeClock
from tests.postgres.fixtures import pg_database, pg_server, pg_url  # noqa: F401 - PostgreSQL fixtures
from trailseal.archive import Archive
from trailseal.archive.crypto import StaticKeys, add_key_file, new_key
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


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator[tuple[str, trailseal.Trail, FakeClock]]:
    """(engine name, an open trail on that store with an injected clock, the clock)."""
    store = request.getfixturevalue("pg_url") if request.param == "postgresql" else "sqlite:trailseal.db"
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal", store=store))
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        yield request.param, trail, clock


def configured(directory):
    """CONFIG's policies and a directory archive in trailseal.toml, so reads find the archive too."""
    policies = "\n".join(f"{name} = " + json.dumps(spec).replace(":", " =") for name, spec in CONFIG["policies"].items())
    config = directory / "trailseal.toml"
    config.write_text(config.read_text() + f"\n[retention.policies]\n{policies}\n\n[retention.archive]\n"
                      'type = "dir"\nkey_file = "archive.keys"\n')
    add_key_file(directory / "archive.keys", "k1")
    return directory


def retention_of(trail, clock, archive=None) -> Retention:
    retention = Retention.from_trail(trail, clock=clock.moment)
    assert retention.policies.get("data_access").hot.text == "30d" and retention.archive is not None
    return retention

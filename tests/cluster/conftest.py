"""Cluster fixtures: PostgreSQL (a fresh schema per test), NATS (a fresh stream per test), data dirs
configured for scale-out, and `serve --role ...` processes on loopback."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import nats as nats_client
import pytest

import trailseal
from tests.cluster.natsd import NatsServer, listening, machine_url
from tests.postgres.fixtures import pg_database, pg_server, pg_url  # noqa: F401 - PostgreSQL fixtures
from trailseal import config


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """The NATS every cluster test shares: the machine's, or one we start when nothing listens."""
    url = machine_url()
    if listening(url):
        yield url
        return
    server = NatsServer().start()
    try:
        yield server.url
    finally:
        server.remove()


def bus_section(nats: str, tag: str) -> str:
    return (f'\n[bus]\nurl = "{nats}"\nstream = "TS_{tag.upper()}"\nsubject = "ts{tag}.events"\n'
            "fetch_batch = 2000\nleader_poll_seconds = 0.25\npublish_timeout_seconds = 3.0\n")


def cluster_data_dir(root: Path, pg: str, nats: str, tag: str | None = None) -> Path:
    """A data dir on a PostgreSQL schema with its own JetStream stream; alerts off (not under test)."""
    tag = tag or secrets.token_hex(4)
    path = trailseal.init(root / "data", origin="cluster.trailseal", store=pg)
    config = path / "trailseal.toml"
    head, alerts = config.read_text().split("[alerts]\n", 1)
    text = head + "[alerts]\n" + alerts.replace("enabled = true", "enabled = false", 1)
    config.write_text(text + bus_section(nats, tag))
    return path


def delete_stream(url: str, stream: str) -> None:
    async def drop() -> None:
        nc = await nats_client.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await nc.jetstream().delete_stream(stream)
        except Exception:  # noqa: BLE001 - already gone
            pass
        await nc.close()

    if listening(url):
        asyncio.run(drop())


@pytest.fixture
def cluster_dir(tmp_path: Path, pg_url: str, nats_url: str) -> Iterator[Path]:  # noqa: F811
    path = cluster_data_dir(tmp_path, pg_url, nats_url)
    yield path
    delete_stream(nats_url, config.load(path).bus.stream)

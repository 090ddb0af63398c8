"""A real trailseal server per test session, one ledger (log) per test, and a reader of what got sealed."""

from __future__ import annotations

import itertools
import re
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

import trailseal
from tests.api.server import Server
from trailseal.sdk.client import Client

_names = itertools.count()
with warnings.catch_warnings():  # starlette's TestClient would rather have httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """One real `trailseal serve` for the tests that only read what they sent."""
    data = trailseal.init(tmp_path_factory.mktemp("sdk") / "data", origin="test.trailseal")
    server = Server(data).start()
    yield server
    server.stop()


@contextmanager
def down(server: Server) -> Iterator[None]:
    """Keep the server's port bound but not listening: connections are refused, and no other test
    process can take the port while the server is down."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the killed server's TIME_WAITs
    holder.bind(("127.0.0.1", server.port))
    try:
        yield
    finally:
        holder.close()


def sealed(server: Server, log: str = "default", at_least: int = 0, timeout: float = 10.0) -> list[dict]:
    """The events sealed in ``log``, in ledger order (waiting up to ``timeout`` for ``at_least`` of them)."""
    deadline = time.monotonic() + timeout
    while True:
        events = read_log(server, log)
        if len(events) >= at_least or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def read_log(server: Server, log: str) -> list[dict]:
    rows, cursor = [], None
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}) as http:
        while True:
            params = {"log": log, "limit": 1000, **({"cursor": cursor} if cursor else {})}
            response = http.get("/v1/events", params=params)
            if response.status_code == 404:
                return []
            response.raise_for_status()
            page = response.json()
            rows += page["events"]
            cursor = page["next_cursor"]
            if not cursor:
                return [row["event"] for row in sorted(rows, key=lambda r: r["index"])]


@pytest.fixture
def log_name(request) -> str:
    """A ledger of this test's own on the shared server."""
    return re.sub(r"[^a-z0-9._-]+", "-", f"t{next(_names)}-{request.node.name.lower()}")[:60]


@pytest.fixture
def client(live, log_name, tmp_path):
    """A client of the shared server writing to this test's ledger, quick to flush."""
    c = Client(live.url, live.admin, log=log_name, source="tests", spool_dir=tmp_path / "spool",
               flush_interval=0.05, max_backoff=0.5)
    yield c
    c.close(timeout=5)


@pytest.fixture
def events(live, client, log_name):
    """``events()``: flush the client and return what the server sealed in this test's ledger."""
    def read(at_least: int = 0) -> list[dict]:
        assert client.flush(10), client.stats
        return sealed(live, log_name, at_least)

    return read

"""Fixtures for the receivers: the API with the receiver routes, sealed-event readers."""

from __future__ import annotations

import warnings

import pytest

import trailseal
from trailseal.api import create_app

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from starlette.testclient import TestClient  # noqa: E402


@pytest.fixture
def rapi(data_dir):
    """(client, tokens by role, app) with the receiver routes mounted."""
    trail = trailseal.open(data_dir)
    app = create_app(trail)
    store = app.state.service.tokens
    tokens = {role: store.create(role)[0] for role in ("ingest", "reader", "admin")}
    tokens["other"] = store.create("ingest", logs=("other",))[0]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens, app


def sealed(trail, log: str = "default") -> list[dict]:
    """Every sealed event of a log, in order, as a reader sees it (erasable values joined back)."""
    size = trail.store.tree_size(log)
    rows = [(log, index, data) for index, data in trail.store.read_entries(log, 0, size)]
    return [row["event"] for row in trail.read_events(rows)]


def notes(trail) -> list[dict]:
    """The rejection notes in the meta log (other meta events, such as alerts, are left out)."""
    return [e for e in sealed(trail, "trailseal") if e["action"] == "trailseal.ingest.rejected"]


def sealed_in(data_dir, log: str = "default") -> list[dict]:
    """Sealed events read through a second, read-only handle on the data dir."""
    trail = trailseal.open(data_dir)
    try:
        return sealed(trail, log)
    finally:
        trail.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """One real server per test session (worker); each test writes to its own log via scoped tokens."""
    from tests.api.server import Server

    data = trailseal.init(tmp_path_factory.mktemp("live") / "data", origin="live.trailseal")
    server = Server(data).start()
    yield server
    server.stop()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll until predicate() is truthy; return its value, or fail after timeout seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")

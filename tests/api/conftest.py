"""An in-process API over a fresh data dir, with one token per role."""

from __future__ import annotations

import warnings

import pytest

import trailseal
from trailseal.api import create_app

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from starlette.testclient import TestClient  # noqa: E402


@pytest.fixture
def api(data_dir):
    """(client, tokens by role, app) — tokens: ingest, reader, auditor, admin, other (ingest for log 'other')."""
    trail = trailseal.open(data_dir)
    app = create_app(trail)
    store = app.state.service.tokens
    tokens = {role: store.create(role)[0] for role in ("ingest", "reader", "auditor", "admin")}
    tokens["other"] = store.create("ingest", logs=("other",))[0]
    tokens["other_reader"] = store.create("reader", logs=("other",))[0]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens, app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""Fixtures shared by every test: the shared testdata, data dirs, realistic events."""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


def _share_bytecode() -> None:
    """Under PYTHONDONTWRITEBYTECODE (set on the CI machine) every process the tests start (servers, CLI
    runs, workers: hundreds) would compile trailseal again, ~0.4 s CPU each: keep their bytecode in one
    cache outside the source tree instead."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is None:
        return
    prefix = os.environ.setdefault("PYTHONPYCACHEPREFIX",
                                   os.path.join(tempfile.gettempdir(), f"trailseal-pycache-{os.getuid()}"))
    sys.pycache_prefix, sys.dont_write_bytecode = prefix, False


_share_bytecode()


@pytest.fixture(scope="session")
def testdata() -> Path:
    """../shared/testdata beside the checkout; its absence is a broken checkout, not a skip."""
    if not SHARED_TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {SHARED_TESTDATA}")
    return SHARED_TESTDATA


ACTIONS = [("authentication", "user.login"), ("data_access", "db.query"), ("admin", "user.role.grant"),
           ("data_access", "http.request"), ("config", "k8s.configmaps.update")]


BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def _time_of(i: int) -> str:
    """Event i happens 10 ms after event i-1, like a busy real stream."""
    return (BASE_TIME + timedelta(milliseconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll until predicate() is truthy (True) or ``timeout`` seconds pass (then its last answer, as a bool)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def make_event(i: int, rng: random.Random | None = None, **over) -> dict:
    """A realistic event; ``i`` makes its id and content unique."""
    rng = rng or random.Random(i)
    category, action = ACTIONS[i % len(ACTIONS)]
    event = {
        "id": f"evt-{i:08d}",
        "time": _time_of(i),
        "category": category,
        "action": action,
        "outcome": rng.choice(["success", "success", "failure", "error"]),
        "actor": {"id": f"user{rng.randrange(5000)}", "type": "user", "ip": f"10.{i % 256}.{(i // 256) % 256}.7",
                  "session": f"s-{i % 1013}"},
        "source": {"component": rng.choice(["web", "api", "db"]), "kind": "app", "host": "node-1"},
        "target": {"type": "table", "id": f"orders_{i % 13}"},
        "request": {"method": "POST", "path": f"/api/v1/orders/{i}", "status": 200, "trace_id": f"{i:032x}"},
        "attributes": {"latency_ms": i % 500, "tags": ["pci", "eu"], "note": "ok"},
    }
    event.update(over)
    return event


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An initialized, empty data dir."""
    import trailseal

    return trailseal.init(tmp_path / "data", origin="test.trailseal")

"""A data set built to satisfy PCI DSS 10, with knobs to break it one way at a time."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trailseal
from trailseal.api import create_app
from trailseal.event import format_time

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient  # noqa: E402

BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PERIOD = "2026-11-01..2026-11-30"
SOURCES = ("web", "db", "iam", "k8s", "auditd")
# (source, kind, category, action, outcome) — what each source contributes
EVENTS = [
    ("web", "app", "authentication", "user.login", "success"),
    ("web", "app", "authentication", "user.login", "failure"),
    ("db", "database", "data_access", "db.query", "success"),
    ("iam", "app", "admin", "user.role.grant", "success"),
    ("iam", "app", "account", "user.password.change", "success"),
    ("k8s", "kubernetes", "config", "k8s.configmaps.update", "success"),
    ("k8s", "kubernetes", "data_change", "k8s.secrets.delete", "success"),
    ("auditd", "infra", "system", "audit.start", "success"),
]


class Clock:
    """trailseal's trusted clock, pinned near the events so the measured clock skew is realistic."""

    def __init__(self, start: datetime = BASE) -> None:
        self.now = start

    def __call__(self) -> str:
        return format_time(self.now)


def event(i: int, spec: tuple, moment: datetime, drop_field: str | None) -> dict:
    source, kind, category, action, outcome = spec
    record = {
        "id": f"pci-{i:05d}", "time": format_time(moment), "category": category, "action": action,
        "outcome": outcome,
        "actor": {"id": f"user{i % 7}", "type": "user", "ip": f"10.1.0.{i % 200}"},
        "source": {"component": source, "kind": kind, "host": f"{source}-1"},
        "target": {"type": "resource", "id": f"{category}-{i % 5}"},
    }
    if drop_field == "target":
        del record["target"]
    return record


def build(root: Path, *, drop_source: str | None = None, drop_field: str | None = None,
          keep: str = "1y", rounds: int = 6, base: datetime = BASE) -> tuple[Path, Clock]:
    """Init a data dir configured for PCI (expected sources, 12m/3m retention) and fill it."""
    directory = trailseal.init(root / "data", origin="pci.trailseal")
    config = directory / "trailseal.toml"
    config.write_text(config.read_text() + f"""
[compliance]
expected_sources = {list(SOURCES)!r}

[retention.policies]
everything = {{ hot = "3m", keep = "{keep}" }}
""".replace("'", '"'))
    clock = Clock(base)
    with trailseal.open(directory, clock=clock) as trail:
        i = 0
        for round_ in range(rounds):
            moment = base + timedelta(minutes=round_)
            batch = []
            for spec in EVENTS:
                if spec[0] == drop_source:
                    continue
                batch.append(event(i, spec, moment + timedelta(seconds=i % 30), drop_field))
                i += 1
            clock.now = moment + timedelta(seconds=35)
            trail.append(batch)
        clock.now = base + timedelta(minutes=rounds)
        read_once(trail)
        from trailseal.validate import record, run_validation

        record(trail, run_validation(trail, now=clock.now))
    return directory, clock


def read_once(trail) -> None:
    """An auditor reads the logs through the API: that read is sealed in the meta log (10.2.1.3)."""
    app = create_app(trail, detect=False, scheduled=False)
    token = app.state.service.tokens.create("auditor", "assessor")[0]
    client = TestClient(app)
    response = client.get("/v1/events?limit=5", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    app.state.service.tokens.close()

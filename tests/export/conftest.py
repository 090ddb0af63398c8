"""A sealed data dir shared by the export tests: every category, several commits, one erased subject."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import trailseal
from tests.api.conftest import api  # noqa: F401 - the in-process API fixture, reused here
from tests.conftest import make_event

KINDS = [
    {"category": "authentication", "action": "user.login"},
    {"category": "authentication", "action": "user.logout"},
    {"category": "session", "action": "session.start"},
    {"category": "account", "action": "user.password.reset", "target": {"type": "user", "id": "bob"}},
    {"category": "account", "action": "user.create", "target": {"type": "user", "id": "carol"}},
    {"category": "account", "action": "user.mfa.disable"},
    {"category": "admin", "action": "user.role.grant", "target": {"type": "role", "id": "admin"}},
    {"category": "authorization", "action": "policy.revoke"},
    {"category": "authorization", "action": "access.check", "request": None},
    {
        "category": "data_access",
        "action": "db.query",
        "request": None,
        "source": {"component": "pg", "kind": "database", "format": "pgaudit"},
        "target": {"type": "database", "id": "shop"},
    },
    {"category": "data_change", "action": "db.insert", "target": {"type": "table", "id": "orders"}},
    {"category": "data_access", "action": "http.request"},
    {
        "category": "data_access",
        "action": "k8s.secrets.get",
        "request": None,
        "source": {"component": "kube-apiserver", "kind": "kubernetes"},
    },
    {"category": "config", "action": "k8s.configmaps.update"},
    {
        "category": "config",
        "action": "s3.bucket.delete",
        "request": None,
        "target": None,
        "actor": {"id": "ci-bot", "type": "service"},
    },
    {"category": "system", "action": "service.restart", "request": None, "target": None},
    {"category": "system", "action": "disk.full", "request": None, "target": None, "severity": "high"},
    {
        "category": "finding",
        "action": "alert.raised",
        "severity": "critical",
        "reason": "brute force",
        "attributes": {"rule_id": "r-1", "title": "Brute force"},
    },
    {"category": "finding", "action": "finding.close", "source": {"component": "zap", "kind": "scanner"}},
]


def varied_event(i: int) -> dict:
    """make_event(i) reshaped into one of KINDS (None removes a field)."""
    event = make_event(i)
    event.update(KINDS[i % len(KINDS)])
    return {k: v for k, v in event.items() if v is not None}


@pytest.fixture(scope="module")
def sealed(tmp_path_factory) -> Path:
    """A data dir with 380 varied events in 4 commits, and the subject `gone` erased."""
    directory = trailseal.init(tmp_path_factory.mktemp("export") / "data", origin="test.trailseal")
    with trailseal.open(directory) as trail:
        for start in range(0, 380, 95):
            trail.append([varied_event(i) for i in range(start, start + 95)])
        trail.append([make_event(1000, actor={"id": "gone", "ip": "192.0.2.9", "type": "user"})])
        trail.erase("gone")
    return directory


@pytest.fixture
def trail(sealed):
    with trailseal.open(sealed) as opened:
        yield opened


def rewrite(source: Path, target: Path, change, compression: int = zipfile.ZIP_DEFLATED) -> None:
    """Copy a zip, passing each (name, bytes) through change(name, data) -> bytes | None (None drops it)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info))
            if data is not None:
                new.writestr(info.filename, data)

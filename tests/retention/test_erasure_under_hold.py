"""GDPR Art. 17(3)(e): a subject's personal values are not erased while a legal hold keeps events of
theirs; erasure says which hold, changes nothing, and goes ahead once the hold is released."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import trailseal
from tests.api.conftest import bearer
from tests.conftest import make_event
from trailseal.api import create_app
from trailseal.cli import app
from trailseal.datadir import ErasureRefused
from trailseal.retention import Retention


def event_of(i: int, actor: str, log: str = "default") -> dict:
    return make_event(i, log=log, actor={"id": actor, "type": "user", "ip": f"203.0.113.{i}"})


def vault_subjects(trail) -> set[str]:
    conn = trail.store._conn()  # noqa: SLF001
    return {row[0] for row in conn.execute("SELECT DISTINCT subject FROM vault").fetchall()}


@pytest.mark.parametrize("hold", [{"query": "actor:alice category:admin"}, {"ids": ["evt-00000002"]}])
def test_a_held_subject_is_not_erased_until_the_hold_is_released(engine, hold):
    name, trail, clock = engine
    trail.append([event_of(1, "alice"), event_of(2, "alice"), event_of(3, "bob"), event_of(4, "alice", "other")])
    retention = Retention.from_trail(trail, clock=clock.moment)
    placed = retention.hold(reason="case 12", **hold)
    size = trail.store.tree_size("trailseal")
    with pytest.raises(ErasureRefused, match=rf"hold {placed.id} \(case 12\) keeps events of this subject"):
        trail.erase("alice")
    with pytest.raises(ErasureRefused):
        trail.erase("alice", "default")
    assert "alice" in vault_subjects(trail) and trail.store.tree_size("trailseal") == size  # nothing sealed
    assert trail.erase("alice", "other") >= 1  # the hold keeps nothing of hers there
    assert trail.erase("bob") >= 1
    retention.release(placed.id)
    assert trail.erase("alice") >= 1
    assert not vault_subjects(trail) & {"alice", "bob"}


def test_a_hold_matching_no_event_of_the_subject_does_not_stop_erasure(engine):
    name, trail, clock = engine
    trail.append([event_of(1, "alice"), event_of(2, "bob")])
    Retention.from_trail(trail, clock=clock.moment).hold(reason="case 13", query="actor:bob")
    assert trail.erase("alice") >= 1


def test_the_command_and_the_api_say_which_hold(data_dir):
    from starlette.testclient import TestClient  # after tests.api.conftest, which quiets its warning

    with trailseal.open(data_dir) as trail:
        trail.append([event_of(1, "alice")])
        Retention.from_trail(trail).hold(reason="case 14", query="actor:alice")
    done = CliRunner().invoke(app, ["erase", "--subject", "alice", "--data", str(data_dir)])
    assert done.exit_code == 2 and "hold 1 (case 14) keeps events of this subject" in done.output
    trail = trailseal.open(data_dir)
    service = create_app(trail)
    admin = service.state.service.tokens.create("admin")[0]
    with TestClient(service, raise_server_exceptions=False) as client:
        refused = client.post("/v1/admin/erase", json={"subject": "alice"}, headers=bearer(admin))
        assert refused.status_code == 409 and "hold 1 (case 14)" in refused.json()["error"]
        assert "alice" in vault_subjects(trail)

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


def test_the_application_role_on_postgresql_says_it_cannot_check_holds(request, tmp_path):
    """Erasure as the writer role, which may not read retention's tables: a clear refusal, nothing erased;
    once the holds are readable to it, the check runs and the held subject stays."""
    import secrets

    from psycopg import sql

    from tests.postgres.fixtures import admin, with_params
    from trailseal.store.base import StoreError

    url = request.getfixturevalue("pg_url")
    owner_dir = trailseal.init(tmp_path / "owner", origin="test.trailseal", store=url)
    with trailseal.open(owner_dir) as trail:
        trail.append([event_of(1, "alice"), event_of(2, "bob")])
        Retention.from_trail(trail).hold(reason="case 15", query="actor:alice")
    role = f"trailseal_app_{secrets.token_hex(4)}"
    with admin(url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute("SELECT trailseal_grant_writer(%s)", (role,))
        conn.execute(sql.SQL("GRANT DELETE ON search_ips TO {}").format(sql.Identifier(role)))
    app_dir = trailseal.init(tmp_path / "app", origin="test.trailseal", store=with_params(url, user=role))
    for name in ("privacy.key", "signing.key", "signing.vkey"):  # the same log and keys, another role
        (app_dir / name).write_bytes((owner_dir / name).read_bytes())
    try:
        with trailseal.open(app_dir) as trail:
            with pytest.raises(StoreError, match="may not read the legal holds"):
                trail.erase("bob")
            assert {"alice", "bob"} <= vault_subjects(trail)
        with admin(url) as conn:
            conn.execute(sql.SQL("GRANT SELECT ON legal_holds, legal_hold_ids, pruned TO {}").format(
                sql.Identifier(role)))
        with trailseal.open(app_dir) as trail:
            with pytest.raises(ErasureRefused, match="case 15"):
                trail.erase("alice")
            assert trail.erase("bob") >= 1
    finally:
        with admin(url) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

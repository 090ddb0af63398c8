"""`actor:<plaintext>` finds an actor whatever the policy sealed its id as: a commitment (erasable, the
default), a keyed pseudonym, or the id as sent. Every reader resolves it the same way
(``Protection.sealed_forms``): the query language, timelines, the API's `actor=` filter, `trailseal search`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import trailseal
from tests.api.conftest import bearer
from tests.conftest import make_event
from tests.postgres.fixtures import pg_database, pg_server, pg_url  # noqa: F401 - PostgreSQL fixtures
from trailseal.api import create_app
from trailseal.cli import app
from trailseal.query.sealed import search_trail, timeline_trail

ACTIONS = ["pseudonymize", "keep", "erasable"]


def sealed_with(directory, action: str):
    """A data dir whose policy seals actor.id by ``action``, with three events of alice and two of bob."""
    config = directory / "trailseal.toml"
    config.write_text(config.read_text() + f'\n[privacy.fields]\n"actor.id" = "{action}"\n')
    with trailseal.open(directory) as trail:
        trail.append([make_event(i, actor={"id": "alice" if i % 2 == 0 else "bob", "type": "user"})
                      for i in range(5)])
    return directory


def stored_actor_ids(trail) -> set[str]:
    return {json.loads(data)["actor"]["id"] for _, data in trail.store.read_entries("default", 0, 5)}


@pytest.mark.parametrize("action", ACTIONS)
def test_the_query_language_and_timelines_find_the_actor(data_dir, action):
    with trailseal.open(sealed_with(data_dir, action)) as trail:
        stored = stored_actor_ids(trail)
        prefix = {"pseudonymize": "ps:", "keep": "", "erasable": "pd:"}[action]
        assert all(value.startswith(prefix) for value in stored) and len(stored) == 2
        found = search_trail(trail, "actor.id:alice")
        assert sorted(e["id"] for e in found.events) == ["evt-00000000", "evt-00000002", "evt-00000004"]
        assert [e["id"] for e in timeline_trail(trail, "actor", "bob")] == ["evt-00000001", "evt-00000003"]
        assert search_trail(trail, "actor.id:carol").events == []


@pytest.mark.parametrize("action", ACTIONS)
def test_the_api_and_the_command_find_the_actor(data_dir, action):
    sealed_with(data_dir, action)
    trail = trailseal.open(data_dir)
    service = create_app(trail)
    from starlette.testclient import TestClient

    reader = service.state.service.tokens.create("reader")[0]
    with TestClient(service, raise_server_exceptions=False) as client:
        found = client.get("/v1/events", params={"actor": "alice"}, headers=bearer(reader))
        assert found.status_code == 200
        assert sorted(e["index"] for e in found.json()["events"]) == [0, 2, 4]
    local = CliRunner().invoke(app, ["search", "--data", str(data_dir), "--actor", "bob"])
    assert local.exit_code == 0, local.output
    assert "evt-00000001" in local.output and "evt-00000003" in local.output and "evt-00000000" not in local.output


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_every_field_the_default_policy_seals_is_found_by_its_value(request, tmp_path, engine):
    """Sessions are pseudonymized, names and user agents committed: exact terms and session timelines
    still find them (their sealed forms), and a value nobody sent finds nothing."""
    store = request.getfixturevalue("pg_url") if engine == "postgresql" else "sqlite:trailseal.db"
    with trailseal.open(trailseal.init(tmp_path / "data", origin="test.trailseal", store=store)) as trail:
        trail.append([make_event(i, actor={"id": "alice", "type": "user", "session": "sess-42" if i < 3 else "sess-7",
                                           "name": "Alice Doe", "user_agent": "curl/8.5"}) for i in range(5)])
        stored = json.loads(next(iter(trail.store.read_entries("default", 0, 1)))[1])["actor"]
        assert stored["session"].startswith("ps:") and stored["name"].startswith("pd:")
        for query, count in [("session:sess-42", 3), ("actor.session:sess-7", 2), ('actor.name:"Alice Doe"', 5),
                             ("actor.user_agent:curl/8.5", 5), ('actor.name:"Bob Doe"', 0),
                             ("session:sess-42 AND NOT actor.user_agent:curl/8.5", 0)]:
            assert len(search_trail(trail, query).events) == count, query
        assert [e["id"] for e in timeline_trail(trail, "session", "sess-7")] == ["evt-00000003", "evt-00000004"]
        assert {e["actor"]["session"] for e in timeline_trail(trail, "session", "sess-42")} == {stored["session"]}

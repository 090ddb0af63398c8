"""The query language through the API and the CLI, on a privacy-protected data dir."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.api.conftest import bearer
from tests.conftest import make_event
from trailseal.cli import app as cli


def seed(client, token):
    events = []
    for i in range(12):
        event = make_event(i, outcome="failure" if i % 3 == 0 else "success")
        event["actor"]["id"] = "alice" if i % 2 == 0 else "bob"
        events.append(event)
    assert client.post("/v1/events", json=events, headers=bearer(token)).status_code == 200


def test_q_search_resolves_sealed_actors_and_pages(api):
    client, tokens, _ = api
    seed(client, tokens["ingest"])
    h = bearer(tokens["reader"])
    found = client.get("/v1/events", params={"q": "actor:alice outcome:failure", "log": "default"}, headers=h).json()
    assert sorted(e["index"] for e in found["events"]) == [0, 6]
    assert {e["event"]["actor"]["id"] for e in found["events"]} == {"alice"}
    page1 = client.get("/v1/events", params={"q": "actor:bob", "log": "default", "limit": 4}, headers=h).json()
    page2 = client.get("/v1/events", params={"q": "actor:bob", "log": "default", "limit": 4,
                                             "cursor": page1["next_cursor"]}, headers=h).json()
    assert len(page1["events"]) == 4 and len(page2["events"]) == 2
    assert not {e["index"] for e in page1["events"]} & {e["index"] for e in page2["events"]}
    nobody = client.get("/v1/events", params={"q": "actor:mallory", "log": "default"}, headers=h).json()
    assert nobody["events"] == []


def test_q_errors_point_at_the_column(api):
    client, tokens, _ = api
    bad = client.get("/v1/events", params={"q": "actor:alice outcome:", "log": "default"},
                     headers=bearer(tokens["reader"]))
    assert bad.status_code == 400 and "col" in bad.json()["error"]
    mixed = client.get("/v1/events", params={"q": "actor:alice", "outcome": "failure"},
                       headers=bearer(tokens["reader"]))
    assert mixed.status_code == 400


def test_cli_query_and_timeline(data_dir):
    import trailseal

    with trailseal.open(data_dir) as log:
        events = [make_event(i) for i in range(6)]
        for event in events:
            event["actor"]["id"] = "carol"
        log.append(events)
    result = CliRunner().invoke(cli, ["query", "actor:carol", "--data", str(data_dir)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 6 and rows[0]["event"]["actor"]["id"] == "carol"
    timeline = CliRunner().invoke(cli, ["timeline", "actor:carol", "--data", str(data_dir)])
    assert timeline.exit_code == 0 and timeline.stdout.count("carol") == 6
    lines = timeline.stdout.splitlines()
    assert lines == sorted(lines), "a timeline is in time order"
    bad = CliRunner().invoke(cli, ["query", "actor:(", "--data", str(data_dir)])
    assert bad.exit_code == 2 and "col" in bad.stderr

"""Legal holds over the API and from the command line beside a running server: placed, listed and
released while `serve` holds the writer lock; each sealed with who asked; bad requests get a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import trailseal
from tests.api.conftest import bearer
from tests.api.server import Server
from tests.conftest import make_event
from trailseal.datadir import ErasureRefused


def records(trail, action: str) -> list[dict]:
    """The sealed `trailseal` log events of one action."""
    found = [json.loads(data) for _, data in trail.store.read_entries("trailseal", 0, 2**62)]
    revealed = trail.read_events([("trailseal", i, json.dumps(e).encode()) for i, e in enumerate(found)])
    return [r["event"] for r in revealed if r["event"]["action"] == action]


def test_a_hold_placed_listed_and_released_over_the_api(api):
    client, tokens, app = api
    events = [make_event(i, actor={"id": "alice" if i < 2 else "bob", "type": "user"}) for i in range(4)]
    assert client.post("/v1/events", json=events, headers=bearer(tokens["ingest"])).status_code == 200
    admin = app.state.service.tokens.create("admin")
    placed = client.post("/v1/admin/holds", json={"reason": "case 21", "query": "actor:alice"},
                         headers=bearer(admin[0]))
    assert placed.status_code == 201 and placed.json()["reason"] == "case 21"
    hold = placed.json()["id"]
    listed = client.get("/v1/admin/holds", headers=bearer(tokens["auditor"]))
    assert [h["id"] for h in listed.json()["holds"]] == [hold]
    trail = app.state.service.trail
    with pytest.raises(ErasureRefused, match="case 21"):
        trail.erase("alice")
    (record,) = records(trail, "retention.hold.add")
    assert record["actor"]["id"] == f"token:{admin[1].id}" and record["attributes"]["reason"] == "case 21"

    released = client.post(f"/v1/admin/holds/{hold}/release", headers=bearer(admin[0]))
    assert released.status_code == 200 and released.json()["released"]
    assert client.get("/v1/admin/holds", headers=bearer(tokens["admin"])).json()["holds"] == []
    every = client.get("/v1/admin/holds", params={"all": "true"}, headers=bearer(tokens["admin"])).json()
    assert [h["id"] for h in every["holds"]] == [hold]
    assert records(trail, "retention.hold.release")[0]["actor"]["id"] == f"token:{admin[1].id}"
    again = client.post(f"/v1/admin/holds/{hold}/release", headers=bearer(admin[0]))
    assert again.status_code == 404 and "no active legal hold" in again.json()["error"]
    assert trail.erase("alice") >= 1


@pytest.mark.parametrize("body, status, reason", [
    ({"reason": "", "query": "actor:x"}, 400, "reason: say why"),
    ({"reason": "x" * 1001, "query": "actor:x"}, 400, "reason: say why"),
    ({"reason": "case"}, 400, "needs --ids or --query"),
    ({"reason": "case", "query": "nonsense"}, 400, "use field:value terms"),
    ({"reason": "case", "query": "actor:x", "color": "red"}, 400, "expected"),
    ({"reason": 7, "query": "actor:x"}, 400, "expected"),
    ({"reason": "case", "ids": ["e"] * 10_001}, 400, "at most 10000"),
    (b'{"reason": "case", "query": "actor:\\xff"}', 400, "expected"),
    (b"[" * 100_000, 400, "expected"),
    (b'{"reason": "' + b"x" * (1 << 20) + b'"}', 413, "at most"),
])
def test_bad_hold_requests_get_a_reason_and_place_nothing(api, body, status, reason):
    client, tokens, app = api
    sent = (client.post("/v1/admin/holds", content=body, headers=bearer(tokens["admin"])) if isinstance(body, bytes)
            else client.post("/v1/admin/holds", json=body, headers=bearer(tokens["admin"])))
    assert sent.status_code == status and reason in sent.json()["error"], sent.text[:300]
    assert client.get("/v1/admin/holds", headers=bearer(tokens["admin"])).json()["holds"] == []


def test_a_bad_hold_id_is_refused(api):
    client, tokens, _ = api
    for raw in ("x", "-1", "9" * 19):
        answer = client.post(f"/v1/admin/holds/{raw}/release", headers=bearer(tokens["admin"]))
        assert answer.status_code == 400 and "hold id must be a positive integer" in answer.json()["error"]


def test_the_command_names_who_placed_a_local_hold(data_dir):
    env = {**os.environ, "USER": "judge-dredd"}
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(1)])
    done = subprocess.run([sys.executable, "-m", "trailseal", "hold", "add", "--reason", "case 22", "--ids",
                           "evt-00000001", "--data", str(data_dir)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0 and "hold 1 placed" in done.stdout
    with trailseal.open(data_dir) as trail:
        assert records(trail, "retention.hold.add")[0]["actor"]["id"] == "cli:judge-dredd"


def test_holds_from_the_command_line_beside_a_running_server(data_dir):
    server = Server(data_dir).start()
    try:
        env = {key: value for key, value in os.environ.items() if key not in ("TRAILSEAL_URL", "TRAILSEAL_TOKEN")}

        def run(*args: str, token: str | None = server.admin) -> subprocess.CompletedProcess:
            auth = ["--token", token] if token else []
            return subprocess.run([sys.executable, "-m", "trailseal", "hold", *args, "--url", server.url, *auth],
                                  capture_output=True, text=True, env=env, timeout=60)

        local = subprocess.run([sys.executable, "-m", "trailseal", "hold", "add", "--reason", "case 23", "--query",
                                "actor:alice", "--data", str(data_dir)], capture_output=True, text=True, env=env,
                               timeout=60)
        assert local.returncode == 2 and "is writing to" in local.stderr  # the server holds the writer lock
        assert run("add", "--reason", "case 23", "--query", "actor:alice").stdout.strip() == "hold 1 placed"
        listed = run("list")
        assert listed.returncode == 0 and json.loads(listed.stdout)["reason"] == "case 23"
        denied = run("add", "--reason", "case 24", "--query", "actor:bob", token=server.token(role="reader"))
        assert denied.returncode == 2 and "HTTP 403" in denied.stderr
        assert run("list", token=None).returncode == 2
        assert run("release", "1").stdout.strip() == "hold 1 released"
        missing = run("release", "1")
        assert missing.returncode == 2 and "HTTP 404" in missing.stderr and "no active legal hold 1" in missing.stderr
        assert run("list").stdout == ""
    finally:
        server.stop()

"""Detection in a child process: sealed entries go over a pipe, alerts come back; if the child dies,
the server process detects again (nothing sealed goes unexamined after that)."""

from __future__ import annotations

import fcntl
import json

import trailseal
from tests.conftest import make_event, wait_for
from tests.core.test_prepare_pool import F_GETPIPE_SZ
from trailseal.alerts.service import DetectionService
from trailseal.alerts.worker import DetectorProcess
from trailseal.detect.engine import Engine
from trailseal.frames import PIPE_BYTES

PRIVILEGE_GRANT = "0183c1cc-c4c2-4e44-9e33-954aca7eea93"


def grant(i: int) -> dict:
    event = make_event(i, action="user.role.grant", category="admin", outcome="success")
    event["target"] = {"type": "user", "id": f"user-{i}"}
    return event


def test_the_child_sees_revealed_values_and_answers_with_alerts(data_dir):
    captured = []
    with trailseal.open(data_dir) as trail:
        trail.sealer.on_commit.append(captured.extend)
        trail.append([grant(1), make_event(2, action="user.login", category="authentication")])
    sealed = [entry for entry in captured if entry[0] == "default"]
    assert any(entry[3] for entry in sealed)  # the default policy sealed the actor: vault rows travel along
    got = []
    child = DetectorProcess(str(data_dir), got.extend)
    try:
        assert child.send(sealed)
        assert wait_for(lambda: got, 30)
    finally:
        child.stop()
    (alert,) = [a for a in got if a.rule_id == PRIVILEGE_GRANT]
    assert alert.events == [("default", sealed[0][1])]
    assert not child.alive()


def test_a_commit_of_entries_crosses_to_the_child_in_one_write(data_dir):
    """The pipe holds a whole commit (~300 KB for 500 events), so the server's thread does not wait on
    the child's reads 64 KiB at a time, taking the GIL back from the event loop after each."""
    child = DetectorProcess(str(data_dir), [].extend)
    try:
        assert fcntl.fcntl(child.proc.stdin.fileno(), F_GETPIPE_SZ) == PIPE_BYTES
    finally:
        child.stop()


def test_the_child_applies_storm_control_and_hands_over_its_rollups_when_it_stops(data_dir, monkeypatch):
    """Past a rule's budget the child folds the matches itself: the parent gets the budgeted alerts at once
    and one rollup naming the rest when the child's input ends, not one message per match."""
    monkeypatch.setenv("TRAILSEAL_ALERTS__MAX_ALERTS_PER_RULE_PER_MINUTE", "4")
    captured = []
    with trailseal.open(data_dir) as trail:
        trail.sealer.on_commit.append(captured.extend)
        trail.append([grant(i) for i in range(30)])
    sealed = [entry for entry in captured if entry[0] == "default"]
    got = []
    child = DetectorProcess(str(data_dir), got.extend)
    try:
        assert child.send(sealed)
        assert wait_for(lambda: len(got) >= 4, 30)
        assert [a.rolled_up for a in got if a.rule_id == PRIVILEGE_GRANT] == [0, 0, 0, 0]
    finally:
        child.stop()
    grants = [a for a in got if a.rule_id == PRIVILEGE_GRANT]
    assert [a.rolled_up for a in grants] == [0, 0, 0, 0, 26]
    assert sorted(index for a in grants for _, index in a.events) == sorted(entry[1] for entry in sealed)


def findings(trail) -> list[dict]:
    entries = [json.loads(data) for _, data in trail.store.read_entries("trailseal", 0, 10_000)]
    return [e for e in entries if e["action"] == "detect.alert" and e["attributes"]["rule_id"] == PRIVILEGE_GRANT]


def test_when_the_child_dies_the_server_process_detects(data_dir):
    with trailseal.open(data_dir) as trail:
        service = DetectionService(trail, Engine.builtin(), [], child=str(data_dir)).start()
        try:
            assert service.child is not None and service.child.alive()
            trail.append([grant(1)])
            assert wait_for(lambda: len(findings(trail)) == 1, 30)
            service.child.proc.kill()
            service.child.proc.wait()
            trail.append([grant(2)])
            assert wait_for(lambda: len(findings(trail)) == 2, 30)
        finally:
            service.stop()
        sealed = {index for f in findings(trail) for _, index in f["attributes"]["events"]}
        assert len(sealed) == 2

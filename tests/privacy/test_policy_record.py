"""The policy in force, per log, is sealed in the `trailseal` meta log: at a log's first commit, and
again whenever the policy (or its being on or off) changes, so an auditor knows what was redacted and why."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

import trailseal
from tests.conftest import make_event
from trailseal.cli import app


def policy_records(data_dir) -> list[dict]:
    with trailseal.open(data_dir) as log:
        size = log.store.tree_size("trailseal")
        rows = log.store.read_entries("trailseal", 0, size)
        return [event for _, data in rows if (event := json.loads(data))["action"] == "privacy.policy"]


def append(data_dir, *events) -> trailseal.datadir.Trail:
    with trailseal.open(data_dir) as log:
        log.append(list(events))
        return log


def set_privacy(data_dir, extra: str) -> None:
    config = data_dir / "trailseal.toml"
    config.write_text(config.read_text() + extra)


def test_first_commit_of_a_log_records_its_policy(data_dir):
    log = append(data_dir, make_event(1), {**make_event(2), "log": "billing"})
    records = policy_records(data_dir)
    assert sorted(r["target"]["id"] for r in records) == ["billing", "default"]
    fingerprint = log.protection.policy.fingerprint()
    for record in records:
        assert record["category"] == "config" and record["actor"] == {"id": "trailseal", "type": "system"}
        assert record["attributes"]["fingerprint"] == fingerprint and record["attributes"]["enabled"] is True
        assert record["attributes"]["policy"]["builtin"]["fields"]["actor.id"] == "erasable"
    with trailseal.open(data_dir) as log:
        assert all(report.ok for report in log.verify())


def test_same_policy_is_not_recorded_twice(data_dir):
    append(data_dir, make_event(1))
    append(data_dir, make_event(2))
    append(data_dir, make_event(3))
    assert [r["target"]["id"] for r in policy_records(data_dir)] == ["default"]


def test_a_changed_policy_is_recorded_before_what_it_protects(data_dir):
    append(data_dir, make_event(1))
    set_privacy(data_dir, '\n[privacy.kinds]\nip = "pseudonymize"\n')
    append(data_dir, make_event(2))
    first, second = policy_records(data_dir)
    assert first["attributes"]["fingerprint"] != second["attributes"]["fingerprint"]
    assert second["attributes"]["policy"]["policy"] == {"kinds": {"ip": "pseudonymize"}}
    shown = CliRunner().invoke(app, ["privacy", "show", "--data", str(data_dir)])
    assert shown.exit_code == 0 and second["attributes"]["fingerprint"] in shown.output


def test_turning_privacy_off_is_recorded(data_dir):
    append(data_dir, make_event(1))
    config = data_dir / "trailseal.toml"
    config.write_text(re.sub(r"(\[privacy\][^\[]*?)enabled = true", r"\1enabled = false", config.read_text()))
    append(data_dir, make_event(2))
    assert [r["attributes"]["enabled"] for r in policy_records(data_dir)] == [True, False]

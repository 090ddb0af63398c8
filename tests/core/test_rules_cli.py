"""`trailseal rules test` for rule authors, and `trailseal alerts`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.conftest import make_event
from trailseal.cli import app
from trailseal.detect.engine import BUILTIN_DIR


def test_rules_test_prints_alerts(tmp_path):
    events = []
    for i in range(12):
        event = make_event(i, action="user.login", category="authentication", outcome="failure")
        event["actor"] = {"id": "victim", "ip": "198.51.100.9"}
        events.append(event)
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    result = CliRunner().invoke(app, ["rules", "test", str(BUILTIN_DIR / "brute_force.yml"), str(path)])
    assert result.exit_code == 0, result.output
    assert "Brute force from one IP address" in result.stdout
    quiet = tmp_path / "quiet.ndjson"
    quiet.write_text(json.dumps(make_event(1)) + "\n")
    assert CliRunner().invoke(app, ["rules", "test", str(BUILTIN_DIR / "brute_force.yml"), str(quiet)]).exit_code == 1


def test_rules_test_reports_a_broken_rule(tmp_path):
    rule = tmp_path / "bad.yml"
    rule.write_text("title: [unclosed\n")
    events = tmp_path / "e.ndjson"
    events.write_text("{}\n")
    result = CliRunner().invoke(app, ["rules", "test", str(rule), str(events)])
    assert result.exit_code == 2 and "cannot run" in result.stderr and "Traceback" not in result.output

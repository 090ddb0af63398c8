"""`trailseal retention plan/apply` and `trailseal hold` from the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import trailseal
from tests.conftest import make_event
from trailseal.cli import app


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_plan_apply_and_holds(data_dir):
    config = data_dir / "trailseal.toml"
    config.write_text(config.read_text() + '\n[retention.policies]\nauthentication = { keep = "30d" }\n')
    with trailseal.open(data_dir) as log:
        log.append([make_event(i, category="authentication", action="user.login") for i in range(10)])
    later = "2099-01-01T00:00:00Z"
    plan = run("retention", "plan", "--data", str(data_dir), "--at", later)
    assert plan.exit_code == 0, plan.output
    assert "expire 10 authentication" in plan.stdout
    hold = run("hold", "add", "--data", str(data_dir), "--reason", "case 42", "--ids", "evt-00000003")
    assert hold.exit_code == 0, hold.output
    listed = run("hold", "list", "--data", str(data_dir))
    assert json.loads(listed.stdout.splitlines()[0])["reason"] == "case 42"
    applied = run("retention", "apply", "--data", str(data_dir), "--at", later)
    assert applied.exit_code == 0, applied.output
    assert "expired 9" in applied.stdout
    verified = run("verify", "--data", str(data_dir))
    assert verified.exit_code == 0, verified.output
    bad = run("retention", "plan", "--data", str(data_dir), "--at", "not-a-time")
    assert bad.exit_code == 2 and "RFC 3339" in bad.stderr

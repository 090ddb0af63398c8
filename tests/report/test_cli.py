"""`trailseal report` and `trailseal validate` from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

import trailseal
from tests.report.dataset import PERIOD, SOURCES, build
from trailseal.cli import app
from trailseal.detect.engine import Engine

runner = CliRunner()


def test_report_json_and_html(tmp_path):
    directory, _ = build(tmp_path, rounds=2)
    result = runner.invoke(app, ["report", "-d", str(directory), "-f", "pci-dss", "--period", PERIOD,
                                 "--format", "json"])
    body = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert body["summary"] == {"pass": 20, "fail": 0, "gap": 0}
    assert {s["component"] for s in body["measured"]["sources"]} == set(SOURCES)
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "-d", str(directory), "-f", "iso27001", "--period", PERIOD, "-o", str(out)])
    assert result.exit_code == 0
    html = out.read_text()
    assert "A.8.17" in html and "Clock synchronization" in html and 'class="badge pass"' in html


def test_report_is_recorded_as_a_read(tmp_path):
    directory, _ = build(tmp_path, rounds=1)
    runner.invoke(app, ["report", "-d", str(directory), "-f", "soc2", "--period", PERIOD, "--format", "json",
                        "--no-verify"])
    with trailseal.open(directory) as trail:
        actions = [e["event"]["action"] for e in trail.read_events(
            [("trailseal", i, d) for i, d in trail.store.read_entries("trailseal", 0, 10_000)])]
    assert "trailseal.report" in actions


def test_report_pdf_printed_by_chromium(tmp_path):
    directory, _ = build(tmp_path, rounds=1)
    out = tmp_path / "r.pdf"
    result = runner.invoke(app, ["report", "-d", str(directory), "-f", "gdpr", "--period", PERIOD,
                                 "--format", "pdf", "-o", str(out)])
    assert result.exit_code in (0, 1), result.output
    assert out.read_bytes().startswith(b"%PDF-") and out.stat().st_size > 2000


def test_report_usage_errors_say_what_to_do(tmp_path):
    directory, _ = build(tmp_path, rounds=1)
    cases = [(["-f", "sox", "--period", PERIOD], "unknown framework 'sox'"),
             (["-f", "gdpr", "--period", "2026"], "write it as YYYY-MM-DD..YYYY-MM-DD"),
             (["-f", "gdpr", "--period", "2026-12-01..2026-01-01"], "ends before it starts"),
             (["-f", "gdpr", "--period", "2026-02-30..2026-03-01"], "day is out of range"),
             (["-f", "gdpr", "--period", "1900-01-01..9999-12-31"], "events are dated 1970 to 9998"),
             (["-f", "gdpr", "--period", PERIOD, "--format", "pdf"], "add --output report.pdf"),
             (["-f", "gdpr", "--period", PERIOD, "--format", "xml"], "--format must be one of html, json, pdf")]
    for args, message in cases:
        result = runner.invoke(app, ["report", "-d", str(directory), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output.replace("\n", " "), (args, result.output)


def test_validate_passes_then_fails_and_raises_an_alert_event(tmp_path):
    directory, _ = build(tmp_path, rounds=1, base=datetime.now(UTC) - timedelta(minutes=2))
    config = directory / "trailseal.toml"
    result = runner.invoke(app, ["validate", "-d", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[:result.stdout.rindex("}") + 1])["ok"] is True
    config.write_text(config.read_text().replace('"auditd"]', '"auditd", "payments"]'))
    result = runner.invoke(app, ["validate", "-d", str(directory)])
    assert result.exit_code == 1
    assert "FAIL expected sources: expected source(s) sent nothing in the period: payments" in result.output
    with trailseal.open(directory) as trail:
        rows = list(trail.store.read_entries("trailseal", 0, 10_000))
        failed = [e["event"] for e in trail.read_events([("trailseal", i, d) for i, d in rows])
                  if e["event"]["action"] == "trailseal.validate.failed"]
    assert [e["target"]["id"] for e in failed] == ["expected sources"]
    event = {**failed[0], "log": "trailseal", "index": 0}
    alerts = Engine.builtin().process(event)
    assert [a.title for a in alerts] == ["Compliance validation check failed"]

"""The compliance report: a data set built for PCI DSS 10 passes every control; breaking one thing
(a source, a field, the retention) flips exactly the controls that depend on it, with the reason."""

from __future__ import annotations

import trailseal
from tests.report.dataset import PERIOD, build
from trailseal.report import build_report


def statuses(directory, clock, framework: str = "pci-dss") -> dict:
    with trailseal.open(directory, clock=clock) as trail:
        report = build_report(trail, framework, PERIOD)
    return {c.control.id: (c.status, c.reasons) for c in report.controls}


def failing(result: dict) -> set[str]:
    return {control for control, (status, _) in result.items() if status != "pass"}


def test_pci_data_set_passes_every_control(tmp_path):
    result = statuses(*build(tmp_path))
    assert failing(result) == set(), {k: v for k, v in result.items() if v[0] != "pass"}
    assert len(result) == 20


def test_removing_one_source_fails_its_coverage_and_the_source_controls(tmp_path):
    result = statuses(*build(tmp_path, drop_source="db"))
    assert failing(result) == {"10.2.1", "10.2.1.1", "10.7.2"}
    assert "expected source(s) sent nothing in the period: db" in result["10.2.1"][1][0]
    assert result["10.2.1.1"][1] == ["no data_access events recorded in the period"]


def test_removing_one_field_fails_only_the_record_content_control(tmp_path):
    result = statuses(*build(tmp_path, drop_field="target"))
    assert failing(result) == {"10.2.2"}
    reason = result["10.2.2"][1][0]
    assert "target present in 0.0% of" in reason and "default/web" in reason


def test_shortening_retention_fails_only_the_retention_control(tmp_path):
    result = statuses(*build(tmp_path, keep="6m"))
    assert failing(result) == {"10.5.1"}
    assert "kept 6m by everything (need 12m)" in result["10.5.1"][1][0]


def test_every_framework_evaluates_on_the_same_measurements(tmp_path):
    directory, clock = build(tmp_path, rounds=2)
    with trailseal.open(directory, clock=clock) as trail:
        results = {key: {c.control.id: c for c in build_report(trail, key, PERIOD).controls}
                   for key in ("hipaa", "soc2", "nist-800-53", "gdpr", "iso27001")}
    not_passing = {(key, cid): c.reasons for key, controls in results.items() for cid, c in controls.items()
                   if c.status != "pass"}
    # the one measured gap: HIPAA keeps documentation 6 years, the data set keeps 1 year
    assert list(not_passing) == [("hipaa", "164.316(b)(2)(i)")]
    assert "kept 1y by everything (need 6y)" in not_passing[("hipaa", "164.316(b)(2)(i)")][0]
    assert len(results["nist-800-53"]) == 11 and "Art. 17" in results["gdpr"]


def test_tampering_fails_integrity_controls(tmp_path):
    import sqlite3

    directory, clock = build(tmp_path, rounds=2)
    db = sqlite3.connect(directory / "trailseal.db")
    db.execute("UPDATE entries SET data = replace(data, 'db.query', 'db.qu3ry') WHERE log='default' AND idx=2")
    db.commit()
    db.close()
    result = statuses(directory, clock)
    assert {"10.3.2"} <= failing(result)
    assert "first bad index 2" in result["10.3.2"][1][0]


def test_rejected_records_lower_the_conformance_rate(tmp_path):
    import time

    from trailseal.api import create_app
    from trailseal.event import utc_now

    directory, clock = build(tmp_path, rounds=1)
    with trailseal.open(directory, clock=clock) as trail:
        app = create_app(trail, detect=False, scheduled=False)
        token = app.state.service.tokens.create("ingest", "bad-producer")[0]
        from starlette.testclient import TestClient

        bad = [{"time": utc_now(), "category": "nope", "action": "x", "outcome": "success",
                "actor": {"id": "a"}, "source": {"component": "web", "kind": "app"}}] * 3
        response = TestClient(app).post("/v1/events", json=bad, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 422
        app.state.service.tokens.close()
        deadline = time.monotonic() + 10  # the rejection is sealed without waiting: let the writer catch up
        while b"trailseal.ingest.rejected" not in b"".join(
                d for _, d in trail.store.read_entries("trailseal", 0, 1000)) and time.monotonic() < deadline:
            time.sleep(0.05)
        config = trail.config.compliance
        config.min_conformance_rate = 0.95
        report = build_report(trail, "pci-dss", PERIOD, verify=False)
    control = next(c for c in report.controls if c.control.id == "10.2.1")
    finding = control.findings["conformance"]
    assert finding.status == "fail" and "conformed to the schema (need 95%)" in finding.reason, finding
    assert any(line.startswith("rejected via http (token:") and line.endswith(": 3") for line in finding.evidence)

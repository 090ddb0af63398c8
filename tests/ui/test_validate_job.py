"""`serve` runs the validation on a schedule; a failed check raises an alert and shows on the console."""

from __future__ import annotations

import time

import httpx

import trailseal
from tests.api.server import Server
from trailseal.jobs import default_jobs


def test_validate_job_is_scheduled_unless_disabled(data_dir):
    with trailseal.open(data_dir) as trail:
        jobs = {job.name: job for job in default_jobs(trail)}
        assert jobs["validate"].interval_seconds == 3600.0
        trail.config.compliance.validate_interval_seconds = 0
        assert "validate" not in {job.name for job in default_jobs(trail)}


def test_scheduled_validation_failure_raises_an_alert_shown_on_the_console(tmp_path):
    directory = trailseal.init(tmp_path / "data", origin="validate.trailseal")
    config = directory / "trailseal.toml"
    config.write_text(config.read_text() + '\n[compliance]\nexpected_sources = ["payments"]\n'
                                           'validate_interval_seconds = 1\n')
    server = Server(directory).start()
    try:
        headers = {"Authorization": f"Bearer {server.admin}"}
        deadline, titles = time.monotonic() + 20, []
        while time.monotonic() < deadline and "Compliance validation check failed" not in titles:
            time.sleep(0.3)
            alerts = httpx.get(server.url + "/v1/alerts", headers=headers).json()["alerts"]
            titles = [a["event"]["reason"] for a in alerts]
        assert "Compliance validation check failed" in titles
        alert = next(a for a in alerts if a["event"]["reason"] == "Compliance validation check failed")
        client = httpx.Client(base_url=server.url)
        client.post("/ui/login", data={"token": server.admin})
        page = client.get("/ui/validate").text
        assert "expected source(s) sent nothing in the period: payments" in page
        assert 'class="badge fail"' in page
        assert f'id="alert-{alert["index"]}"' in client.get("/ui/alerts").text
        time.sleep(2.5)  # more runs, the same failing check: no new alert until it recovers and fails again
        alerts = httpx.get(server.url + "/v1/alerts", headers=headers).json()["alerts"]
        assert [a["event"]["reason"] for a in alerts].count("Compliance validation check failed") == 1
    finally:
        server.stop()

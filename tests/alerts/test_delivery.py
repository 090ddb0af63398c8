"""Delivery threads and configuration: a stuck sink never holds up the caller, nothing queued is
dropped silently at shutdown, and bad sink settings stop the config from loading with a reason."""

from __future__ import annotations

import threading
import time

import pytest

import trailseal.config as cfg
from tests.alerts.conftest import sample_alert, wait_for
from trailseal.alerts.delivery import Background, DeadLetter, Retry, RetryingSink
from trailseal.alerts.sinks import DEAD_LETTER_FILE, build_sinks
from trailseal.alerts.smtp import SmtpSink
from trailseal.alerts.syslog import SyslogSink
from trailseal.alerts.webhook import SlackSink, WebhookSink


class Gate(RetryingSink):
    """A sink that delivers only once the gate opens (or fails every attempt when told to)."""

    name = "gate"

    def __init__(self, dead_letter: DeadLetter, fail: bool = False) -> None:
        super().__init__(dead_letter, Retry(attempts=50, backoff=0.2, max_backoff=0.2))
        self.open, self.fail, self.got = threading.Event(), fail, []

    def deliver(self, alert):
        if self.fail:
            raise ConnectionError("down")
        self.open.wait()
        self.got.append(alert["attributes"]["title"])


def test_send_returns_at_once_while_the_sink_is_stuck_and_order_is_kept(tmp_path):
    sink = Gate(DeadLetter(tmp_path / "dl"))
    background = Background(sink)
    started = time.monotonic()
    for n in range(5):
        background.send(sample_alert(title=f"alert {n}"))
    assert time.monotonic() - started < 0.5 and sink.got == []
    sink.open.set()
    assert wait_for(lambda: len(sink.got) == 5)
    assert sink.got == [f"alert {n}" for n in range(5)]
    background.close()


def test_close_dead_letters_what_a_failing_sink_still_holds(tmp_path):
    dead = DeadLetter(tmp_path / "dl")
    background = Background(Gate(dead, fail=True))
    for n in range(3):
        background.send(sample_alert(title=f"alert {n}"))
    started = time.monotonic()
    background.close(timeout=0.3)
    assert time.monotonic() - started < 3.0  # retries are cut short, not waited out
    records = dead.read()
    assert sorted(r["alert"]["attributes"]["title"] for r in records) == ["alert 0", "alert 1", "alert 2"]
    assert all(r["sink"] == "gate" for r in records)
    assert any("shut down" in r["error"] for r in records)


def test_a_full_queue_dead_letters_instead_of_blocking(tmp_path):
    dead = DeadLetter(tmp_path / "dl")
    sink = Gate(dead)
    background = Background(sink, max_queued=2)
    for n in range(6):
        background.send(sample_alert(title=f"alert {n}"))
    overflow = dead.read()
    assert len(overflow) >= 3 and all("already waiting" in r["error"] for r in overflow)
    sink.open.set()
    background.close()
    assert len(sink.got) + len(dead.read()) == 6  # each alert delivered or dead-lettered, none lost


def alerts_config(**values) -> cfg.AlertsConfig:
    import msgspec

    return msgspec.convert(values, cfg.AlertsConfig, strict=False)


def test_build_sinks_makes_every_configured_sink(tmp_path):
    conf = alerts_config(webhook_url="http://127.0.0.1:9/h", webhook_secret="k",
                         slack_webhook_url="https://hooks.slack.example/services/x", smtp_host="127.0.0.1",
                         smtp_to="a@example.org, b@example.org", syslog_address="tcp://127.0.0.1:601",
                         syslog_facility="local4", retry_attempts="3", stdout="true")
    sinks = build_sinks(conf, tmp_path)
    try:
        kinds = [type(s.sink) for s in sinks]
        assert kinds[:4] == [WebhookSink, SlackSink, SmtpSink, SyslogSink] and kinds[4].__name__ == "StdoutSink"
        smtp = sinks[2].sink
        assert smtp.settings.recipients == ("a@example.org", "b@example.org") and smtp.retry.attempts == 3
        assert sinks[3].sink.facility == 20
        assert sinks[0].sink.dead_letter.path == tmp_path / DEAD_LETTER_FILE
    finally:
        for sink in sinks:
            sink.close(0.1)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("SYSLOG_ADDRESS", "syslog.example:514", "udp://HOST:PORT"),
    ("SYSLOG_FACILITY", "local9", "not one of"),
    ("SMTP_HOST", "mail.example", "smtp_to needs at least one recipient"),
    ("SLACK_WEBHOOK_URL", "hooks.slack.com/x", "must be an http:// or https:// URL"),
    ("RETRY_ATTEMPTS", "0", "at least 1"),
    ("WEBHOOK_URL", "https://alerts.example/hook", "webhook_secret is required"),
])
def test_bad_sink_settings_stop_the_config_from_loading(data_dir, monkeypatch, key, value, message):
    monkeypatch.setenv(f"TRAILSEAL_ALERTS__{key}", value)
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load(data_dir)


def test_serve_refuses_bad_sink_settings_with_a_clear_error(data_dir):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRAILSEAL_ALERTS__SYSLOG_ADDRESS": "siem:514"}
    done = subprocess.run([sys.executable, "-m", "trailseal.cli", "serve", "--data", str(data_dir), "--port", "1"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "syslog address 'siem:514'" in done.stderr and "alerts" in done.stderr


def test_detection_service_reports_what_each_sink_did(tmp_path, http_receiver):
    from types import SimpleNamespace

    from trailseal.alerts.service import DetectionService
    from trailseal.detect import Engine

    dead = DeadLetter(tmp_path / "dl")
    webhook = Background(WebhookSink(http_receiver.url, "k", dead, Retry(1, 0.01)))
    slack = Background(SlackSink(http_receiver.url, dead, Retry(1, 0.01)))
    service = DetectionService(SimpleNamespace(), Engine.builtin(), [webhook, slack])
    http_receiver.answers = [(204, {}, b""), (410, {}, b"channel_is_archived")]
    webhook.send(sample_alert())
    assert wait_for(lambda: webhook.sink.delivered == 1)
    slack.send(sample_alert())
    assert wait_for(lambda: slack.sink.failed == 1)
    service.stop(timeout=1.0)
    assert service.sink_stats() == {"webhook": {"delivered": 1, "failed": 0, "queued": 0},
                                    "slack": {"delivered": 0, "failed": 1, "queued": 0}}
    assert "channel_is_archived" in dead.read()[0]["error"]

"""Where alerts go: the sinks the `[alerts]` config asks for, each in its own delivery thread.

Webhook (HMAC-signed), Slack-compatible webhook, SMTP email, syslog (RFC 5424) and stdout. The
network sinks retry with backoff and dead-letter what never gets through (delivery.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Protocol

from trailseal.alerts.delivery import Background, DeadLetter, Retry
from trailseal.alerts.smtp import SmtpSettings, SmtpSink
from trailseal.alerts.syslog import SyslogSink, parse_address
from trailseal.alerts.webhook import SIGNATURE_HEADER, SlackSink, WebhookSink, signature

__all__ = ["SIGNATURE_HEADER", "DEAD_LETTER_FILE", "Sink", "StdoutSink", "build_sinks", "signature"]
DEAD_LETTER_FILE = "alerts.dead-letter"


class Sink(Protocol):
    def send(self, alert: dict[str, Any]) -> None: ...


class StdoutSink:
    """One JSON line per alert on standard output (for `serve` under a supervisor that ships logs)."""

    name = "stdout"

    def send(self, alert: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(alert, sort_keys=True) + "\n")
        sys.stdout.flush()


def build_sinks(conf: Any, directory: Path) -> list[Background]:
    """The sinks configured in `[alerts]` (an AlertsConfig), dead letters in `directory`."""
    dead = DeadLetter(Path(directory) / DEAD_LETTER_FILE)
    retry = Retry(conf.retry_attempts, conf.retry_backoff_seconds, max(conf.retry_backoff_seconds, 5.0))
    sinks: list[Any] = []
    if conf.webhook_url:
        sinks.append(WebhookSink(conf.webhook_url, conf.webhook_secret, dead, retry))
    if conf.slack_webhook_url:
        sinks.append(SlackSink(conf.slack_webhook_url, dead, retry))
    if conf.smtp_host:
        sinks.append(SmtpSink(smtp_settings(conf), dead, retry))
    if conf.syslog_address:
        sinks.append(SyslogSink(parse_address(conf.syslog_address), conf.syslog_facility, dead, retry,
                                ca_file=conf.tls_ca_file))
    if conf.stdout:
        sinks.append(StdoutSink())
    return [Background(sink) for sink in sinks]


def smtp_settings(conf: Any) -> SmtpSettings:
    return SmtpSettings(
        host=conf.smtp_host, port=conf.smtp_port, sender=conf.smtp_from, recipients=recipients(conf.smtp_to),
        username=conf.smtp_username, password=conf.smtp_password, starttls=conf.smtp_starttls,
        implicit_tls=conf.smtp_ssl, ca_file=conf.tls_ca_file,
    )


def recipients(value: list[str] | str) -> tuple[str, ...]:
    """A list, or one comma-separated string (as an environment variable gives it)."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item.strip())

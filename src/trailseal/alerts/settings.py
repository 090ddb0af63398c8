"""Checks on the `[alerts]` sink settings, run when the config loads (a bad value stops `serve`
with a message naming the key, instead of alerts failing later)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from trailseal.alerts.syslog import facility_code, parse_address


def check(conf: Any) -> None:
    """Raise ValueError naming the `alerts.*` key that is wrong and what it should be."""
    for key in ("webhook_url", "slack_webhook_url"):
        url = getattr(conf, key)
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"alerts.{key} must be an http:// or https:// URL, not {url!r}")
    if conf.webhook_url is not None and not conf.webhook_secret:
        raise ValueError("alerts.webhook_secret is required with alerts.webhook_url: the receiver checks the "
                         "X-Trailseal-Signature HMAC with it (an empty key would let anyone forge alerts)")
    if conf.smtp_host is not None:
        to = conf.smtp_to.split(",") if isinstance(conf.smtp_to, str) else conf.smtp_to
        if not [r for r in to if r.strip()]:
            raise ValueError("alerts.smtp_to needs at least one recipient when alerts.smtp_host is set")
        if conf.smtp_starttls and conf.smtp_ssl:
            raise ValueError("alerts.smtp_starttls and alerts.smtp_ssl exclude each other: pick one")
    if not 0 < conf.smtp_port < 65536:
        raise ValueError(f"alerts.smtp_port {conf.smtp_port} is not a port number")
    if conf.syslog_address is not None:
        parse_address(conf.syslog_address)
    facility_code(conf.syslog_facility)
    if conf.max_alerts_per_rule_per_minute < 0:
        raise ValueError("alerts.max_alerts_per_rule_per_minute cannot be negative (0 turns storm control off)")
    if conf.retry_attempts < 1:
        raise ValueError("alerts.retry_attempts must be at least 1")
    if conf.retry_backoff_seconds < 0:
        raise ValueError("alerts.retry_backoff_seconds cannot be negative")

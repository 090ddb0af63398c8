"""SMTP sink: each alert as an email with a plain-text and an HTML body (multipart/alternative).

Transport: plain SMTP, STARTTLS (`starttls = true`) or implicit TLS (`ssl = true`, port 465),
optional login. An SMTP 5xx answer (unknown recipient, rejected sender) is a refusal that
retrying cannot fix; 4xx answers and connection failures are retried with backoff.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from trailseal.alerts import render
from trailseal.alerts.delivery import DeadLetter, RetryingSink, RetryLater, Undeliverable


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "trailseal@localhost"
    recipients: tuple[str, ...] = field(default_factory=tuple)
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    implicit_tls: bool = False
    ca_file: str | None = None  # trust this CA (PEM) instead of the system store
    timeout: float = 10.0


class SmtpSink(RetryingSink):
    name = "smtp"

    def __init__(self, settings: SmtpSettings, dead_letter: DeadLetter | None = None, retry=None) -> None:
        super().__init__(dead_letter, retry)
        if not settings.recipients:
            raise ValueError("the SMTP sink needs at least one recipient (alerts.smtp_to)")
        self.settings = settings

    def deliver(self, alert: dict[str, Any]) -> None:
        message = email_message(alert, self.settings.sender, self.settings.recipients)
        try:
            with self._connect() as client:
                refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            detail = f"every recipient refused: {_answers(exc.recipients)}"
            if all(code < 500 for code, _ in exc.recipients.values()):
                raise RetryLater(detail) from None
            raise Undeliverable(detail) from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise Undeliverable(f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}") from None
            raise
        if refused:
            self.reject(alert, f"some recipients refused: {_answers(refused)}")

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=s.ca_file)
        if s.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.starttls and not s.implicit_tls:
                client.starttls(context=context)
            if s.username:
                client.login(s.username, s.password or "")
        except BaseException:
            client.close()
            raise
        return client


def email_message(alert: dict[str, Any], sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """Subject = the summary line; text and HTML bodies; headers a mail filter can route on."""
    message = EmailMessage()
    message["Subject"] = "trailseal alert: " + render.summary(alert).replace("\n", " ")[:200]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "trailseal")
    message["X-Trailseal-Level"] = render.level(alert)
    rule = render.attributes(alert).get("rule_id")
    if rule:
        message["X-Trailseal-Rule"] = str(rule)
    sealed = render.sealed_at(alert)
    if sealed:
        message["X-Trailseal-Sealed"] = sealed
    message.set_content(render.plain_text(alert))
    message.add_alternative(render.html_body(alert), subtype="html")
    return message


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _answers(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{who}: {code} {_text(why)}" for who, (code, why) in refused.items())

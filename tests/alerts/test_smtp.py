"""The SMTP sink against a real SMTP server (aiosmtpd): a multipart email with text and HTML
bodies, STARTTLS against a test CA, retries on 4xx, dead letter on 5xx."""

from __future__ import annotations

import email
import email.policy
import ssl

from tests.alerts.conftest import closed_port, sample_alert, tls_smtp
from tests.api.test_real_server import make_cert
from trailseal.alerts.delivery import DeadLetter, Retry
from trailseal.alerts.smtp import SmtpSettings, SmtpSink

FAST = Retry(attempts=3, backoff=0.01, max_backoff=0.05)


def settings(port: int, **over) -> SmtpSettings:
    return SmtpSettings(**{"host": "127.0.0.1", "port": port, "sender": "trailseal@example.org",
                           "recipients": ("soc@example.org", "oncall@example.org"), **over})


def test_an_alert_arrives_as_email_with_plain_text_and_html_bodies(smtp_server, tmp_path):
    handler, port = smtp_server
    sink = SmtpSink(settings(port), DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert())
    ((sender, recipients, raw),) = handler.messages
    assert sender == "trailseal@example.org" and recipients == ["soc@example.org", "oncall@example.org"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == ("trailseal alert: [HIGH] Brute force from one IP "
                                  "(rule f1a43fa4-751a-42bd-bb54-4bb6879ea7b4)")
    assert message["X-Trailseal-Rule"] == "f1a43fa4-751a-42bd-bb54-4bb6879ea7b4"
    assert message["X-Trailseal-Sealed"] == "trailseal#7" and message["Message-ID"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Author:" in text and "trailseal" in text and "default#10 default#11" in text
    assert "<table" in html and "Brute force from one IP" in html and "default#21" in html


def test_html_body_escapes_what_a_rule_title_contains(smtp_server, tmp_path):
    handler, port = smtp_server
    SmtpSink(settings(port), DeadLetter(tmp_path / "dl"), FAST).send(sample_alert(title="<script>x</script>"))
    message = email.message_from_bytes(handler.messages[0][2], policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_temporary_4xx_is_retried_and_then_delivered(smtp_server, tmp_path):
    handler, port = smtp_server
    handler.rcpt_answers = ["451 4.3.0 try again later"]
    sink = SmtpSink(settings(port, recipients=("soc@example.org",)), DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert())
    assert len(handler.messages) == 1 and sink.delivered == 1 and not (tmp_path / "dl").exists()


def test_a_permanent_5xx_is_dead_lettered_without_retrying(smtp_server, tmp_path):
    handler, port = smtp_server
    handler.rcpt_answers = ["550 5.1.1 no such user", "550 5.1.1 no such user"]
    dead = DeadLetter(tmp_path / "dl")
    sink = SmtpSink(settings(port), dead, FAST)
    sink.send(sample_alert())
    (record,) = dead.read()
    assert record["sink"] == "smtp" and "550" in record["error"] and "no such user" in record["error"]
    assert handler.messages == [] and handler.rcpt_answers == []  # one attempt used both answers


def test_an_unreachable_server_is_retried_then_dead_lettered(tmp_path):
    dead = DeadLetter(tmp_path / "dl")
    sink = SmtpSink(settings(closed_port()), dead, FAST)
    sink.send(sample_alert())
    (record,) = dead.read()
    assert "ConnectionRefusedError" in record["error"] and sink.failed == 1


def test_starttls_with_a_private_ca(tmp_path):
    from tests.alerts.conftest import MailHandler

    ca = make_cert(tmp_path / "ca", "alerts test CA", ca=True)
    server_cert = make_cert(tmp_path / "mail", "127.0.0.1", issuer=ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_cert[0], server_cert[1])
    handler = MailHandler()
    controller = tls_smtp(handler, context)
    try:
        plain = SmtpSink(settings(controller.port), DeadLetter(tmp_path / "plain.dl"), FAST)
        plain.send(sample_alert())
        assert handler.messages == [] and "530" in DeadLetter(tmp_path / "plain.dl").read()[0]["error"]
        secure = SmtpSink(settings(controller.port, starttls=True, ca_file=ca[0]), DeadLetter(tmp_path / "dl"), FAST)
        secure.send(sample_alert())
        assert len(handler.messages) == 1 and secure.delivered == 1
    finally:
        controller.stop()

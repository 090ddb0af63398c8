"""On the real server: one brute-force burst reaches every configured sink once - signed webhook,
Slack-compatible webhook, SMTP email and RFC 5424 syslog - and an unreachable sink only fills
the dead-letter file, without holding up the others."""

from __future__ import annotations

import email
import email.policy
import json

import httpx

from tests.alerts.conftest import HttpReceiver, closed_port, wait_for
from tests.alerts.test_syslog import RFC5424
from tests.api.server import Server
from tests.conftest import make_event
from trailseal.alerts.delivery import DeadLetter
from trailseal.alerts.sinks import DEAD_LETTER_FILE

BRUTE_FORCE_IP = "f1a43fa4-751a-42bd-bb54-4bb6879ea7b4"


def burst() -> list[dict]:
    events = [make_event(i, action="user.login", category="authentication", outcome="failure") for i in range(12)]
    for event in events:
        event["actor"] = {"id": "victim", "ip": "198.51.100.9", "type": "user"}
    return events


def test_one_alert_reaches_webhook_slack_email_and_syslog(data_dir, smtp_server, listeners):
    mail, smtp_port = smtp_server
    syslog = listeners("udp")
    webhook, slack = HttpReceiver(), HttpReceiver()
    env = {"TRAILSEAL_ALERTS__WEBHOOK_URL": webhook.url, "TRAILSEAL_ALERTS__WEBHOOK_SECRET": "k",
           "TRAILSEAL_ALERTS__SLACK_WEBHOOK_URL": slack.url,
           "TRAILSEAL_ALERTS__SMTP_HOST": "127.0.0.1", "TRAILSEAL_ALERTS__SMTP_PORT": str(smtp_port),
           "TRAILSEAL_ALERTS__SMTP_TO": "soc@example.org", "TRAILSEAL_ALERTS__SYSLOG_ADDRESS": syslog.address}
    server = Server(data_dir, env=env).start()
    try:
        response = httpx.post(server.url + "/v1/events", json=burst(),
                              headers={"Authorization": f"Bearer {server.admin}"})
        assert response.status_code == 200

        def brute(texts):
            return [t for t in texts if BRUTE_FORCE_IP in t]

        assert wait_for(lambda: brute(b.decode() for _, _, b in webhook.requests), 15)
        assert wait_for(lambda: brute(b.decode() for _, _, b in slack.requests), 15)
        assert wait_for(lambda: brute(m.decode() for _, _, m in mail.messages), 15)
        assert wait_for(lambda: brute(d.decode() for d in syslog.received), 15)
    finally:
        server.stop()
        webhook.server.shutdown()
        slack.server.shutdown()
    (sealed,) = [json.loads(b) for _, _, b in webhook.requests if BRUTE_FORCE_IP in b.decode()]
    index = sealed["sealed"]["index"]
    (chat,) = [json.loads(b) for _, _, b in slack.requests if BRUTE_FORCE_IP in b.decode()]
    assert f"trailseal#{index}" in json.dumps(chat["blocks"])
    (raw,) = [m for _, _, m in mail.messages if BRUTE_FORCE_IP.encode() in m]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["X-Trailseal-Sealed"] == f"trailseal#{index}" and message.get_body(("html",)) is not None
    (datagram,) = [d for d in syslog.received if BRUTE_FORCE_IP.encode() in d]
    assert RFC5424.match(datagram) and f'index="{index}"'.encode() in datagram


def test_an_unreachable_sink_dead_letters_while_the_others_deliver(data_dir):
    webhook = HttpReceiver()
    env = {"TRAILSEAL_ALERTS__WEBHOOK_URL": webhook.url, "TRAILSEAL_ALERTS__WEBHOOK_SECRET": "k",
           "TRAILSEAL_ALERTS__SYSLOG_ADDRESS": f"tcp://127.0.0.1:{closed_port()}",
           "TRAILSEAL_ALERTS__RETRY_ATTEMPTS": "2", "TRAILSEAL_ALERTS__RETRY_BACKOFF_SECONDS": "0.05"}
    server = Server(data_dir, env=env).start()
    dead = DeadLetter(data_dir / DEAD_LETTER_FILE)
    try:
        httpx.post(server.url + "/v1/events", json=burst(), headers={"Authorization": f"Bearer {server.admin}"})
        assert wait_for(lambda: any(BRUTE_FORCE_IP in b.decode() for _, _, b in webhook.requests), 15)
        assert wait_for(lambda: any(BRUTE_FORCE_IP in json.dumps(r) for r in dead.read()), 15)
    finally:
        server.stop()
        webhook.server.shutdown()
    records = [r for r in dead.read() if r["alert"]["attributes"]["rule_id"] == BRUTE_FORCE_IP]
    assert len(records) == 1 and records[0]["sink"] == "syslog"
    assert "ConnectionRefusedError" in records[0]["error"]

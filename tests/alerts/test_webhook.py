"""The signed webhook and the Slack-compatible webhook against a real local HTTP server: signature,
retries with backoff on 5xx/429, no retry on a 4xx refusal, dead letter when nothing gets through."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from tests.alerts.conftest import closed_port, sample_alert
from trailseal.alerts.delivery import DeadLetter, Retry
from trailseal.alerts.webhook import SIGNATURE_HEADER, SlackSink, WebhookSink, slack_message

FAST = Retry(attempts=4, backoff=0.01, max_backoff=0.05)


def test_webhook_posts_the_alert_signed_with_hmac_sha256(http_receiver, tmp_path):
    sink = WebhookSink(http_receiver.url, "s3cret", DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert())
    ((path, headers, body),) = http_receiver.requests
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    assert json.loads(body) == sample_alert()
    assert sink.delivered == 1 and sink.failed == 0 and not (tmp_path / "dl").exists()


def test_webhook_retries_server_errors_and_rate_limits_then_delivers(http_receiver, tmp_path):
    http_receiver.answers = [(503, {}, b"busy"), (429, {"Retry-After": "0"}, b"slow down"), (500, {}, b"oops")]
    sink = WebhookSink(http_receiver.url, "k", DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert())
    assert len(http_receiver.requests) == 4
    assert len({body for _, _, body in http_receiver.requests}) == 1  # the same signed body each time
    assert sink.delivered == 1 and not (tmp_path / "dl").exists()


def test_a_4xx_refusal_is_dead_lettered_at_once_without_retrying(http_receiver, tmp_path):
    http_receiver.answers = [(404, {}, b"no such hook")]
    dead = DeadLetter(tmp_path / "dl")
    sink = WebhookSink(http_receiver.url, "k", dead, FAST)
    sink.send(sample_alert())
    assert len(http_receiver.requests) == 1
    (record,) = dead.read()
    assert record["sink"] == "webhook" and "HTTP 404" in record["error"] and "no such hook" in record["error"]
    assert record["alert"] == sample_alert() and record["failed_at"].endswith("Z")
    assert sink.failed == 1 and sink.delivered == 0


def test_an_unreachable_webhook_is_retried_with_growing_backoff_then_dead_lettered(tmp_path):
    dead = DeadLetter(tmp_path / "dl")
    sink = WebhookSink(f"http://127.0.0.1:{closed_port()}/hook", "k", dead, Retry(4, 0.05, 1.0))
    started = time.monotonic()
    sink.send(sample_alert())
    waited = time.monotonic() - started
    assert waited >= 0.05 + 0.1 + 0.2  # three backoffs between four attempts
    (record,) = dead.read()
    assert record["sink"] == "webhook" and "ConnectError" in record["error"]


def slack_shape_problem(body: bytes) -> str | None:
    """What Slack would refuse with `invalid_payload`/`invalid_blocks` (the parts trailseal uses)."""
    message = json.loads(body)
    if not isinstance(message.get("text"), str) or not message["text"].strip():
        return "invalid_payload: text"
    for block in message.get("blocks", []):
        kind = block.get("type")
        if kind == "header":
            text = block["text"]
            if text["type"] != "plain_text" or not 0 < len(text["text"]) <= 150:
                return "invalid_blocks: header"
        elif kind == "section":
            fields = block.get("fields", [])
            if not 0 < len(fields) <= 10 or any(f["type"] != "mrkdwn" or len(f["text"]) > 2000 for f in fields):
                return "invalid_blocks: section fields"
        elif kind == "context":
            if not 0 < len(block["elements"]) <= 10:
                return "invalid_blocks: context"
        else:
            return f"invalid_blocks: unknown type {kind}"
    return None


def test_slack_gets_block_kit_with_a_text_fallback(http_receiver, tmp_path):
    http_receiver.check = slack_shape_problem
    sink = SlackSink(http_receiver.url, DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert())
    assert sink.delivered == 1, DeadLetter(tmp_path / "dl").read()
    (message,) = http_receiver.bodies()
    assert message["text"] == "[HIGH] Brute force from one IP (rule f1a43fa4-751a-42bd-bb54-4bb6879ea7b4)"
    header, section, context = message["blocks"]
    assert header["text"]["text"] == message["text"]
    fields = {f["text"].split("\n", 1)[0]: f["text"].split("\n", 1)[1] for f in section["fields"]}
    assert fields["*Level*"] == "high" and fields["*Author*"] == "trailseal"
    assert fields["*Evidence*"].startswith("default#10 default#11") and "c-ip=198.51.100.9" in fields["*Group*"]
    assert "`trailseal#7`" in context["elements"][0]["text"]


def test_slack_text_from_a_rule_cannot_inject_mentions_and_long_titles_fit(http_receiver, tmp_path):
    http_receiver.check = slack_shape_problem
    alert = sample_alert(title="<!channel> & <https://evil.example|click> " + "x" * 300)
    sink = SlackSink(http_receiver.url, DeadLetter(tmp_path / "dl"), FAST)
    sink.send(alert)
    assert sink.delivered == 1, DeadLetter(tmp_path / "dl").read()
    section = http_receiver.bodies()[0]["blocks"][1]
    assert all("<!channel>" not in f["text"] and "<https://" not in f["text"] for f in section["fields"])
    assert len(slack_message(alert)["blocks"][0]["text"]["text"]) == 150


def test_slack_refusing_the_payload_is_dead_lettered(http_receiver, tmp_path):
    http_receiver.answers = [(400, {}, b"invalid_payload")]
    dead = DeadLetter(tmp_path / "dl")
    SlackSink(http_receiver.url, dead, FAST).send(sample_alert())
    (record,) = dead.read()
    assert record["sink"] == "slack" and "invalid_payload" in record["error"] and len(http_receiver.requests) == 1

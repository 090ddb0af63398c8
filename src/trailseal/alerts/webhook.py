"""HTTP sinks: a signed JSON webhook, and a Slack-compatible incoming webhook (Block Kit + `text`).

Status handling is the same for both: 2xx is delivered; 408, 425, 429 and 5xx are retried
(honouring `Retry-After`); any other answer (a 4xx, or a redirect: configure the final URL) is a
refusal that retrying cannot fix, so the alert goes straight to the dead letter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import abstractmethod
from typing import Any

import httpx

from trailseal.alerts import render
from trailseal.alerts.delivery import DeadLetter, RetryingSink, RetryLater, Undeliverable

SIGNATURE_HEADER = "X-Trailseal-Signature"
RETRIED_STATUS = frozenset({408, 425, 429})
SLACK_HEADER_LIMIT = 150  # Block Kit: plain_text in a header block
SLACK_FIELD_LIMIT = 2000  # Block Kit: one section field
SLACK_MAX_FIELDS = 10


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, as the receiver recomputes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _HttpSink(RetryingSink):
    """POST a JSON body; classify the answer as delivered, retry, or refused."""

    def __init__(self, url: str, dead_letter: DeadLetter | None = None, retry=None, timeout: float = 5.0) -> None:
        super().__init__(dead_letter, retry)
        self.url, self.timeout = url, timeout
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    @abstractmethod
    def body(self, alert: dict[str, Any]) -> bytes:
        """The request body for one alert (each kind of receiver has its own shape)."""

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def headers(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def deliver(self, alert: dict[str, Any]) -> None:
        body = self.body(alert)
        response = self._client.post(self.url, content=body, headers=self.headers(body))
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"{self.url} answered HTTP {status}: {response.text[:200]!r}"
        if status in RETRIED_STATUS or status >= 500:
            raise RetryLater(detail, _retry_after(response.headers.get("Retry-After")))
        raise Undeliverable(detail)


class WebhookSink(_HttpSink):
    """The alert as JSON (sorted keys), signed: `X-Trailseal-Signature: sha256=<HMAC of the body>`."""

    name = "webhook"

    def __init__(self, url: str, secret: str, dead_letter: DeadLetter | None = None, retry=None,
                 timeout: float = 5.0) -> None:
        super().__init__(url, dead_letter, retry, timeout)
        self.secret = secret

    def body(self, alert: dict[str, Any]) -> bytes:
        return json.dumps(alert, sort_keys=True).encode()

    def headers(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", SIGNATURE_HEADER: signature(self.secret, body)}


class SlackSink(_HttpSink):
    """Slack incoming webhook (and compatible: Mattermost, Rocket.Chat): Block Kit with a `text` fallback."""

    name = "slack"

    def body(self, alert: dict[str, Any]) -> bytes:
        return json.dumps(slack_message(alert)).encode()


def slack_message(alert: dict[str, Any]) -> dict[str, Any]:
    """`text` for notifications and clients without blocks; a header, the facts, and where it is sealed."""
    summary = render.summary(alert)
    fields = [{"type": "mrkdwn", "text": _clip(f"*{label}*\n{_mrkdwn(value)}", SLACK_FIELD_LIMIT)}
              for label, value in render.facts(alert)][:SLACK_MAX_FIELDS]
    sealed = render.sealed_at(alert)
    note = (f"Sealed as `{sealed}`; " if sealed else "") + "verify offline with `trailseal verify`."
    return {
        "text": summary,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(summary, SLACK_HEADER_LIMIT)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]},
        ],
    }


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, so rule text cannot inject links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After: <seconds>` header (HTTP dates are ignored: plain backoff)."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

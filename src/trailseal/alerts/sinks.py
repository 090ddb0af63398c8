"""Where alerts go: a signed webhook (retries with backoff, then a dead-letter file) and stdout."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import httpx

SIGNATURE_HEADER = "X-Trailseal-Signature"


class Sink(Protocol):
    def send(self, alert: dict[str, Any]) -> None: ...


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, as the receiver recomputes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    """POST each alert as JSON with an HMAC signature header; failed alerts go to a dead-letter file."""

    def __init__(self, url: str, secret: str, dead_letter: Path, attempts: int = 5, timeout: float = 5.0):
        self.url, self.secret, self.dead_letter = url, secret, dead_letter
        self.attempts, self.timeout = attempts, timeout

    def send(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(self.secret, body)}
        for attempt in range(self.attempts):
            try:
                response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
                if response.status_code < 300:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(min(5.0, 0.2 * 2 ** attempt))
        with self.dead_letter.open("ab") as f:
            f.write(body + b"\n")


class StdoutSink:
    def send(self, alert: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(alert, sort_keys=True) + "\n")
        sys.stdout.flush()

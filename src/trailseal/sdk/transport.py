"""Send batches to a trailseal server: retries on 429/503 and connection errors, honouring Retry-After."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx

RETRY_STATUS = {429, 502, 503, 504}


class SendError(RuntimeError):
    """The server refused the batch for good (a 4xx other than 429), or retries ran out."""

    def __init__(self, message: str, status: int | None = None, body: dict | None = None):
        super().__init__(message)
        self.status, self.body = status, body


@dataclass
class Transport:
    """One server endpoint with a bearer token."""

    url: str
    token: str
    timeout: float = 30.0
    max_attempts: int = 12
    max_backoff: float = 10.0
    verify: bool | str = True

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url.rstrip("/"), timeout=self.timeout, verify=self.verify,
                                   headers={"Authorization": f"Bearer {self.token}"})

    def post_ndjson(self, body: bytes, path: str = "/v1/events") -> dict:
        """POST NDJSON; returns the decoded answer of the first non-retryable response."""
        headers = {"Content-Type": "application/x-ndjson"}
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.client.post(path, content=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt == self.max_attempts:
                    raise SendError(f"cannot reach {self.url}: {exc}") from None
                time.sleep(self._backoff(attempt, None))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.max_attempts:
                time.sleep(self._backoff(attempt, response.headers.get("retry-after")))
                continue
            return self._decode(response)
        raise SendError("retries exhausted")  # pragma: no cover - loop always returns or raises

    def get(self, path: str, params: dict | None = None) -> dict:
        response = self.client.get(path, params=params)
        return self._decode(response)

    def _decode(self, response: httpx.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:500]}
        if response.status_code in (200, 207, 422):
            return body
        raise SendError(f"HTTP {response.status_code}: {body.get('error', body)}", response.status_code, body)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """Retry-After when the server gives it, else jittered exponential backoff."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_backoff) + random.uniform(0, 0.1)
        return min(self.max_backoff, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.0)

    def close(self) -> None:
        self.client.close()

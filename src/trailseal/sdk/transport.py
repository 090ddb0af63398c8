"""Send batches to a trailseal server: one attempt at a time (``attempt``) or with retries on 429/503 and
connection errors, honouring Retry-After (``post_ndjson``)."""

from __future__ import annotations

import gzip
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
SPLIT_STATUS = {400, 413, 415}  # the batch as a whole is unacceptable: halve it until one event is left
GZIP_MIN_BYTES = 1024


class SendError(RuntimeError):
    """The server refused the batch for good (a 4xx other than 429), or retries ran out."""

    def __init__(self, message: str, status: int | None = None, body: dict | None = None):
        super().__init__(message)
        self.status, self.body = status, body


@dataclass
class Reply:
    """What one attempt got: ``kind`` is ok, retry, split or fatal."""

    kind: str
    status: int | None
    body: dict
    retry_after: float | None = None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - (now if now is not None else datetime.now(UTC).timestamp()))


def backoff(attempt: int, retry_after: float | None, cap: float) -> float:
    """Retry-After when the server gives it (never far beyond ``cap``), else jittered exponential backoff."""
    if retry_after is not None:
        return min(retry_after, max(cap, 60.0)) + random.uniform(0, 0.1)
    return min(cap, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.0)


def classify(status: int, body: dict) -> str:
    """ok (receipts and per-record errors), retry (try again later), split (halve the batch) or fatal."""
    if status in (200, 207, 422) or (status == 403 and "errors" in body):
        return "ok"
    if status in RETRY_STATUS:
        return "retry"
    if status in SPLIT_STATUS:
        return "split"
    return "fatal"


def decode_body(response: httpx.Response) -> dict:
    try:
        body = msgspec.json.decode(response.content)
    except ValueError:
        return {"error": response.text[:500]}
    return body if isinstance(body, dict) else {"error": str(body)[:500]}


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
        self.client = self._connect()

    def _connect(self) -> httpx.Client:
        """A connection pool to the server, authenticated."""
        return httpx.Client(base_url=self.url.rstrip("/"), verify=self.verify,
                            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
                            headers={"Authorization": f"Bearer {self.token}"})

    def attempt(self, body: bytes, compress: bool = True, path: str = "/v1/events") -> Reply:
        """POST an NDJSON body once; connection failures come back as a ``retry`` reply."""
        headers = {"Content-Type": "application/x-ndjson"}
        if compress and len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self.client.post(path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.client.close()  # start the next attempt on fresh connections
            self.client = self._connect()
            return Reply("retry", None, {"error": f"cannot reach {self.url}: {exc or type(exc).__name__}"})
        payload = decode_body(response)
        return Reply(classify(response.status_code, payload), response.status_code, payload,
                     retry_after_seconds(response.headers.get("retry-after")))

    def post_ndjson(self, body: bytes, path: str = "/v1/events") -> dict:
        """POST NDJSON; returns the decoded answer of the first non-retryable response."""
        for attempt in range(1, self.max_attempts + 1):
            reply = self.attempt(body, compress=False, path=path)
            if reply.kind == "retry" and attempt < self.max_attempts:
                time.sleep(backoff(attempt, reply.retry_after, self.max_backoff))
                continue
            if reply.kind == "ok":
                return reply.body
            if reply.status is None:
                raise SendError(reply.body["error"])
            raise SendError(f"HTTP {reply.status}: {reply.body.get('error', reply.body)}", reply.status,
                            reply.body)
        raise SendError("retries exhausted")  # pragma: no cover - loop always returns or raises

    def get(self, path: str, params: dict | None = None) -> dict:
        return self._answer(self._request("GET", path, params=params))

    def post_json(self, path: str, body: dict) -> dict:
        """POST a JSON object once (no retry: the request may not be idempotent); the decoded answer."""
        return self._answer(self._request("POST", path, json=body))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SendError(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None

    @staticmethod
    def _answer(response: httpx.Response) -> dict:
        payload = decode_body(response)
        if response.status_code in (200, 201, 207, 422):
            return payload
        raise SendError(f"HTTP {response.status_code}: {payload.get('error', payload)}", response.status_code,
                        payload)

    def close(self) -> None:
        self.client.close()

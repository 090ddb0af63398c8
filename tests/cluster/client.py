"""A retrying client: sends batches across ingest nodes, retrying any failure on the next node,
and remembers exactly which event ids were acknowledged."""

from __future__ import annotations

import random
import threading
import time

import httpx
import msgspec

from tests.conftest import make_event

RETRY_STATUSES = {429, 500, 502, 503, 504}


class RetryingClient:
    """Sends events start..end in batches, round-robin over ``urls``; acked ids land in ``acked``."""

    def __init__(self, urls: list[str], token: str, batch: int = 500):
        self.urls, self.token, self.batch = urls, token, batch
        self.acked: set[str] = set()
        self.retries = 0
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop every sender after its current request (a failed run must not leave them retrying)."""
        self._cancelled.set()

    def send_range(self, start: int, end: int, first_node: int = 0) -> None:
        node, rng = first_node, random.Random(start)
        with httpx.Client(timeout=15, verify=False) as http:  # plain http: skip loading CA certs
            for low in range(start, end, self.batch):
                if self._cancelled.is_set():
                    return
                body = b"".join(msgspec.json.encode(make_event(i, rng)) + b"\n"
                                for i in range(low, min(end, low + self.batch)))
                node = self._send(http, body, node)

    def _send(self, http: httpx.Client, body: bytes, node: int) -> int:
        """Post until acknowledged, moving to the next node after each failure; the node to use next."""
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not self._cancelled.is_set():
            url = self.urls[node % len(self.urls)]
            try:
                answer = http.post(url + "/v1/events", content=body, headers=headers)
            except httpx.HTTPError:
                answer = None
            if answer is not None:
                with self._lock:
                    self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
            if answer is not None and answer.status_code == 200:
                with self._lock:
                    self.acked.update(r["id"] for r in msgspec.json.decode(answer.content)["receipts"])
                return node + 1
            if answer is not None and answer.status_code not in RETRY_STATUSES:
                self.errors.append(f"{answer.status_code}: {answer.text[:300]}")
                return node + 1
            self.retries += 1
            node += 1
            time.sleep(0.1)
        if not self._cancelled.is_set():
            self.errors.append("gave up after 120 s of retries")
        return node

    def start(self, total: int, threads: int = 2) -> list[threading.Thread]:
        """Send 0..total split over ``threads`` senders; returns the running threads."""
        share = -(-total // threads)
        workers = [threading.Thread(target=self.send_range, args=(t * share, min(total, (t + 1) * share), t))
                   for t in range(threads)]
        for worker in workers:
            worker.start()
        return workers

"""kill -9 the real server at random moments under a retrying client: every receipted event is sealed
exactly once, verify passes, and every checkpoint a client saw is consistent with the final tree."""

from __future__ import annotations

import json
import random
import threading
import time

import httpx

import trailseal
from tests.api.server import Server
from tests.conftest import make_event
from trailseal.ledger import open_checkpoint, verify_consistency


class RetryingClient(threading.Thread):
    """Sends batches of 50 with unique ids; retries each until it gets receipts."""

    def __init__(self, url: str, token: str, base: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.url, self.token, self.base, self.stop = url, token, base, stop
        self.receipts: dict[str, int] = {}
        self.checkpoints: list[str] = []

    def run(self) -> None:
        batch_no = 0
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                start = self.base + batch_no * 50
                body = [make_event(i) for i in range(start, start + 50)]
                while not self.stop.is_set():
                    try:
                        response = client.post(self.url + "/v1/events", json=body,
                                               headers={"Authorization": f"Bearer {self.token}"})
                    except httpx.HTTPError:
                        time.sleep(0.05)
                        continue
                    if response.status_code == 200:
                        answer = response.json()
                        self.receipts.update((r["id"], r["index"]) for r in answer["receipts"])
                        self.checkpoints.append(answer["checkpoints"]["default"])
                        break
                    time.sleep(0.05)
                batch_no += 1


def test_receipts_survive_ten_kills(data_dir):
    server = Server(data_dir).start()
    stop = threading.Event()
    clients = [RetryingClient(server.url, server.admin, base, stop) for base in (0, 10_000_000)]
    for client in clients:
        client.start()
    rng = random.Random(11)
    for _ in range(10):
        time.sleep(rng.uniform(0.3, 1.0))
        server.kill()
        server.start()
    time.sleep(0.5)
    stop.set()
    for client in clients:
        client.join(15)
    server.stop()

    acknowledged = {k: v for c in clients for k, v in c.receipts.items()}
    assert len(acknowledged) > 500, "the clients barely got through"
    with trailseal.open(data_dir) as log:
        (report,) = log.verify("default")
        assert report.ok, report.summary()
        stored = {json.loads(data)["id"]: index for index, data in log.store.read_entries("default", 0, 10**9)}
        assert len(stored) == report.entries, "an id was sealed twice"
        assert all(stored.get(i) == index for i, index in acknowledged.items()), "an acknowledged event was lost"
        final = open_checkpoint(log.checkpoint(), [log.verifier()])
        for note in (n for c in clients for n in c.checkpoints):
            seen = open_checkpoint(note, [log.verifier()])
            proof = log.consistency_proof(seen.size, final.size) if seen.size < final.size else []
            verify_consistency(seen.size, final.size, seen.root, final.root, proof)

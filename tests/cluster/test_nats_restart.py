"""NATS restarted mid-run: ingest nodes answer 503 with Retry-After while it is down (nothing is
accepted and lost), then recover by themselves; every acked event is sealed exactly once."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.cluster.checks import sealed_ids, wait_sealed
from tests.cluster.conftest import cluster_data_dir
from tests.cluster.natsd import NatsServer
from tests.cluster.nodes import Sequencer, ingest_node, wait_for_leader
from tests.conftest import make_event


@pytest.fixture
def own_nats():
    """Our own nats-server (never the machine's): this test stops and restarts it."""
    server = NatsServer().start()
    yield server
    server.remove()


def body(start: int, count: int) -> str:
    return "".join(json.dumps(make_event(i)) + "\n" for i in range(start, start + count))


def post(url: str, token: str, payload: str) -> httpx.Response:
    return httpx.post(url + "/v1/events", content=payload, timeout=15,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})


def test_ingest_answers_503_while_nats_is_down_and_recovers(tmp_path, pg_url, own_nats):
    data = cluster_data_dir(tmp_path, pg_url, own_nats.url)
    sequencer = Sequencer(data, "seq-a").start()
    node = ingest_node(data).start()
    try:
        wait_for_leader(data, 20)
        token = node.token()
        assert post(node.url, token, body(0, 300)).status_code == 200

        own_nats.stop()
        answers = [post(node.url, token, body(300, 300)) for _ in range(3)]
        assert [a.status_code for a in answers] == [503, 503, 503]
        assert all(a.headers["retry-after"] == "1" for a in answers)
        assert "JetStream" in answers[0].json()["error"] or "bus" in answers[0].json()["error"]
        assert httpx.get(node.url + "/healthz").status_code == 200  # the node itself stays up

        own_nats.start()
        deadline, answer = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            answer = post(node.url, token, body(300, 300))
            if answer.status_code == 200:
                break
            assert answer.status_code == 503, answer.text
            time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, "the ingest node did not recover"
        assert answer.json()["accepted"] == 300
        assert wait_sealed(data, 600, 60) == 600
    finally:
        node.stop()
        sequencer.stop()
    ids = sealed_ids(data)
    assert sorted(ids) == sorted(f"evt-{i:08d}" for i in range(600))

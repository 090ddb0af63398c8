"""The client: what log() seals, batching, gzip, retries honouring Retry-After, splitting, rejections,
and the promises to the caller (never raises, never blocks beyond max_block)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from tests.api.server import free_port
from tests.conftest import REPO
from tests.sdk.conftest import sealed
from tests.sdk.stub import Stub, accept_all
from trailseal.sdk import AsyncClient, Client, acting_as
from trailseal.sdk.transport import backoff, retry_after_seconds


def test_logged_event_is_sealed_with_its_id_fields_and_defaults(client, events):
    event_id = client.log(category="data_access", action="report.export", actor="alice", target="report-7",
                          rows=120, reason=None)
    client.log(action="app.started")
    first, second = events(2)
    assert first["id"] == event_id and first["action"] == "report.export" and first["outcome"] == "success"
    assert first["actor"] == {"id": "alice", "type": "user"}
    assert first["target"] == {"id": "report-7"} and first["attributes"] == {"rows": 120}
    assert first["source"]["component"] == "tests" and first["source"]["kind"] == "app"
    assert second["category"] == "system" and second["actor"] == {"id": "tests", "type": "service"}
    assert "received" in first and first["time"] <= first["received"]


def test_context_actor_and_trace_apply_to_plain_log_calls(client, events):
    with acting_as({"id": "bob", "roles": ["ops"]}, trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
        client.log(category="admin", action="user.role.grant", target="carol")
    client.log(category="admin", action="cache.clear")
    inside, outside = events(2)
    assert inside["actor"]["id"] == "bob" and inside["actor"]["roles"] == ["ops"]
    assert inside["request"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert outside["actor"]["id"] == "tests" and "request" not in outside


def test_invalid_events_are_counted_and_reported_never_raised(client, events):
    errors = []
    client.on_error = errors.append
    assert client.log(category="nope", action="x") is not None
    assert client.log(action="Not An Action") is not None
    assert client.log(action="ok.action", blob=object()) is not None
    assert client.log(action="ok.action", time="yesterday") is not None
    client.log(action="ok.action")
    assert [e["action"] for e in events(1)] == ["ok.action"]
    assert client.stats.invalid == 4 and client.stats.sent == 1
    assert [e.kind for e in errors] == ["invalid"] * 4 and "category" in errors[0].message


def test_batches_by_size_then_by_time(tmp_path):
    with Stub() as stub:
        client = Client(stub.url, "t", spool_dir=tmp_path, batch_size=10, flush_interval=0.8)
        started = time.monotonic()
        ids = [client.log(action="bulk.item", n=i) for i in range(25)]
        deadline = time.monotonic() + 5
        while sum(len(s.lines) for s in stub.seen) < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
        client.close()
    assert [len(s.lines) for s in stub.seen] == [10, 10, 5]
    assert stub.seen[1].at - started < 0.8 <= stub.seen[2].at - started  # two full ones, then the rest
    assert [line["id"] for s in stub.seen for line in s.lines] == ids


def test_large_batches_are_gzipped(tmp_path):
    with Stub() as stub:
        with Client(stub.url, "secret", spool_dir=tmp_path) as client:
            for i in range(50):
                client.log(action="bulk.item", n=i)
            assert client.flush(5)
    assert stub.seen[0].headers["content-encoding"] == "gzip"
    assert stub.seen[0].headers["authorization"] == "Bearer secret"
    assert stub.seen[0].headers["content-type"] == "application/x-ndjson" and len(stub.seen[0].lines) == 50


def test_429_is_retried_after_the_servers_retry_after(tmp_path):
    answers = iter([(429, {"Retry-After": "1"}, {"error": "slow down"})])

    def answer(lines):
        return next(answers, None) or accept_all(lines)

    with Stub(answer) as stub:
        with Client(stub.url, "t", spool_dir=tmp_path, max_backoff=0.1) as client:
            client.log(action="a.b")
            assert client.flush(10)
            assert client.stats.retries == 1 and client.stats.sent == 1
    assert len(stub.seen) == 2 and stub.seen[1].at - stub.seen[0].at >= 0.95
    assert stub.seen[0].lines == stub.seen[1].lines


def test_oversized_batches_are_split_and_refused_records_kept(tmp_path):
    def answer(lines):
        if len(lines) > 2:
            return 413, {}, {"error": "too many"}
        bad = [i for i, line in enumerate(lines) if line.get("attributes", {}).get("bad")]
        if not bad:
            return accept_all(lines)
        errors = [{"position": i, "field": "attributes.bad", "reason": "refused"} for i in bad]
        receipts = [{"position": i, "id": e["id"]} for i, e in enumerate(lines) if i not in bad]
        return 207, {}, {"accepted": len(receipts), "receipts": receipts, "errors": errors}

    with Stub(answer) as stub:
        with Client(stub.url, "t", spool_dir=tmp_path) as client:
            ids = [client.log(action="x.y", bad=i == 3) for i in range(7)]
            assert client.flush(10)
            assert client.stats.rejected == 1 and client.stats.sent == 6
    delivered = [line["id"] for s in stub.seen if len(s.lines) <= 2 for line in s.lines]
    assert delivered == ids
    kept = [json.loads(line) for line in (tmp_path / "slot-0" / "rejected.ndjson").read_text().splitlines()]
    assert [json.loads(k["event"])["id"] for k in kept] == [ids[3]] and kept[0]["error"]["reason"] == "refused"


def test_log_never_blocks_longer_than_max_block(tmp_path):
    errors = []
    client = Client(f"http://127.0.0.1:{free_port()}", "t", spool_dir=False, max_queue=5, max_block=0.02,
                    on_error=errors.append)
    original = client._spool.append
    client._spool.append = lambda lines: time.sleep(0.5) or original(lines)  # a stalled disk
    durations = []
    for i in range(40):
        started = time.perf_counter()
        client.log(action="x.y", n=i)
        durations.append(time.perf_counter() - started)
    assert max(durations) < 0.25  # not the 0.5 s the writer is stuck for, let alone 40 times that
    assert client.stats.dropped > 0 and any(e.kind == "dropped" for e in errors)
    client._spool.append = original
    client.close(timeout=0.1)


def test_unreachable_server_keeps_events_on_disk_for_the_next_start(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    client = Client(url, "t", spool_dir=tmp_path, max_backoff=0.1)
    for i in range(10):
        client.log(action="x.y", n=i)
    assert client.flush(0.3) is False
    assert client.close(timeout=0.1) is False
    assert client.stats.retries >= 1 and client.stats.pending == 10
    again = Client(url, "t", spool_dir=tmp_path)
    assert again.stats.recovered == 10 and again.stats.pending == 10
    again.close(timeout=0.1)


def test_memory_only_client_counts_what_it_could_not_deliver(tmp_path):
    client = Client(f"http://127.0.0.1:{free_port()}", "t", spool_dir=False, max_backoff=0.1)
    for i in range(3):
        client.log(action="x.y", n=i)
    assert client.close(timeout=0.2) is False
    assert client.stats.dropped == 3
    assert client.log(action="after.close") is None and client.stats.dropped == 4


def test_async_client(live, log_name, tmp_path):
    async def main() -> list[str | None]:
        async with AsyncClient(live.url, live.admin, log=log_name, spool_dir=tmp_path) as client:
            ids = [client.log(category="session", action="session.start", actor=f"u{i}") for i in range(3)]
            assert await client.flush(10)
            assert client.stats.sent == 3
        return ids

    ids = asyncio.run(main())
    assert [e["id"] for e in sealed(live, log_name, 3)] == ids


def test_retry_after_parsing_and_backoff_bounds():
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert 9 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480) <= 11
    assert 3.0 <= backoff(1, 3.0, cap=1.0) <= 3.1
    assert all(0 < backoff(n, None, cap=2.0) <= 2.0 for n in range(1, 30))


def test_a_forked_child_gets_its_own_slot_threads_and_ids(live, log_name, tmp_path):
    done = subprocess.run([sys.executable, "-m", "tests.sdk.fork_child", live.url, live.admin, log_name,
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = sealed(live, log_name, 7)
    assert sorted(e["action"] for e in got) == ["fork.before"] + ["fork.child"] * 3 + ["fork.parent"] * 3
    assert len({e["id"] for e in got}) == 7
    assert {p.name for p in tmp_path.glob("slot-*")} == {"slot-0", "slot-1"}


def test_a_misconfigured_client_is_refused_when_it_is_made(tmp_path):
    with pytest.raises(ValueError, match="ledger name"):
        Client("http://127.0.0.1:9", "t", log="Bad Log", spool_dir=tmp_path)
    with pytest.raises(ValueError, match="source"):
        Client("http://127.0.0.1:9", "t", source_kind="mainframe", spool_dir=tmp_path)

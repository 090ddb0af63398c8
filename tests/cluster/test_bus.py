"""The bus in one process: JetStream receipts and dedup, 503 when NATS is unreachable, the sequencer
answering already sealed ids from the store, and the detector following the shared store."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager, nullcontext

import pytest
from starlette.testclient import TestClient

import trailseal
from tests.cluster.checks import log_size, sealed_ids, wait_drained, wait_sealed
from tests.cluster.conftest import cluster_data_dir
from tests.cluster.natsd import free_port
from tests.conftest import make_event
from trailseal.api import create_app
from trailseal.api.auth import TokenStore
from trailseal.bus import BusUnavailable, Queued
from trailseal.cluster import roles
from trailseal.cluster.sequencer import Sequencer
from trailseal.event import utc_now


@contextmanager
def running_sequencer(data_dir, shard: str = "*"):
    trail = trailseal.open(data_dir)
    sequencer = Sequencer(trail, shard, "in-process")
    thread = threading.Thread(target=sequencer.run, daemon=True)
    thread.start()
    try:
        yield sequencer
    finally:
        sequencer.stop()
        thread.join(30)
        trail.close()


@contextmanager
def ingest_trail(data_dir):
    trail = trailseal.open(data_dir)
    bus = roles.attach_bus(trail, "test-ingest")
    assert bus.wait_connected(10)
    try:
        yield trail
    finally:
        trail.close()


def test_publish_answers_after_jetstream_and_dedups_by_id(cluster_dir):
    with ingest_trail(cluster_dir) as trail:
        items = trail.prepare([make_event(i) for i in range(20)])
        receipts = trail.sealer.seal(items)
        assert all(isinstance(r, Queued) and r.index is None for r in receipts)
        assert [r.id for r in receipts] == [i.id for i in items]
        assert len({r.stream_seq for r in receipts}) == 20 and all(r.leaf_hash for r in receipts)
        again = trail.sealer.seal(trail.prepare([make_event(i) for i in range(20)]))
        assert [r.stream_seq for r in again] == [r.stream_seq for r in receipts]
        assert all(r.leaf_hash is None for r in again) and trail.sealer.duplicates == 20


def test_unreachable_nats_is_503_with_retry_after(tmp_path, pg_url):
    data = cluster_data_dir(tmp_path, pg_url, f"nats://127.0.0.1:{free_port()}")
    trail = trailseal.open(data)
    roles.attach_bus(trail, "test-ingest")
    with pytest.raises(BusUnavailable, match="unavailable"):
        trail.sealer.submit(trail.prepare([make_event(1)]))
    tokens = TokenStore(data)
    secret = tokens.create("ingest", "t")[0]
    tokens.close()
    with TestClient(create_app(trail, detect=False, scheduled=False)) as http:
        answer = http.post("/v1/events", json=[make_event(1)], headers={"Authorization": f"Bearer {secret}"})
        ready = http.get("/readyz")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert "unavailable" in answer.json()["error"]
    assert ready.status_code == 503 and "NATS" in ready.json()["reason"], "a load balancer must route elsewhere"


def test_sequencer_answers_sealed_ids_from_the_store(cluster_dir):
    with trailseal.open(cluster_dir) as embedded:  # sealed earlier, e.g. before moving to scale-out
        first = embedded.append([make_event(i) for i in range(50)])
    with running_sequencer(cluster_dir), ingest_trail(cluster_dir) as trail:
        trail.sealer.seal(trail.prepare([make_event(i) for i in range(100)]))
        assert wait_sealed(cluster_dir, 100, 30) == 100
        wait_drained(cluster_dir, 30)  # every message sealed and acked: a double seal would show now
    assert log_size(cluster_dir) == 100, "an id was sealed twice"
    assert sorted(sealed_ids(cluster_dir)) == sorted(f"evt-{i:08d}" for i in range(100))
    with trailseal.open(cluster_dir) as reader:
        assert [reader.entry(r.index) for r in first] == [reader.entry(i) for i in range(50)]
        assert all(report.ok for report in reader.verify())


def brute_force_findings(data_dir) -> list[bytes]:
    with trailseal.open(data_dir) as reader:
        entries = [reader.entry(i, "trailseal") for i in range(reader.store.tree_size("trailseal"))]
    return [e for e in entries if b"detect.alert" in e and b"Brute force" in e]


def test_detector_follows_the_store_and_publishes_findings(cluster_dir):
    stop = threading.Event()
    detector_trail = trailseal.open(cluster_dir)
    detector = threading.Thread(target=roles.run_detector, args=(detector_trail, "test-detector", stop), daemon=True)
    failures = [make_event(i, outcome="failure", action="user.login", category="authentication", time=utc_now(),
                           actor={"id": "mallory", "ip": "203.0.113.9", "type": "user"}) for i in range(12)]
    found: list[bytes] = []
    try:
        with running_sequencer(cluster_dir), ingest_trail(cluster_dir) as trail:
            detector.start()
            time.sleep(1.0)  # the detector starts following at the current end
            trail.sealer.seal(trail.prepare(failures))
            deadline = time.monotonic() + 30
            while not found and time.monotonic() < deadline:
                time.sleep(0.3)
                found = brute_force_findings(cluster_dir)
    finally:
        stop.set()
        detector.join(10)
        detector_trail.close()
    assert found, "the detector sealed no brute-force finding through the bus"
    assert b"mallory" not in found[0], "a finding is sealed: the actor stays a commitment"


def test_values_the_bus_took_are_reused_without_copies(cluster_dir):
    """An ingest node confirms the vault rows of events JetStream stored (the sequencer writes them): the
    next events with those values carry no rows. Events JetStream held already (a re-sent batch after the
    node restarted, with fresh commitments) are not confirmed: the next event carries their rows."""
    from tests.privacy.test_unwritten_rows import revealed_actor

    actor = {"id": "erin", "type": "user", "ip": "10.7.7.7"}
    with running_sequencer(cluster_dir):
        with ingest_trail(cluster_dir) as trail:
            trail.sealer.seal(trail.prepare([make_event(i, actor=actor) for i in range(5)]))
            assert trail.prepare([make_event(10, actor=actor)])[0].vault == ()
        with ingest_trail(cluster_dir) as trail:  # restarted: nothing remembered
            again = trail.prepare([make_event(0, actor=actor)])
            assert trail.sealer.seal(again)[0].leaf_hash is None, "JetStream held it already"
            following = trail.prepare([make_event(20, actor=actor)])
            assert sorted(r.commitment for r in following[0].vault) == sorted(r.commitment for r in again[0].vault)
            trail.sealer.seal(following)
        assert wait_sealed(cluster_dir, 6, 30) == 6
        wait_drained(cluster_dir, 30)
    with trailseal.open(cluster_dir) as reader:
        assert revealed_actor(reader, "evt-00000020") == ("erin", "10.7.7.7")


def test_erasure_on_the_bus_waits_for_the_stream_to_reach_it(cluster_dir):
    """Events of the subject published before the erasure are sealed (their vault rows written) only once
    a sequencer runs, after the erasure deleted the rows: the erasure waits until the stream reached its
    own event, then erases again."""
    actor = {"id": "fay", "type": "user", "ip": "10.8.8.8"}
    with ingest_trail(cluster_dir) as trail:
        trail.sealer.seal(trail.prepare([make_event(i, actor=actor) for i in range(3)]))  # in the stream only
        erased: list[int] = []
        erasing = threading.Thread(target=lambda: erased.append(trail.erase("fay")))
        erasing.start()
        time.sleep(0.5)  # the first pass found nothing written; the erasure now waits for the stream
        assert erasing.is_alive(), "the erasure did not wait for its event to be sealed"
        with running_sequencer(cluster_dir):
            erasing.join(30)
            assert erased and erased[0] == 2, "the second pass erased the id and the address"
    with trailseal.open(cluster_dir) as reader:
        left = reader.store._conn().execute("SELECT count(*) FROM vault WHERE subject = %s", ["fay"]).fetchone()[0]
    assert left == 0, "values of events published before the erasure outlived it"


def test_an_erasure_on_one_node_makes_the_others_forget(cluster_dir):
    """Node B reuses the values of gus it saw JetStream store; node A erases gus: B is told over the bus (by
    search token, never the subject) and its next event of gus carries fresh vault rows, not the erased
    commitments."""
    actor = {"id": "gus", "type": "user", "ip": "10.9.9.9"}
    with running_sequencer(cluster_dir), ingest_trail(cluster_dir) as node_b, ingest_trail(cluster_dir) as node_a:
        first = node_b.prepare([make_event(i, actor=actor) for i in range(3)])
        node_b.sealer.seal(first)
        erased = {row.commitment for row in first[0].vault}
        assert node_b.prepare([make_event(10, actor=actor)])[0].vault == ()  # B reuses them
        assert wait_sealed(cluster_dir, 3, 30) == 3
        assert node_a.erase("gus") == 2
        deadline = time.monotonic() + 10
        while any(subject == "gus" for _, subject, *_ in node_b.protection.held()) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = node_b.prepare([make_event(11, actor=actor)])[0]
        assert len(after.vault) == 2 and not erased & {row.commitment for row in after.vault}


def test_forget_announcements_from_the_bus_are_checked(cluster_dir):
    """Junk on the forget subject is ignored (logged), and the node keeps listening: a well-formed
    announcement after it still makes the node forget the subject it names by search token."""
    import asyncio

    import msgspec
    import nats

    from trailseal.bus.nats import forget_subject

    actor = {"id": "hal", "type": "user", "ip": "10.6.6.6"}
    with running_sequencer(cluster_dir), ingest_trail(cluster_dir) as node:
        node.sealer.seal(node.prepare([make_event(i, actor=actor) for i in range(2)]))
        assert any(subject == "hal" for _, subject, *_ in node.protection.held())

        async def announce() -> None:
            client = await nats.connect(node.config.bus.url)
            token = node.protection.subject_token("hal", "default")
            for payload in (b"junk", b'["other", 5]', b"\xff" * 64, msgspec.json.encode(["other", [token]])):
                await client.publish(forget_subject(node.config.bus), payload)
            await client.flush()
            await client.close()

        asyncio.run(announce())
        deadline = time.monotonic() + 10
        while any(subject == "hal" for _, subject, *_ in node.protection.held()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(subject == "hal" for _, subject, *_ in node.protection.held())


@pytest.mark.parametrize("per_log", [False, True])
def test_vault_expiry_on_the_bus_waits_for_what_the_stream_holds(cluster_dir, per_log):
    """Ivy's first event expires; her second, published while no sequencer runs, reuses her values and is
    only in the stream. Vault expiry waits until a sequencer sealed it, finds her retained again, and keeps
    her values. With a sequencer per log, the `trailseal` log's own runs throughout: its sealing what came
    later says nothing of `default`'s."""
    from datetime import UTC, datetime, timedelta

    from tests.privacy.test_unwritten_rows import revealed_actor
    from trailseal.retention import Policies, Retention
    from trailseal.retention_vault import VaultExpiry

    actor, shard = {"id": "ivy", "type": "user", "ip": "10.5.5.5"}, "default" if per_log else "*"
    with ingest_trail(cluster_dir) as trail:
        with running_sequencer(cluster_dir, shard):
            trail.sealer.seal(trail.prepare([make_event(1, actor=actor)]))
            assert wait_sealed(cluster_dir, 1, 30) == 1
        trail.sealer.seal(trail.prepare([make_event(3, actor=actor)]))  # in the stream only
        later = datetime.now(UTC) + timedelta(days=200)
        retention = Retention(trail.store, Policies.from_config({"policies": {"data_access": {"keep": "180d"}}}),
                              vault=VaultExpiry.for_trail(trail, drain=0), clock=lambda: later)
        applied: list = []
        with running_sequencer(cluster_dir, "trailseal") if per_log else nullcontext():
            applying = threading.Thread(target=lambda: applied.append(retention.apply(later)))
            applying.start()
            time.sleep(1.0)
            assert applying.is_alive(), "vault expiry did not wait for the stream"
            with running_sequencer(cluster_dir, shard):
                applying.join(60)
        assert applied and applied[0].count("expire") == 1 and applied[0].vault == {}
    with trailseal.open(cluster_dir) as reader:
        assert revealed_actor(reader, "evt-00000003") == ("ivy", "10.5.5.5")


@pytest.mark.parametrize("scope", [None, "default"])
def test_an_erasure_waits_for_the_erased_logs_own_sequencer(cluster_dir, scope):
    """With a sequencer per log, the erasure's own event (in `trailseal`) being sealed says nothing of
    `default`: the erasure waits until `default`'s events that were in the stream are sealed too."""
    actor = {"id": "gus", "type": "user", "ip": "10.9.9.9"}
    with ingest_trail(cluster_dir) as trail:
        trail.sealer.seal(trail.prepare([make_event(i, actor=actor) for i in range(3)]))  # in the stream only
        erased: list[int] = []
        with running_sequencer(cluster_dir, "trailseal"):
            erasing = threading.Thread(target=lambda: erased.append(trail.erase("gus", scope)))
            erasing.start()
            time.sleep(1.0)
            assert erasing.is_alive(), "the erasure did not wait for the default log's sequencer"
            with running_sequencer(cluster_dir, "default"):
                erasing.join(30)
        assert erased and erased[0] == 2, "the second pass erased the id and the address"
    with trailseal.open(cluster_dir) as reader:
        left = reader.store._conn().execute("SELECT count(*) FROM vault WHERE subject = %s", ["gus"]).fetchone()[0]
    assert left == 0, "values of events published before the erasure outlived it"

"""The spool: an outage loses nothing and keeps order, a SIGKILL loses only what was not yet on disk,
replay after a crash seals nothing twice; and the file format's own rules (torn tails, rotation, bounds,
orphaned slots)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.api.server import Server
from tests.conftest import REPO
from tests.sdk.conftest import down, sealed
from trailseal.sdk.client import Client
from trailseal.sdk.spool import Batch, Spool, line_block


def lines(*names: str) -> list[bytes]:
    return [json.dumps({"id": n}).encode() + b"\n" for n in names]


def drain(spool: Spool) -> list[str]:
    """Read and acknowledge everything pending; the ids in order."""
    seen = []
    while batch := spool.read(3, 1 << 20):
        if not batch.lines:
            break
        seen += [json.loads(line)["id"] for line in batch.lines]
        spool.ack(batch)
    return seen


def test_pending_lines_survive_reopen_in_order_and_acks_are_remembered(tmp_path):
    spool = Spool(tmp_path)
    spool.append(lines("a", "b", "c", "d"))
    spool.ack(spool.read(2, 1 << 20))
    spool.close()
    again = Spool(tmp_path)
    assert again.recovered == 2 and again.pending == 2
    assert drain(again) == ["c", "d"] and again.pending == 0


def test_a_torn_last_line_is_cut_at_recovery(tmp_path):
    spool = Spool(tmp_path)
    spool.append(lines("a", "b"))
    spool.close()
    segment = next((tmp_path / "slot-0").glob("seg-*.ndjson"))
    with open(segment, "ab") as f:
        f.write(b'{"id": "tor')
    again = Spool(tmp_path)
    assert drain(again) == ["a", "b"]
    assert segment.read_bytes().endswith(b"\n")


def test_segments_rotate_and_sealed_ones_are_deleted(tmp_path):
    spool = Spool(tmp_path, segment_bytes=40)
    for i in range(10):
        spool.append(lines(f"e{i}"))
    slot = tmp_path / "slot-0"
    assert len(list(slot.glob("seg-*.ndjson"))) == 3  # 13-byte lines, 4 a segment
    assert drain(spool) == [f"e{i}" for i in range(10)]
    assert len(list(slot.glob("seg-*.ndjson"))) == 1


def test_the_spool_is_bounded(tmp_path):
    spool = Spool(tmp_path, max_bytes=40)
    assert spool.append(lines("a", "b", "c", "d", "e")) == 3  # 12 bytes a line
    assert spool.pending == 3 and spool.bytes <= 40
    spool.ack(spool.read(10, 1 << 20))
    assert spool.append(lines("f")) == 1


def test_slots_left_by_dead_workers_are_adopted_in_order(tmp_path):
    workers = [Spool(tmp_path) for _ in range(3)]
    assert [w.path.name for w in workers] == ["slot-0", "slot-1", "slot-2"]
    for n, worker in enumerate(workers):
        worker.append(lines(f"w{n}-1", f"w{n}-2"))
        worker.close()
    survivor = Spool(tmp_path)
    assert survivor.path.name == "slot-0" and survivor.recovered == 6
    assert drain(survivor) == ["w0-1", "w0-2", "w1-1", "w1-2", "w2-1", "w2-2"]
    assert not list((tmp_path / "slot-1").glob("seg-*.ndjson"))


def test_a_second_client_on_the_same_spool_dir_takes_another_slot(tmp_path):
    first, second = Spool(tmp_path), Spool(tmp_path)
    assert first.path != second.path
    first.append(lines("x"))
    assert second.pending == 0 and isinstance(second.read(5, 100), Batch)


def test_invalid_fsync_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fsync"):
        Spool(tmp_path, fsync="sometimes")


# -- against a real server -------------------------------------------------------------------------------
def spooled_client(server: Server, spool_dir) -> Client:
    return Client(server.url, server.admin, spool_dir=spool_dir, source="spool-test", flush_interval=0.05,
                  max_backoff=0.3, batch_size=50)


def test_outage_then_recovery_seals_every_event_once_in_order(data_dir, tmp_path):
    server = Server(data_dir)
    client = spooled_client(server, tmp_path / "spool")
    try:
        ids = []
        with down(server):
            for burst in range(4):
                ids += [client.log(action="outage.event", burst=burst, n=i) for i in range(50)]
                time.sleep(0.1)
            assert client.flush(0.2) is False and client.stats.retries >= 1 and client.stats.sent == 0
        server.start()
        ids += [client.log(action="outage.event", n=i) for i in range(50)]
        assert client.flush(20), client.stats
        server.kill()  # and down again, mid-stream
        with down(server):
            ids += [client.log(action="outage.event", n=i) for i in range(100)]
            time.sleep(0.3)
        server.start()
        assert client.flush(20), client.stats
        got = [e["id"] for e in sealed(server, at_least=len(ids))]
        assert got == ids and len(set(got)) == len(ids) == 350
        assert client.stats.sent == 350 and client.stats.pending == 0
    finally:
        client.close(timeout=1)
        server.stop()


def test_sigkilled_process_loses_only_what_was_not_on_disk(data_dir, tmp_path):
    server = Server(data_dir)
    spool_dir = tmp_path / "spool"
    with down(server):  # nothing can leave the process before it dies
        child = subprocess.run([sys.executable, "-m", "tests.sdk.spool_child", server.url, str(spool_dir),
                                "300", "2000"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert child.returncode == -9 and "spooled" in child.stdout, child.stderr
    on_disk = [json.loads(line)["id"] for seg in sorted((spool_dir / "slot-0").glob("seg-*.ndjson"))
               for line in seg.read_bytes().splitlines()]
    assert len(on_disk) == 300  # the 2,000 logged after the disk stalled were only in memory
    server.start()
    client = spooled_client(server, spool_dir)
    try:
        assert client.stats.recovered == 300
        assert client.flush(30), client.stats
        got = sealed(server, at_least=300)
        assert [e["id"] for e in got] == on_disk == sorted(on_disk)  # UUIDv7 ids: in logged order
        assert {e["action"] for e in got} == {"crash.before"}
        assert [e["attributes"]["n"] for e in got] == list(range(300))
    finally:
        client.close(timeout=1)
        server.stop()


def test_replaying_already_sealed_events_seals_nothing_twice(data_dir, tmp_path):
    server = Server(data_dir).start()
    spool_dir = tmp_path / "spool"
    try:
        client = spooled_client(server, spool_dir)
        ids = [client.log(action="replay.event", n=i) for i in range(40)]
        assert client.close(timeout=10)
        (spool_dir / "slot-0" / "ack").write_text("1 0\n")  # as if the process died before recording the ack
        again = spooled_client(server, spool_dir)
        assert again.stats.recovered == 40
        assert again.flush(10) and again.stats.sent == 40  # the server answered with the original receipts
        again.close()
        assert [e["id"] for e in sealed(server)] == ids
    finally:
        server.stop()


def test_a_write_the_disk_refuses_leaves_no_partial_line(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.append(lines("a"))
    real_write = os.write

    def half_then_full(fd, data):
        monkeypatch.setattr("trailseal.sdk.spool.os.write", failing)
        return real_write(fd, bytes(data[:5]))

    def failing(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("trailseal.sdk.spool.os.write", half_then_full)
    with pytest.raises(OSError):
        spool.append(lines("b", "c"))
    monkeypatch.setattr("trailseal.sdk.spool.os.write", real_write)
    spool.append(lines("d"))
    assert spool.pending == 2 and drain(spool) == ["a", "d"]


def test_a_torn_ack_mark_replays_the_segment_rather_than_skip_events(tmp_path):
    spool = Spool(tmp_path)
    spool.append(lines("a", "b", "c"))  # 12 bytes a line
    spool.ack(spool.read(2, 1 << 20))
    spool.close()
    ack = tmp_path / "slot-0" / "ack"
    assert ack.read_text().split()[:2] == ["1", "24"]
    ack.write_bytes(ack.read_bytes().replace(b"24", b"36", 1))  # digits of a later mark over this one's
    again = Spool(tmp_path)
    assert drain(again) == ["a", "b", "c"]  # replayed (the server deduplicates by id), nothing skipped


def test_a_batch_is_read_as_one_block_and_split_into_lines_on_demand(tmp_path):
    spool = Spool(tmp_path)
    spool.append(lines(*"abcdefg"))
    batch = spool.read(5, 40)  # at most 40 bytes: three 12-byte lines
    assert (batch.count, batch.end, batch.body()) == (3, 36, b"".join(lines("a", "b", "c")))
    assert batch.lines == lines("a", "b", "c")
    assert spool.read(2, 1 << 20).count == 2
    assert Spool(tmp_path / "other", max_bytes=1 << 20).read(5, 5).count == 0


def test_a_line_longer_than_the_batch_limit_is_sent_alone(tmp_path):
    spool = Spool(tmp_path)
    big = json.dumps({"id": "big", "pad": "x" * 5000}).encode() + b"\n"
    spool.append([*lines("a"), big, *lines(*"bcdefghij")])
    assert spool.read(10, 100).lines == lines("a")
    spool.ack(spool.read(10, 100))
    assert spool.read(10, 100).lines == [big]  # longer than 100 bytes, yet never stuck
    spool.ack(spool.read(10, 100))
    assert spool.read(10, 100).lines == lines(*"bcdefghi")  # eight 12-byte lines: 96 of the 100 bytes


def reference_line_block(data: bytes, max_lines: int, limit: int) -> tuple[int, int]:
    """line_block as it reads: the whole lines within ``limit`` (at least one), then at most ``max_lines``."""
    end = data.rfind(b"\n", 0, limit) + 1 or data.find(b"\n") + 1
    taken = data[:end].split(b"\n")[:-1][:max_lines]
    return sum(len(line) + 1 for line in taken), len(taken)


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=60),
       st.binary(max_size=30), st.integers(1, 70), st.integers(0, 3000))
def test_line_block_finds_the_lines_a_plain_split_finds(lines_, tail, max_lines, limit):
    data = b"".join(line + b"\n" for line in lines_) + tail.replace(b"\n", b"")
    assert line_block(data, max_lines, limit) == reference_line_block(data, max_lines, limit)


@given(st.lists(st.integers(1, 50), max_size=30), st.integers(0, 800))
def test_fitting_keeps_the_lines_that_fit_in_order(tmp_path_factory, sizes, room):
    spool = Spool(tmp_path_factory.mktemp("fit"), max_bytes=room)
    given_lines = [b"x" * (size - 1) + b"\n" for size in sizes]
    kept, used = 0, 0
    for line in given_lines:
        if used + len(line) > room:
            break
        used, kept = used + len(line), kept + 1
    assert spool.fitting(given_lines) == kept
    spool.close()

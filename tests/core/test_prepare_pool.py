"""Big appends prepared in worker processes seal what an in-process prepare seals, in order; refusals,
erasures and failed workers leave nothing half-remembered (every value sealed still reads back)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal

import pytest

import trailseal
from tests.api.test_ingest_api import looked_up
from tests.conftest import make_event, wait_for
from trailseal.event import EventError
from trailseal.frames import PIPE_BYTES
from trailseal.prepare_pool import FIRST_PART, MIN_POOL_BATCH, STREAM_PART, part_bounds

N = 2 * MIN_POOL_BATCH
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def configure(data_dir, workers: int, privacy: bool = True) -> None:
    config = data_dir / "trailseal.toml"
    text = re.sub(r"prepare_workers = -?\d+", f"prepare_workers = {workers}", config.read_text())
    if not privacy:
        text = re.sub(r"(\[privacy\][^\[]*?)enabled = true", r"\1enabled = false", text)
    config.write_text(text)


def started(log) -> None:
    """Start the workers and wait for them (the first big batch would otherwise be prepared here)."""
    assert log.pool.start(timeout=30), "the prepare workers did not start"


def revealed(log, count: int, start: int = 0) -> list[dict]:
    rows = [("default", i, log.entry(i)) for i in range(start, start + count)]
    return [r["event"] for r in log.read_events(rows)]


@pytest.mark.parametrize("privacy", [False, True])
def test_pool_seals_the_batch_in_order_as_sent(tmp_path, privacy):
    pooled_dir, local_dir = (trailseal.init(tmp_path / name, origin="test.trailseal") for name in ("pool", "local"))
    configure(pooled_dir, 2, privacy)
    configure(local_dir, 0, privacy)
    key = os.urandom(32).hex() + "\n"  # the same privacy key: the same pseudonyms
    for directory in (pooled_dir, local_dir):
        (directory / "privacy.key").write_text(key)
    events = [make_event(i) for i in range(N)]
    clock = lambda: "2026-11-28T00:00:00.000000Z"  # noqa: E731 - the same arrival time on both sides
    with trailseal.open(pooled_dir, clock=clock) as pooled, trailseal.open(local_dir, clock=clock) as local:
        started(pooled)
        ours = pooled.append(events)
        theirs = local.append(events)
        assert [r.id for r in ours] == [e["id"] for e in events]
        assert [r.index for r in ours] == [r.index for r in theirs]
        a, b = revealed(pooled, N), revealed(local, N)
        assert a == b, "the pool sealed other events than an in-process prepare"
        if not privacy:  # nothing random in the sealed bytes: byte for byte the same
            assert [pooled.entry(r.index) for r in ours] == [local.entry(r.index) for r in theirs]
        else:
            assert all(e["actor"]["id"].startswith("pd:") for e in map(json.loads, map(pooled.entry, range(N))))
        assert all(r.ok for r in pooled.verify())


@pytest.mark.parametrize("workers", [0, 2])
def test_ids_made_on_receipt_are_not_looked_up_and_sent_ones_are(data_dir, workers, monkeypatch):
    configure(data_dir, workers)
    events = [make_event(i) for i in range(N)]
    for event in events[::2]:
        del event["id"]
    with trailseal.open(data_dir) as log:
        if workers:
            started(log)
        asked = looked_up(log.store, monkeypatch)
        receipts = log.append(events)
        sent = [e["id"] for e in events if "id" in e]
        assert sorted(asked) == sorted(sent), "an id trailseal made was looked up, or a sent one was not"
        assert len({r.id for r in receipts} - set(sent)) == N // 2
        again = log.append([e for e in events if "id" in e])
        assert [r.index for r in again] == [r.index for r in receipts[1::2]]
        assert log.store.tree_size("default") == N


def test_events_marshal_cannot_carry_go_by_pickle(data_dir):
    """Event objects (not plain dicts) reach the workers too, and seal as their dicts would."""
    from trailseal.event import to_event

    configure(data_dir, 2)
    events = [make_event(i) for i in range(N)]
    with trailseal.open(data_dir) as log:
        started(log)
        receipts = log.append([to_event(e) for e in events])
        assert log.pool.ready, "the pool fell back instead of pickling"
        shown = revealed(log, N, receipts[0].index)
        assert [(e["id"], e["actor"]["id"], e["attributes"]) for e in shown] == \
            [(e["id"], e["actor"]["id"], e["attributes"]) for e in events]


def test_an_event_no_worker_can_be_sent_in_a_later_part_is_refused_as_in_process(data_dir):
    """Parts after the first are framed while the workers prepare the first: an event that cannot be
    framed there gives the batch back to the caller's process, which refuses it by position; nothing of
    the batch is sealed, no value of it is remembered as in the vault, and the pool goes on."""
    configure(data_dir, 2)
    count = FIRST_PART + 2 * STREAM_PART
    with trailseal.open(data_dir) as log:
        started(log)
        size = log.store.tree_size("default")
        events = [make_event(i, actor={"id": f"late{i}", "type": "user", "ip": "192.0.2.7"}) for i in range(count)]
        events[count - 5]["attributes"] = {"callback": lambda: None}  # neither marshal nor pickle carries it
        with pytest.raises(EventError) as refused:
            log.append(events)
        assert str(refused.value).startswith(f"[{count - 5}].attributes.callback")
        assert log.store.tree_size("default") == size and log.pool.ready
        events[count - 5]["attributes"] = {"callback": "none"}
        receipts = log.append(events)
        assert log.pool.ready
        assert [e["actor"]["id"] for e in revealed(log, count, receipts[0].index)] == [f"late{i}" for i in range(count)]


def test_part_bounds_cover_the_batch_once_with_a_short_first_part():
    for count in (1, FIRST_PART - 1, FIRST_PART, FIRST_PART + 1, 1000, 4321):
        bounds = part_bounds(count)
        assert bounds[0] == (0, min(FIRST_PART, count))
        assert [end for _, end in bounds[:-1]] == [start for start, _ in bounds[1:]] and bounds[-1][1] == count
        assert all(0 < end - start <= STREAM_PART for start, end in bounds[1:])


def test_request_frames_are_exact_for_builtins_and_pickle_the_rest():
    from datetime import UTC, datetime

    from trailseal.prepare_pool import read_request, request_frame

    plain = ("prepare", "t", [0], [{"a": (1, 2), "b": [True, None, 1.5], "c": {"x"}}])
    assert request_frame(plain)[:1] == b"M" and read_request(request_frame(plain)) == plain
    odd = ("prepare", "t", [0], [{"time": datetime(2026, 11, 28, tzinfo=UTC)}])
    assert request_frame(odd)[:1] == b"P" and read_request(request_frame(odd)) == odd


def test_one_vault_row_per_subject_value_across_workers(data_dir):
    configure(data_dir, 2)
    events = [make_event(i, actor={"id": f"vip{i % 7}", "type": "user", "ip": "10.1.2.3"}) for i in range(N)]
    with trailseal.open(data_dir) as log:
        started(log)
        log.append(events)
        rows = log.store._conn().execute(
            "SELECT subject, value, count(*) FROM vault WHERE subject LIKE 'vip_' AND field='actor.ip'"
            " GROUP BY subject, value").fetchall()
        assert sorted(r[0] for r in rows) == [f"vip{i}" for i in range(7)]
        assert all(count == 1 for _, _, count in rows), rows


def test_refused_event_names_its_position_and_nothing_is_sealed(data_dir):
    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        started(log)
        size = log.store.tree_size("default")
        events = [make_event(i, actor={"id": f"fresh{i}", "type": "user"}) for i in range(N)]
        events[N - 3]["outcome"] = "maybe"
        with pytest.raises(EventError) as refused:
            log.append(events)
        assert str(refused.value).startswith(f"[{N - 3}].outcome")
        assert log.store.tree_size("default") == size
        events[N - 3]["outcome"] = "success"
        receipts = log.append(events)  # the same actors again: their values must get vault rows now
        shown = revealed(log, N, receipts[0].index)
        assert [e["actor"]["id"] for e in shown] == [f"fresh{i}" for i in range(N)]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_refused_batch_does_not_leave_unwritten_vault_rows_remembered(data_dir, workers):
    """Values of a refused batch's valid events never reached the vault: the next batch must write them."""
    configure(data_dir, workers)
    with trailseal.open(data_dir) as log:
        if workers:
            started(log)
        count = N if workers else 2
        good = [make_event(i, actor={"id": f"new{i}", "type": "user", "ip": "198.51.100.9"}) for i in range(count)]
        with pytest.raises(EventError):
            log.append([*good, make_event(count, outcome="maybe")])
        receipts = log.append(good)
        shown = revealed(log, count, receipts[0].index)
        assert [(e["actor"]["id"], e["actor"]["ip"]) for e in shown] == [(f"new{i}", "198.51.100.9")
                                                                          for i in range(count)]


def test_erasure_reaches_the_workers(data_dir):
    configure(data_dir, 2)
    subject = {"id": "jane", "type": "user", "ip": "203.0.113.5"}
    with trailseal.open(data_dir) as log:
        started(log)
        first = log.append([make_event(i, actor=subject) for i in range(N)])
        assert log.erase("jane") >= 2
        again = log.append([make_event(N + i, actor=subject) for i in range(N)])
        old, new = revealed(log, 1, first[0].index)[0], revealed(log, 1, again[0].index)[0]
        assert old["actor"]["id"].startswith("pd:"), "an erased value must stay erased"
        assert new["actor"] == {**new["actor"], "id": "jane", "ip": "203.0.113.5"}, \
            "a worker reused a commitment whose vault row was erased"


def test_a_dead_worker_turns_the_pool_off_and_loses_nothing(data_dir):
    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        started(log)
        victim = log.pool._procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        events = [make_event(i) for i in range(N)]
        receipts = log.append(events)
        assert not log.pool.ready
        assert [r.id for r in receipts] == [e["id"] for e in events]
        assert [e["id"] for e in revealed(log, N, receipts[0].index)] == [e["id"] for e in events]


def test_workers_pipes_hold_a_whole_part_so_workers_run_ahead_of_the_writer(data_dir):
    """A part's answer (~125 KB) outgrows a default 64 KiB pipe: a worker would wait for the writer to
    read each one before preparing the next part."""
    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        started(log)
        for proc in log.pool._procs:
            for pipe in (proc.stdin, proc.stdout):
                assert fcntl.fcntl(pipe.fileno(), F_GETPIPE_SZ) == PIPE_BYTES


def test_the_first_big_batch_starts_the_workers(data_dir):
    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        log.append([make_event(i) for i in range(MIN_POOL_BATCH - 1)])
        assert log.pool._state == "idle", "a small append must not start processes"
        log.append([make_event(MIN_POOL_BATCH + i) for i in range(MIN_POOL_BATCH)])  # prepared here meanwhile
        assert wait_for(lambda: log.pool.ready, timeout=30)
        assert len(log.pool._procs) == 2


def test_values_held_before_the_workers_started_keep_their_one_vault_row(data_dir):
    configure(data_dir, 2)
    events = [make_event(i, actor={"id": f"vip{i % 7}", "type": "user", "ip": "10.1.2.3"}) for i in range(2 * N)]
    with trailseal.open(data_dir) as log:
        log.append(events[:N])  # starts the workers, and is prepared here meanwhile
        assert wait_for(lambda: log.pool.ready, timeout=30)
        log.append(events[N:])  # prepared by the workers, which must know what this process sealed
        rows = log.store._conn().execute(
            "SELECT subject, field, count(*) FROM vault WHERE subject LIKE 'vip_' GROUP BY subject, field").fetchall()
        assert len(rows) == 14 and all(count == 1 for *_, count in rows), rows
        assert revealed(log, 2 * N)[-1]["actor"]["ip"] == "10.1.2.3"


def test_no_workers_when_configured_off(data_dir):
    configure(data_dir, 0)
    with trailseal.open(data_dir) as log:
        assert not log.pool.start(timeout=1)
        log.append([make_event(i) for i in range(N)])
        assert log.pool._procs == []


def test_an_unexpected_failure_in_a_worker_is_answered_and_keeps_the_pool(data_dir):
    """A worker that fails on a request (here: one it cannot read as a share) says so and lives on; the
    batch is then prepared in the caller's process, where the caller sees the failure itself."""
    from trailseal.prepare_pool import request_frame

    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        started(log)
        broken = request_frame(("prepare", "2026-11-28T00:00:00.000000Z", [0, 1], [make_event(0)]))
        empty = request_frame(("prepare", "2026-11-28T00:00:00.000000Z", [], []))
        answers = log.pool._exchange([broken, empty])
        assert answers is not None and "ValueError" in answers[0][1]
        assert log.pool._assemble(answers) is None
        assert log.pool.ready
        assert len(log.append([make_event(N + i) for i in range(N)])) == N


def test_workers_that_see_another_policy_are_not_used(data_dir):
    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        config = data_dir / "trailseal.toml"  # changed on disk after this process loaded it
        config.write_text(re.sub(r"(\[privacy\][^\[]*?)enabled = true", r"\1enabled = false", config.read_text()))
        log.append([make_event(i) for i in range(MIN_POOL_BATCH)])
        assert wait_for(lambda: log.pool._state == "off", timeout=30)
        receipts = log.append([make_event(MIN_POOL_BATCH + i) for i in range(N)])
        sealed = json.loads(log.entry(receipts[0].index))
        assert sealed["actor"]["id"].startswith("pd:"), "prepared under the policy this process loaded"


def test_a_streamed_batch_seals_duplicates_once_and_every_log_checkpointed(data_dir):
    """Parts of one append share one transaction: an id repeated three parts later gets the first one's
    receipt, and each log of the batch gets its checkpoint."""
    configure(data_dir, 2)
    events = [make_event(i, log="default" if i % 3 else "audit") for i in range(3 * 250)]
    events[700] = dict(events[5])  # the same id (and log) again, in another part
    with trailseal.open(data_dir) as log:
        started(log)
        receipts = log.append(events)
        assert receipts[700] == receipts[5]
        assert len({(r.log, r.index) for r in receipts}) == len(events) - 1
        sizes = {info.name: info.size for info in log.store.logs()}
        assert sizes["default"] == sum(1 for e in events if e.get("log") == "default") - 1 + 0
        assert sizes["audit"] == sum(1 for e in events if e.get("log") == "audit")
        assert all(r.ok for r in log.verify())


def test_a_store_failure_mid_stream_rolls_back_and_the_pool_goes_on(data_dir, monkeypatch):
    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        started(log)
        size = log.store.tree_size("default")
        store_type = type(log.store)
        original, calls = store_type._write, []

        def failing(self, conn, commit):
            calls.append(commit.log)
            if len(calls) == 2:
                raise OSError("disk full")
            return original(self, conn, commit)

        monkeypatch.setattr(store_type, "_write", failing)
        with pytest.raises(OSError, match="disk full"):
            log.append([make_event(i) for i in range(3 * 250)])
        monkeypatch.setattr(store_type, "_write", original)
        assert log.store.tree_size("default") == size
        assert log.pool.ready
        receipts = log.append([make_event(1000 + i) for i in range(N)])
        assert receipts[0].index == size and all(r.ok for r in log.verify())


def test_concurrent_appends_share_the_pool_or_prepare_themselves(data_dir):
    import threading

    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        started(log)
        results: dict[int, list] = {}

        def append(k: int) -> None:
            results[k] = log.append([make_event(k * 10_000 + i) for i in range(N)])

        threads = [threading.Thread(target=append, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        indexes = sorted(r.index for receipts in results.values() for r in receipts)
        assert indexes == list(range(4 * N))
        assert all(r.ok for r in log.verify())


def test_a_failed_answer_while_the_feeder_is_blocked_does_not_hang(data_dir, monkeypatch):
    """A worker's answer fails while the feeding thread is blocked writing to another worker (stopped here,
    as py-spy once stopped them): the pool goes off and the batch is prepared here. Closing the blocked
    worker's input used to wait forever for the feeding thread's lock on it."""
    import threading
    import time

    from trailseal import prepare_pool

    configure(data_dir, 2)
    with trailseal.open(data_dir) as log:
        started(log)
        stopped = log.pool._procs[1]
        os.kill(stopped.pid, signal.SIGSTOP)  # it reads nothing more: its input fills, the feeder blocks on it
        def garbled(stream) -> bytes:
            time.sleep(1.0)  # meanwhile the feeder reaches the stopped worker and blocks writing to it
            return b"\x00not marshal"

        monkeypatch.setattr(prepare_pool, "read_frame", garbled)
        events = [make_event(i, attributes={"pad": "x" * 2_000}) for i in range(20 * 250)]
        result: list = []
        appending = threading.Thread(target=lambda: result.append(log.append(events)), daemon=True)
        appending.start()
        appending.join(30)
        hung = appending.is_alive()
        if hung:
            os.kill(stopped.pid, signal.SIGKILL)  # let the test process end
        assert not hung, "append hung after a failed answer"
        assert stopped.poll() is not None and not log.pool.ready
        assert [r.id for r in result[0]] == [e["id"] for e in events]

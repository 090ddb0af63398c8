"""A value may only be sealed under an earlier event's commitment without a vault row of its own once that
row is known to be written. Until the writer has committed it, a later event that reuses the commitment
carries a copy of the row (the store keeps one row per commitment), so it never depends on a row that may
not be written: a re-sent event (its rows are not written again), a batch refused after another batch
reused its values, or a commit that failed."""

from __future__ import annotations

import pytest

import trailseal
from tests.conftest import make_event
from trailseal.event import decode_sealed, normalize, to_event
from trailseal.privacy import Keys, Policy
from trailseal.protection import Protection
from trailseal.store.base import Filters

RECEIVED = "2026-11-27T10:00:00.000000Z"
ACTOR = {"id": "dora", "type": "user", "ip": "10.9.9.9"}


def sealed(p: Protection, i: int, **over):
    return p.seal_form(normalize(to_event(make_event(i, **over)), RECEIVED))


def revealed_actor(log, event_id: str) -> tuple[str, str]:
    """The actor's id and address of a sealed event, as the vault reveals them (commitments if it cannot)."""
    for row in log.store.select(["default"], Filters(), None, 10_000):
        event = decode_sealed(row[3])
        if event.id == event_id:
            rows = log.store.vault_get([event.actor.id, event.actor.ip])
            return (rows[event.actor.id].value if event.actor.id in rows else event.actor.id,
                    rows[event.actor.ip].value if event.actor.ip in rows else event.actor.ip)
    raise AssertionError(f"{event_id} is not sealed")


def test_an_unconfirmed_value_is_reused_with_a_copy_of_its_row():
    p = Protection(Policy(), Keys(b"\x06" * 32))
    first = sealed(p, 1, actor=ACTOR)
    second = sealed(p, 2, actor=ACTOR)
    assert second.event.actor.id == first.event.actor.id, "one commitment per value"
    assert sorted(second.vault, key=lambda r: r.field) == sorted(first.vault, key=lambda r: r.field)
    p.confirm(first.vault)  # the writer committed the first event
    third = sealed(p, 3, actor=ACTOR)
    assert third.event.actor.id == first.event.actor.id and third.vault == ()


def test_confirming_another_commitment_leaves_the_value_unconfirmed():
    p = Protection(Policy(), Keys(b"\x06" * 32))
    first = sealed(p, 1, actor=ACTOR)
    p.unhold(first.vault)
    second = sealed(p, 2, actor=ACTOR)  # a fresh commitment
    p.confirm(first.vault)  # a late word about the old one changes nothing
    third = sealed(p, 3, actor=ACTOR)
    assert third.event.actor.id == second.event.actor.id
    assert sorted(r.commitment for r in third.vault) == sorted(r.commitment for r in second.vault)


def test_held_values_handed_to_another_process_are_only_written_ones():
    p = Protection(Policy(), Keys(b"\x06" * 32))
    first = sealed(p, 1, actor=ACTOR)
    assert p.held() == []
    p.confirm(first.vault)
    assert sorted(value for _, _, value, _ in p.held()) == ["10.9.9.9", "dora"]


@pytest.mark.parametrize("size", [1, 300], ids=["in-process", "prepare-workers"])
def test_a_resent_event_does_not_leave_its_unwritten_rows_held(data_dir, size):
    """A client re-sends a batch the server had sealed (its answer was lost); the server restarted meanwhile,
    so the re-sent events got fresh commitments whose rows the writer skips with the duplicates. The next
    event of that actor must still be revealed and found."""
    batch = [make_event(i, actor=ACTOR) for i in range(size)]
    with trailseal.open(data_dir) as log:
        log.append(batch)
    with trailseal.open(data_dir) as log:
        if size > 1:
            assert log.pool.start(), "the prepare workers did not start"
        log.append(batch)  # all duplicates: their original receipts, nothing written
        log.append([make_event(size + i, actor=ACTOR) for i in range(size)])
        assert revealed_actor(log, f"evt-{2 * size - 1:08d}") == ("dora", "10.9.9.9")
        assert revealed_actor(log, f"evt-{size:08d}") == ("dora", "10.9.9.9")


def test_a_batch_refused_after_another_reused_its_values(data_dir):
    """Batch A is protected, batch B reuses A's new values, then A is refused (an overloaded writer): B is
    sealed and its values must still be revealed."""
    with trailseal.open(data_dir) as log:
        a = log.prepare([make_event(1, actor=ACTOR)])
        b = log.prepare([make_event(2, actor=ACTOR)])
        log.unhold_vault([row for item in a for row in item.vault])  # A refused: 503
        log.sealer.seal(b)
        assert revealed_actor(log, "evt-00000002") == ("dora", "10.9.9.9")


def test_the_prepare_workers_hear_which_rows_were_written(data_dir):
    """Once a batch through the workers is committed, the next one reuses its values without copies."""
    actors = [{"id": f"user{i}", "type": "user", "ip": f"10.0.0.{i}"} for i in range(3)]
    with trailseal.open(data_dir) as log:
        assert log.pool.start(), "the prepare workers did not start"
        log.append([make_event(i, actor=actors[i % 3]) for i in range(300)])
        again = log.pool.try_prepare([make_event(300 + i, actor=actors[i % 3]) for i in range(300)],
                                     RECEIVED)
        assert again is not None, "the workers did not take the batch"
        assert [item.vault for item in again] == [()] * 300


def test_erasure_also_removes_values_of_a_batch_in_flight(data_dir):
    """A batch of the subject's events queued for the writer when the erasure runs is committed after it:
    its vault rows must be erased too, and the subject's next event gets fresh commitments."""
    import threading

    with trailseal.open(data_dir) as log:
        log.append([make_event(1, actor=ACTOR)])
        sealer, gate = log.sealer, threading.Event()
        process = sealer._process

        def held_back(batch):
            gate.wait(10)
            process(batch)

        sealer._process = held_back
        moved = {**ACTOR, "ip": "10.9.9.10"}  # a new address: a new vault row in the batch in flight
        in_flight = sealer.submit(log.prepare([make_event(2, actor=moved)]))
        erasing = threading.Thread(target=lambda: log.erase("dora"))
        erasing.start()
        threading.Timer(0.3, gate.set).start()  # the writer goes on while the erasure waits for its event
        erasing.join(20)
        assert in_flight.result(10)[0].index == 1
        left = log.store._conn().execute("SELECT count(*) FROM vault WHERE subject = 'dora'").fetchone()[0]
        assert left == 0, "values of the batch in flight outlived the erasure"
        sealer._process = process
        after = log.prepare([make_event(3, actor=ACTOR)])[0]
        assert sorted(row.field for row in after.vault) == ["actor.id", "actor.ip"], "fresh commitments"


def test_erasure_also_removes_values_of_events_received_before_it_and_sealed_after(data_dir):
    """A request received (and protected) before the erasure reaches the writer only after it: the values
    it brings are the subject's from before the erasure, and are not written. Its events are sealed."""
    with trailseal.open(data_dir) as log:
        log.append([make_event(1, actor=ACTOR)])
        late = log.prepare([make_event(2, actor={**ACTOR, "ip": "10.9.9.11"})])
        log.erase("dora")
        assert log.sealer.seal(late)[0].index == 1
        left = log.store._conn().execute("SELECT count(*) FROM vault WHERE subject = 'dora'").fetchone()[0]
        assert left == 0, "values of an event received before the erasure outlived it"
        after = log.prepare([make_event(3, actor={**ACTOR, "ip": "10.9.9.11"})])
        log.sealer.seal(after)
        assert revealed_actor(log, "evt-00000003") == ("dora", "10.9.9.11"), "values sent after it are kept"


def test_the_workers_hear_only_of_rows_they_made(data_dir):
    """A server seals most small requests in its own process: their rows are none of the workers' business,
    and must not pile up waiting for the workers' next request."""
    with trailseal.open(data_dir) as log:
        assert log.pool.start(), "the prepare workers did not start"
        log.append([make_event(i, actor={"id": f"u{i}", "type": "user"}) for i in range(10)])  # here
        assert log.pool._written == []
        log.append([make_event(100 + i, actor={"id": f"w{i}", "type": "user"}) for i in range(300)])
        assert sorted(subject for _, subject, _, _ in log.pool._written) == sorted(f"w{i}" for i in range(300))


def test_a_failing_written_observer_does_not_hold_up_the_commit(data_dir):
    def broken(rows):
        raise RuntimeError("observer bug")

    with trailseal.open(data_dir) as log:
        log.sealer.on_written.insert(0, broken)
        receipts = log.sealer.seal(log.prepare([make_event(1, actor=ACTOR)]), timeout=10)
        assert receipts[0].index == 0
        assert log.prepare([make_event(2, actor=ACTOR)])[0].vault == (), "the other observers still ran"


def test_the_writer_takes_the_latest_erasure_of_a_subject():
    """An erasure in one log, then one in every log: rows of events received between them are erased."""
    from trailseal.pipeline import Sealer
    from trailseal.privacy.vault import VaultRow

    sealer = Sealer.__new__(Sealer)
    sealer.erasures = {}
    sealer.erased("dora", "default", "2026-11-27T10:00:00.000000Z")
    sealer.erased("dora", None, "2026-11-27T11:00:00.000000Z")
    row = VaultRow("dora", "default", "pd:" + "0" * 64, bytes(32), "10.9.9.9", "actor.ip", "0" * 64)
    assert sealer._erased(row, "2026-11-27T10:30:00.000000Z")
    assert not sealer._erased(row, "2026-11-27T11:30:00.000000Z")
    assert not sealer._erased(VaultRow("erin", "default", row.commitment, bytes(32), "x", "actor.ip", "0"),
                              "2026-11-27T10:30:00.000000Z")

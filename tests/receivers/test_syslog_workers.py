"""Syslog frames read and protected by the prepare workers seal what this process would have sealed;
a bad frame is refused there as here, and a record is sealed whole or not at all."""

from __future__ import annotations

import os

import trailseal
from tests.core.test_prepare_pool import configure, started
from tests.receivers.conftest import notes, sealed, wait_for
from tests.receivers.test_syslog import octets, send
from trailseal.prepare_pool import MIN_POOL_BATCH
from trailseal.receivers import records as records_module
from trailseal.receivers.records import seal_records
from trailseal.receivers.syslog import SyslogThread

N = 2 * MIN_POOL_BATCH
RECEIVED = "2026-11-29T00:00:00.000000Z"
OPTIONS = {"ctx": {}, "log": "default"}


def frame(n: int) -> bytes:
    """A frame with personal data (an address, an email) that privacy protection must handle."""
    if n % 3:
        return (f'<86>1 2026-03-01T10:00:{n % 60:02d}Z web-{n % 4} sshd {n} AUTH [origin ip="10.0.{n % 7}.9"]'
                f" session opened for user u{n % 11} mail u{n % 11}@example.org").encode()
    return f"<38>Oct 11 22:14:{n % 60:02d} host-{n % 5} sshd[{n}]: Failed password for u{n % 11} from " \
           f"192.0.2.{n % 250} port {4000 + n} ssh2".encode()


BAD = {5: b"\xff\xfe\x00binary\x80junk", 77: b"<999>1 not a priority", N - 1: b""}


def records() -> list[tuple[bytes, str, str]]:
    return [(BAD.get(n, frame(n)), f"198.51.100.{n % 3}", "tcp") for n in range(N)]


def without_ids(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in event.items() if k != "id"} for event in events]


def test_frames_read_by_the_workers_seal_what_this_process_would(tmp_path):
    pooled_dir, local_dir = (trailseal.init(tmp_path / name, origin="test.trailseal") for name in ("pool", "local"))
    configure(pooled_dir, 2)
    configure(local_dir, 0)
    key = os.urandom(32).hex() + "\n"  # the same privacy key: the same pseudonyms and search tokens
    for directory in (pooled_dir, local_dir):
        (directory / "privacy.key").write_text(key)
    with trailseal.open(pooled_dir) as pooled, trailseal.open(local_dir) as local:
        started(pooled)
        answer = pooled.pool.try_prepare_records("syslog", OPTIONS, records(), RECEIVED)
        assert answer is not None, "the workers did not take the records"
        ours, our_refusals = answer
        theirs, their_refusals = seal_records(local.protection, RECEIVED, "syslog", OPTIONS, range(N), records())
        assert our_refusals == their_refusals and [p for p, _ in our_refusals] == sorted(BAD)
        assert len(ours) == len(theirs) == N - len(BAD)
        pooled.sealer.seal(ours)
        local.sealer.seal([item for _, item in theirs])
        a, b = sealed(pooled), sealed(local)
        assert without_ids(a) == without_ids(b), "the workers sealed other events than this process"
        raw = (pooled_dir / "trailseal.db").read_bytes()
        assert b"u3@example.org" not in raw, "an email the default policy masks reached the database"


def test_a_busy_listener_seals_through_the_workers_and_refuses_bad_frames(data_dir):
    with trailseal.open(data_dir) as trail:
        started(trail)
        pooled = []
        take = trail.pool.try_prepare_records

        def spy(*args, **kwargs):
            answer = take(*args, **kwargs)
            pooled.append(answer is not None)
            return answer

        trail.pool.try_prepare_records = spy
        frames = [BAD.get(n, frame(n)) for n in range(N)]
        with SyslogThread(trail, tcp=("127.0.0.1", 0), linger=0.2) as server:
            send(server.addresses["tcp"], octets(*frames))
            wait_for(lambda: server.stats.records >= N)
            server.drain()
            assert server.stats.rejected == len(BAD) and server.stats.failed == 0
        assert any(pooled), "no batch went to the prepare workers"
        events = sealed(trail)
        good = [n for n in range(N) if n not in BAD]
        assert [e["attributes"]["process.pid"] for e in events] == good
        assert sum(note["attributes"]["rejected"] for note in notes(trail)) == len(BAD)


def test_a_record_is_sealed_whole_or_refused_and_its_values_are_not_held(data_dir, monkeypatch):
    def two_events(record, options):
        good = {"category": "authentication", "action": "user.login", "outcome": "success",
                "actor": {"id": "alice", "ip": "203.0.113.7"}, "source": {"component": "x", "kind": "app"},
                "time": "2026-03-01T10:00:00Z", "attributes": {}}
        return [good, {**good, "outcome": "not an outcome"}] if record == "bad" else [good]

    monkeypatch.setitem(records_module.READERS, "two", two_events)
    with trailseal.open(data_dir) as trail:
        prepared, refused = seal_records(trail.protection, RECEIVED, "two", {}, [0, 1], ["bad", "ok"])
        assert [p for p, _ in prepared] == [1] and [p for p, _ in refused] == [0]
        assert "outcome" in refused[0][1]
        (_, item), = prepared
        assert len(item.vault) == 2, "the record sealed after the refused one reuses no unwritten vault row"

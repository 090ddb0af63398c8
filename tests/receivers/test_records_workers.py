"""Receivers' records (syslog frames, the event dicts of the HTTP receivers) read and protected by the
prepare workers seal what this process would have sealed; a bad record, or one in a log the token may
not write to, is refused there as here; and a record is sealed whole or not at all."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trailseal
from tests.conftest import make_event
from tests.core.test_prepare_pool import configure, started
from tests.receivers.conftest import bearer, notes, sealed, wait_for
from tests.receivers.test_otlp import json_records
from tests.receivers.test_syslog import octets, send
from trailseal.prepare_pool import MIN_POOL_BATCH
from trailseal.receivers import records as records_module
from trailseal.receivers.records import prepare_records, seal_records
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
        assert our_refusals == their_refusals and [p for p, *_ in our_refusals] == sorted(BAD)
        assert [p for p, _ in ours] == [p for p, _ in theirs] == [n for n in range(N) if n not in BAD]
        assert all(item.assigned for _, item in ours + theirs), "a syslog event's id was made here: no lookup"
        pooled.sealer.seal([item for _, item in ours])
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
        assert [p for p, _ in prepared] == [1] and [p for p, *_ in refused] == [0]
        assert refused[0][2] == "outcome" and "not an outcome" in refused[0][1]
        (_, item), = prepared
        assert len(item.vault) == 2, "the record sealed after the refused one reuses no unwritten vault row"


def test_parsed_events_in_a_log_the_token_may_not_write_to_are_refused_by_the_workers(tmp_path):
    """The log check comes before protection there too: a refused event's values are not remembered as
    in the vault, so the same actor's next event (in an allowed log) still gets its vault rows."""
    pooled_dir, local_dir = (trailseal.init(tmp_path / name, origin="test.trailseal") for name in ("pool", "local"))
    configure(pooled_dir, 2)
    configure(local_dir, 0)
    events = [make_event(i, log="default" if i % 10 == 3 else "other") for i in range(N)]
    options = {"log": None, "logs": ["other"]}
    with trailseal.open(pooled_dir) as pooled, trailseal.open(local_dir) as local:
        started(pooled)
        ours, our_refusals = prepare_records(pooled, "event", options, [dict(e) for e in events], RECEIVED)
        theirs, their_refusals = prepare_records(local, "event", options, [dict(e) for e in events], RECEIVED)
        assert our_refusals == their_refusals == [
            (n, "this token may not write to log 'default'", "log") for n in range(N) if n % 10 == 3]
        assert [p for p, _ in ours] == [p for p, _ in theirs] == [n for n in range(N) if n % 10 != 3]
        refused_actor = events[3]["actor"]
        again = make_event(10_000, log="default", actor=refused_actor)  # from a token that may write there
        (_, item), = prepare_records(local, "event", {"log": None, "logs": None}, [again], RECEIVED)[0]
        assert refused_actor["ip"] in {row.value for row in item.vault}  # the address is event 3's alone


def test_a_big_otlp_request_is_read_by_the_workers_with_partial_success(rapi):
    client, tokens, app = rapi
    trail = app.state.service.trail
    started(trail)
    calls = []
    take = trail.pool.try_prepare_records
    trail.pool.try_prepare_records = lambda *args: calls.append(take(*args)) or calls[-1]
    good = {"timeUnixNano": "1772359200000000000", "body": {"stringValue": "fine"}}
    grows = {"timeUnixNano": "1772359200000000000", "body": {"stringValue": "mail a@b.co " * 5400}}
    records = [grows if n in (7, N - 2) else good | {"body": {"stringValue": f"record {n}"}} for n in range(N)]
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    response = client.post("/v1/logs", json=doc, headers=bearer(tokens["ingest"]))
    assert response.status_code == 200, response.text
    assert response.json()["partialSuccess"]["rejectedLogRecords"] == 2
    assert "record 7:" in response.json()["partialSuccess"]["errorMessage"]
    assert calls and calls[0] is not None, "the request's records did not go to the prepare workers"
    kept = [f"record {n}" for n in range(N) if n not in (7, N - 2)]
    assert [e["attributes"]["message"] for e in sealed(trail)] == kept
    assert notes(trail)[-1]["attributes"]["rejected"] == 2


def test_a_receivers_batch_waits_for_workers_another_batch_holds(data_dir):
    """Preparing here would take the CPU the sealer needs: a receiver's batch waits for the workers a
    while (and only then prepares here); a caller that does not wait is turned away at once."""
    import threading

    with trailseal.open(data_dir) as trail:
        started(trail)
        trail.pool._lock.acquire()  # another batch holds the workers ...
        threading.Timer(0.2, trail.pool._lock.release).start()  # ... for 0.2 s more
        assert trail.pool.try_prepare_records("syslog", OPTIONS, records(), RECEIVED) is None
        answer = trail.pool.try_prepare_records("syslog", OPTIONS, records(), RECEIVED, wait=5)
        assert answer is not None and len(answer[0]) == N - len(BAD)
        trail.pool._lock.acquire()
        threading.Timer(0.5, trail.pool._lock.release).start()
        assert trail.pool.try_prepare_records("syslog", OPTIONS, records(), RECEIVED, wait=0.05) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(json_records, min_size=1, max_size=6))
def test_hostile_records_in_a_big_otlp_request_never_5xx_and_every_good_one_is_sealed(rapi, junk):
    """Random OTLP/JSON records among good ones, enough for the prepare workers: a 200 with each bad
    record counted, and every good record sealed."""
    client, tokens, app = rapi
    trail = app.state.service.trail
    started(trail)
    before = trail.store.tree_size("default")
    good = [{"timeUnixNano": "1772359200000000000", "body": {"stringValue": f"good {n}"}} for n in range(N)]
    records = good[: N // 2] + junk + good[N // 2:]
    body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}, allow_nan=True).encode()
    response = client.post("/v1/logs", content=body,
                           headers={**bearer(tokens["ingest"]), "content-type": "application/json"})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        rejected = response.json().get("partialSuccess", {}).get("rejectedLogRecords", 0)
        assert rejected <= len(junk)
        assert trail.store.tree_size("default") - before == len(records) - rejected


def test_values_of_a_batch_the_sealer_refused_are_forgotten_by_the_workers_too(rapi):
    """A 503 (sealer overloaded) for a request the workers prepared: their vault rows were never written,
    so the workers must not seal the same values under those commitments again (they could never be read
    back or erased)."""
    client, tokens, app = rapi
    trail = app.state.service.trail
    started(trail)
    attributes = [{"key": "user.id", "value": {"stringValue": "alice"}},
                  {"key": "client.address", "value": {"stringValue": "203.0.113.9"}}]
    records = [{"timeUnixNano": "1772359200000000000", "body": {"stringValue": f"record {n}"},
                "attributes": attributes} for n in range(N)]
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    trail.sealer.max_queue_events = 0
    assert client.post("/v1/logs", json=doc, headers=bearer(tokens["ingest"])).status_code == 503
    trail.sealer.max_queue_events = 200_000
    assert client.post("/v1/logs", json=doc, headers=bearer(tokens["ingest"])).status_code == 200
    events = sealed(trail)
    assert len(events) == N
    assert {(e["actor"]["id"], e["actor"].get("ip")) for e in events} == {("alice", "203.0.113.9")}

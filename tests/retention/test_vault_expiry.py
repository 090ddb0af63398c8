"""Vault values expire with the last retained entry of their subject (retention_vault.py), on both stores.

Policies (conftest.CONFIG): data_access hot 30d keep 180d; authentication hot 90d keep 1y. make_event(i)'s
category by i % 5: 0 authentication, 1 and 3 data_access. Each subject has one address, so a later event of
theirs reuses the vault rows of an earlier one (the protection cache) unless the cache forgot them.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import trailseal
from tests.archive.helpers import T0, FakeClock
from tests.conftest import make_event
from tests.retention.conftest import configured, retention_of
from trailseal.pipeline import Sealer
from trailseal.privacy import Policy
from trailseal.query import index
from trailseal.query.sealed import search_trail

DAY = timedelta(days=1)
ADDRESS = {"alice": "203.0.113.11", "bob": "203.0.113.12", "carol": "203.0.113.13", "dave": "203.0.113.14"}


def event_of(i: int, actor: str) -> dict:
    """make_event(i) done by ``actor`` from the actor's own address."""
    return make_event(i, actor={"id": actor, "type": "user", "ip": ADDRESS[actor], "name": f"{actor.title()} Doe"})


def vault_subjects(trail, log: str = "default") -> dict[str, int]:
    """subject -> vault rows in ``log``."""
    conn = trail.store._conn()  # noqa: SLF001 - reading the vault table itself
    mark = "%s" if hasattr(conn, "pgconn") else "?"
    rows = conn.execute(f"SELECT subject, count(*) FROM vault WHERE log = {mark} GROUP BY subject", (log,))
    return dict(rows.fetchall())


def revealed_actor(trail, actor: str) -> list[tuple[str, str]]:
    """(actor.id, actor.ip) of every event a search for ``actor`` finds, as a reader sees them."""
    return [(e["actor"]["id"], e["actor"]["ip"])
            for e in search_trail(trail, f"actor.id:{actor}", limit=1000).events]


def test_a_subjects_values_go_with_their_last_retained_entry(engine):
    name, trail, clock = engine
    trail.append([event_of(1, "alice"), event_of(6, "alice"), event_of(5, "bob"), event_of(11, "bob"),
                  event_of(16, "carol"), event_of(21, "dave")])
    retention = retention_of(trail, clock)
    retention.hold(reason="case 7", ids=["evt-00000016"])  # carol's only event
    clock.now = T0 + 100 * DAY
    trail.append([event_of(26, "dave")])  # dave is back: this one is kept until day 280
    before = vault_subjects(trail)
    assert set(before) == {"alice", "bob", "carol", "dave"}

    clock.now = T0 + 180 * DAY  # every data_access entry of day 0 expires; bob's login is archived, not expired
    applied = retention.apply(clock.now)
    assert applied.vault == {"default": (1, before["alice"])}
    assert set(vault_subjects(trail)) == {"bob", "carol", "dave"}
    login = trail.read_events([("default", 2, trail.entry(2))])[0]["event"]  # bob's, read from the archive
    assert (login["actor"]["id"], login["actor"]["ip"]) == ("bob", ADDRESS["bob"])
    record = [e for e in trail.read_events(_meta(trail)) if e["event"]["action"] == "retention.vault.expire"]
    assert [r["event"]["attributes"] for r in record] == [{"subjects": 1, "vault_rows": before["alice"]}]
    assert record[0]["event"]["target"]["id"] == "default"

    clock.now = T0 + 365 * DAY  # bob's login expires, and dave's event of day 100 did at day 280
    assert retention.apply(clock.now).vault == {"default": (2, before["bob"] + before["dave"])}
    assert set(vault_subjects(trail)) == {"carol"}  # held
    retention.release(retention.holds()[0].id)
    clock.now += DAY
    assert retention.apply(clock.now).vault == {"default": (1, before["carol"])}
    assert vault_subjects(trail) == {}
    assert all(report.ok for report in trail.verify())


def _meta(trail) -> list[tuple[str, int, bytes]]:
    """(log, index, bytes) of every entry of the `trailseal` meta log."""
    return [("trailseal", i, data) for i, data in trail.store.read_entries("trailseal", 0, 2**62)]


def test_a_subject_seen_again_after_expiry_gets_new_vault_rows(engine):
    """The protection cache still holds alice's commitments when her rows go: reused, her new event would be
    sealed under values nobody can read back or find."""
    name, trail, clock = engine
    trail.append([event_of(1, "alice")])
    clock.now = T0 + 180 * DAY
    assert retention_of(trail, clock).apply(clock.now).vault["default"][0] == 1
    trail.append([event_of(31, "alice")])
    assert revealed_actor(trail, "alice") == [("alice", ADDRESS["alice"])]


def test_the_prepare_workers_forget_an_expired_subject_too(tmp_path):
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        trail.pool.start()
        first = trail.append([event_of(1 + 5 * n, "alice") for n in range(200)])  # through the workers
        assert trail.pool.ready and len(first) == 200
        clock.now = T0 + 180 * DAY
        assert retention_of(trail, clock).apply(clock.now).vault["default"][0] == 1
        trail.append([event_of(1001 + 5 * n, "alice") for n in range(200)])
        assert set(revealed_actor(trail, "alice")) == {("alice", ADDRESS["alice"])}
        assert len(revealed_actor(trail, "alice")) == 200


def test_entries_found_through_the_search_index_keep_their_subjects_values(tmp_path):
    """With the search index current, a hot entry is found through its actor table, not the tail."""
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        trail.append([event_of(1, "bob"), event_of(2, "bob")])  # an admin event (index 1): hot for 7 years
        conn = index.connection(trail.store)
        index.refresh(conn)
        assert index.indexed_up_to(conn) == conn.execute("SELECT max(seq) FROM entries").fetchone()[0]
        clock.now = T0 + 180 * DAY
        applied = retention_of(trail, clock).apply(clock.now)
        assert applied.count("expire") == 1 and applied.vault == {}
        assert "bob" in vault_subjects(trail)


@pytest.mark.parametrize(("action", "engine_name", "archived"), [
    ("pseudonymize", "sqlite", False), ("keep", "sqlite", False), ("pseudonymize", "sqlite", True),
    ("pseudonymize", "postgresql", True), ("erasable", "sqlite", True), ("keep", "sqlite", True)])
def test_expired_entries_name_their_subjects_however_actor_ids_are_sealed(request, tmp_path, action, engine_name,
                                                                          archived):
    """A hot entry's subject is found by its sealed actor id and the commitments of its other values; an
    archived entry's payload is in its segment, so only its recorded actor id names its subject (a pseudonym
    is matched against the pseudonym of every subject with values in the log). A retained entry is found by
    the actor id's sealed form."""
    store = request.getfixturevalue("pg_url") if engine_name == "postgresql" else "sqlite:trailseal.db"
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal", store=store))
    config = directory / "trailseal.toml"
    config.write_text(config.read_text() + f'\n[privacy.fields]\n"actor.id" = "{action}"\n')
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        trail.append([event_of(1, "alice"), event_of(6, "bob"), event_of(10, "bob")])  # bob: a login, kept
        before = vault_subjects(trail)
        assert set(before) == {"alice", "bob"}
        retention = retention_of(trail, clock)
        if archived:
            clock.now = T0 + 31 * DAY
            assert retention.apply(clock.now).count("archive") == 2  # alice's and bob's data_access events
        clock.now = T0 + 181 * DAY
        applied = retention.apply(clock.now)
        assert applied.count("expire") == 2 and applied.vault == {"default": (1, before["alice"])}
        assert set(vault_subjects(trail)) == {"bob"}


@pytest.mark.parametrize("action", ["mask", "drop"])
def test_no_values_go_where_a_source_seals_actor_ids_that_name_nobody(tmp_path, action):
    """Alice's address is one vault row for her web and her nginx events alike; her nginx event, kept, has
    a masked or dropped actor id, so nothing shows that it still needs the row."""
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    config = directory / "trailseal.toml"
    config.write_text(config.read_text() + f'\n[privacy.sources.nginx.fields]\n"actor.id" = "{action}"\n')
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        web, nginx = event_of(1, "alice"), event_of(2, "alice")  # data_access (expires), admin (kept)
        web["source"] = {"component": "web", "kind": "app"}
        nginx["source"] = {"component": "nginx", "kind": "gateway"}
        trail.append([web, nginx])
        before = vault_subjects(trail)
        clock.now = T0 + 180 * DAY
        applied = retention_of(trail, clock).apply(clock.now)
        assert applied.count("expire") == 1 and applied.vault == {}
        assert vault_subjects(trail) == before
        kept = trail.read_events([("default", 1, trail.entry(1))])[0]["event"]
        assert kept["actor"]["ip"] == ADDRESS["alice"]


def test_expired_values_leave_no_trace_in_the_sqlite_files(tmp_path):
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        trail.append([event_of(1, "alice"), event_of(5, "bob")])
        clock.now = T0 + 180 * DAY
        retention_of(trail, clock).apply(clock.now)
    files = b"".join(path.read_bytes() for path in directory.glob("trailseal.db*"))
    assert ADDRESS["alice"].encode() not in files and b"Alice Doe" not in files
    assert ADDRESS["bob"].encode() in files and b"Bob Doe" in files  # kept: the test would see them


def test_policy_says_whether_sealed_actor_ids_name_their_subjects():
    assert Policy().identifies_actor("default")
    assert Policy({"fields": {"actor.id": "pseudonymize"}}).identifies_actor("default")
    assert not Policy({"fields": {"actor.*": "mask"}}).identifies_actor("default")
    masked_source = Policy({"sources": {"nginx": {"fields": {"actor.id": "drop"}}}})
    assert not masked_source.identifies_actor("default")
    masked_log = Policy({"logs": {"payments": {"fields": {"actor.id": "mask"}}}})
    assert masked_log.identifies_actor("default") and not masked_log.identifies_actor("payments")


def test_flush_waits_for_every_batch_queued_before_it(data_dir):
    with trailseal.open(data_dir) as trail:
        sealer: Sealer = trail.sealer
        futures = [sealer.submit(trail.prepare([make_event(1000 * b + i) for i in range(500)])) for b in range(6)]
        sealer.flush()
        assert all(future.done() for future in futures)
        assert trail.store.tree_size("default") == 3000
        (last,) = trail.store.read_entries("default", 2999, 3000)
        assert json.loads(last[1])["id"] == "evt-00005499"


def test_the_command_says_whose_values_went(tmp_path):
    from typer.testing import CliRunner

    from trailseal.cli import app

    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    with trailseal.open(directory, clock=FakeClock(T0)) as trail:
        trail.append([event_of(1, "alice"), event_of(3, "bob"), event_of(5, "carol")])
    later = (T0 + 180 * DAY).isoformat().replace("+00:00", "Z")
    done = CliRunner().invoke(app, ["retention", "apply", "--data", str(directory), "--at", later])
    assert done.exit_code == 0, done.output
    assert "default: vault values of 2 subjects expired with their last entries" in done.output
    assert "vault values of 2 subjects expired" in done.output.splitlines()[-1]
    with trailseal.open(directory) as trail:
        assert set(vault_subjects(trail)) == {"carol"}


@pytest.mark.parametrize("value", ['"1"', "-1", "601", "true"])
def test_a_bad_drain_setting_is_refused_with_its_name(tmp_path, value):
    from typer.testing import CliRunner

    from trailseal.cli import app

    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    config = directory / "trailseal.toml"
    config.write_text(config.read_text().replace("[retention.policies]", f"[retention]\nvault_drain_seconds = {value}\n\n"
                                                 "[retention.policies]"))
    done = CliRunner().invoke(app, ["retention", "apply", "--data", str(directory)])
    assert done.exit_code == 2 and "[retention] in trailseal.toml: vault_drain_seconds must be a number of " \
        "seconds" in done.output and "\\[" not in done.output


def test_an_expiry_that_cannot_wait_for_the_writer_is_taken_up_by_the_next_apply(tmp_path):
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        trail.append([event_of(1, "alice"), event_of(6, "bob")])
        before = vault_subjects(trail)
        clock.now = T0 + 180 * DAY
        retention = retention_of(trail, clock)
        answers = iter([False, True])
        retention.vault.flush = lambda log: next(answers)  # the first barrier does not come through
        assert retention.apply(clock.now).vault == {} and vault_subjects(trail) == before
        waiting = trail.store._conn().execute("SELECT log, subject FROM vault_expiring ORDER BY 2").fetchall()
        assert waiting == [("default", "alice"), ("default", "bob")]
        clock.now += DAY  # nothing else expires now: the subjects waiting are taken up
        assert retention.apply(clock.now).vault == {"default": (2, before["alice"] + before["bob"])}
        assert trail.store._conn().execute("SELECT count(*) FROM vault_expiring").fetchone()[0] == 0

"""Retention on both stores (SQLite and PostgreSQL), one suite: hot -> archived -> expired on an injected
clock, holds, restore, idempotent re-sends, pruned-aware verify and proofs issued before pruning.

Categories of make_event(i) by i % 5: authentication, data_access, admin, data_access, config.
Policies (conftest.CONFIG): data_access hot 30d keep 180d; authentication hot 90d keep 1y; admin keep 7y.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import psycopg
import pytest

import trailseal
from tests.archive.helpers import T0, FakeClock, entries
from tests.conftest import make_event
from tests.postgres.fixtures import pg_database, pg_server, pg_url  # noqa: F401 - PostgreSQL fixtures
from tests.retention.conftest import CONFIG, configured, retention_of
from trailseal.ledger import verify_proof
from trailseal.retention import PrunedEntry, PrunedError, Retention

DATA_ACCESS = [i for i in range(50) if i % 5 in (1, 3)]


def test_hot_archive_expire_on_both_engines(engine):
    name, trail, clock = engine
    trail.append([make_event(i) for i in range(50)])
    original = entries(trail.store)
    proofs = {i: trail.prove(i) for i in (1, 3, 6, 7)}
    retention = retention_of(trail, clock)
    retention.hold(reason="case 9", ids=["evt-00000003"])
    upcoming = {(s.action, s.policy, s.due.date().isoformat()): s.count
                for s in retention.plan(T0 + timedelta(days=10)).upcoming}
    assert upcoming[("archive", "data_access", "2026-03-02")] == 20 and retention.is_held("default", 3)

    clock.now = T0 + timedelta(days=30) - timedelta(microseconds=1)
    assert retention.apply(clock.now).count("archive") == 0
    clock.now = T0 + timedelta(days=30)
    applied = retention.apply(clock.now)
    archived = [i for i in DATA_ACCESS if i != 3]
    assert applied.count("archive") == len(archived)
    assert sorted(set(original) - set(entries(trail.store))) == archived
    assert [trail.entry(i) for i in archived] == [original[i] for i in archived]  # read from the archive
    assert retention.status("default", 3) == "hot" and all(r.ok for r in trail.verify())

    assert retention.restore("default", 0, 10) == 3  # 1, 6, 8
    assert entries(trail.store)[6] == original[6] and retention.status("default", 6) == "restored"
    assert trail.verify("default")[0].ok
    retention.apply(clock.now)
    assert retention.status("default", 6) == "archived" and 6 not in entries(trail.store)

    clock.now = T0 + timedelta(days=180)
    assert retention.apply(clock.now).count("expire") == len(archived)
    assert isinstance(retention.read("default", 1), PrunedEntry)
    with pytest.raises(PrunedError, match="pruned by policy data_access on 2026-07-30"):
        trail.entry(1)
    assert trail.entry(3) == original[3] and trail.entry(0) == original[0]  # held, and hot
    assert all(r.ok for r in trail.verify()), [r.summary() for r in trail.verify()]
    assert retention.verify("default", deep=True).ok
    for i, proof in proofs.items():
        verify_proof(proof, original[i], trail.verifier())

    size = trail.store.tree_size("default")
    (receipt,) = trail.append([make_event(1)])  # re-sending a pruned id seals nothing new
    assert (receipt.index, trail.store.tree_size("default")) == (1, size)


def test_a_changed_recorded_leaf_hash_fails_verify(engine):
    name, trail, clock = engine
    trail.append([make_event(i) for i in range(20)])
    retention = retention_of(trail, clock)
    retention.apply(T0 + timedelta(days=200))
    assert trail.verify("default")[0].ok
    with _raw(trail) as conn:
        conn.execute("UPDATE pruned SET leaf_hash = ? WHERE log = 'default' AND idx = 6".replace(
            "?", "%s" if name == "postgresql" else "?"), (b"\x01" * 32,))
    report = trail.verify("default")[0]
    assert not report.ok and report.first_bad_index == 6


def test_postgres_refuses_deleting_a_payload_whose_leaf_hash_is_not_recorded(request, tmp_path):
    url = request.getfixturevalue("pg_url")
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal", store=url))
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        trail.append([make_event(i) for i in range(10)])
        retention_of(trail, clock).apply(T0 + timedelta(days=200))  # installs the prune-only trigger
        conn = trail.store._conn()  # noqa: SLF001 - the store's own connection, as an operator would have
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="only retention drops a payload"):
            conn.execute("DELETE FROM entries WHERE log = 'default' AND idx = 2")  # admin: still hot
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="sealed rows are immutable"):
            conn.execute("UPDATE entries SET action = 'x' WHERE log = 'default' AND idx = 2")
        conn.execute("INSERT INTO pruned (log, idx, id, leaf_hash, category, received, state, policy) VALUES "
                     "('default', 4, 'evt-00000004', %s, 'config', 'x', 'expired', 'forged')", (b"\x00" * 32,))
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="only retention drops a payload"):
            conn.execute("DELETE FROM entries WHERE log = 'default' AND idx = 4")  # a wrong leaf hash is no licence
        assert sorted(entries(trail.store)) == [2, 4, 7, 9]  # 0, 5 archived; 1, 3, 6, 8 expired


class _raw:
    """The store's connection in a transaction (SQLite or PostgreSQL), for tampering in tests."""

    def __init__(self, trail):
        self.conn = trail.store._conn()  # noqa: SLF001

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        if hasattr(self.conn, "commit") and not getattr(self.conn, "autocommit", True):
            self.conn.commit()


def test_postgres_retention_as_the_application_role_says_it_needs_the_owner(request):
    from psycopg import sql

    from tests.postgres.fixtures import admin, with_params
    from trailseal.retention import Policies
    from trailseal.store.base import StoreError
    from trailseal.store.postgres import PostgresStore

    url = request.getfixturevalue("pg_url")
    PostgresStore(url).close()  # the owner migrates the schema
    role = f"trailseal_app_{secrets.token_hex(4)}"
    with admin(url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute("SELECT trailseal_grant_writer(%s)", (role,))
    store = PostgresStore(with_params(url, user=role))
    try:
        with pytest.raises(StoreError, match="owner role"):
            Retention(store, Policies())
    finally:
        store.close()
        with admin(url) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_time_travel_oracle_holds_on_postgresql(request, tmp_path, archive):
    """test_time_travel's hand-written boundaries, every step verified, on the PostgreSQL store."""
    from tests.retention import test_time_travel
    from trailseal.retention import Policies, trail_actor_ids

    url = request.getfixturevalue("pg_url")
    directory = trailseal.init(tmp_path / "pg", origin="test.trailseal", store=url)
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        retention = Retention(trail.store, Policies.from_config(CONFIG), archive, verifier=trail.verifier,
                              clock=clock.moment, actor_ids=trail_actor_ids(trail))
        test_time_travel.test_events_age_through_hot_archive_and_expiry_at_exact_boundaries(trail, retention, clock)


def test_postgres_archived_payloads_leave_the_search_tables(request, tmp_path):
    """What a payload said must not stay searchable once retention dropped it (query/index_pg.py)."""
    from trailseal.query import index_pg
    from trailseal.query.sealed import search_trail

    url = request.getfixturevalue("pg_url")
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal", store=url))
    clock = FakeClock(T0)
    with trailseal.open(directory, clock=clock) as trail:
        trail.append([make_event(i, attributes={"note": f"marker{i}"}) for i in range(50)])
        assert len(search_trail(trail, '"marker1"').events) == 1  # the first search indexes everything

        def rows(indices: list[int]) -> int:
            conn = trail.store._conn()
            return sum(conn.execute(f"SELECT count(*) FROM {table} WHERE log = 'default' AND idx = ANY(%s)",
                                    (indices,)).fetchone()[0] for table in index_pg.TABLES)

        archived = list(DATA_ACCESS)
        assert rows(archived) > 0
        clock.now = T0 + timedelta(days=30)
        assert retention_of(trail, clock).apply(clock.now).count("archive") == len(archived)
        assert rows(archived) == 0, "archived payloads left words, addresses or keys in the search tables"
        assert rows([0, 2, 4]) > 0, "entries still hot lost their search rows"
        assert search_trail(trail, '"marker1"').events == [] and len(search_trail(trail, '"marker0"').events) == 1

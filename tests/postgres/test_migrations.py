"""Versioned migrations: applied in order, recorded once, idempotent, safe when processes open at once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.postgres.fixtures import admin
from trailseal.store import migrations
from trailseal.store.base import StoreError
from trailseal.store.postgres import PostgresStore


def recorded(url: str) -> list[tuple]:
    with admin(url) as conn:
        return conn.execute("SELECT version, name, checksum, applied FROM trailseal_migrations ORDER BY 1").fetchall()


def test_shipped_migrations_are_numbered_in_order():
    known = migrations.available()
    assert [m.version for m in known] == list(range(1, len(known) + 1))
    assert known[0].name == "init" and migrations.latest() == len(known)


def test_open_records_every_migration_once(pg_url):
    store = PostgresStore(pg_url)
    assert store.schema_version == migrations.latest()
    assert [(v, n, c) for v, n, c, _ in recorded(pg_url)] == [
        (m.version, m.name, m.checksum) for m in migrations.available()]
    store.close()


def test_reopening_applies_nothing_again(pg_url):
    PostgresStore(pg_url).close()
    before = recorded(pg_url)
    for _ in range(3):
        PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrations.migrate(conn) == migrations.latest()
    assert recorded(pg_url) == before  # same rows, same applied timestamps


def test_a_newer_schema_is_refused(pg_url):
    PostgresStore(pg_url).close()
    with admin(pg_url) as conn:
        conn.execute("INSERT INTO trailseal_migrations (version, name, checksum) VALUES (999, 'future', 'x')")
    with pytest.raises(StoreError, match="schema v999.*Upgrade trailseal"):
        PostgresStore(pg_url)


def test_a_changed_migration_is_refused(pg_url):
    PostgresStore(pg_url).close()
    with admin(pg_url) as conn:
        conn.execute("UPDATE trailseal_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(StoreError, match="0001_init was applied with a different checksum"):
        PostgresStore(pg_url)


def test_concurrent_opens_migrate_once(pg_url):
    """Eight openers race on an empty schema; the advisory lock lets exactly one migrate."""
    start, errors, stores = threading.Barrier(8), [], []

    def open_store() -> None:
        start.wait()
        try:
            stores.append(PostgresStore(pg_url))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 8
    assert [v for v, *_ in recorded(pg_url)] == [m.version for m in migrations.available()]
    for store in stores:
        store.close()

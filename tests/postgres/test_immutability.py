"""The database itself refuses to change sealed rows: triggers for every role, grants for the app role."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from psycopg import errors, sql

from tests.postgres.fixtures import admin, with_params
from tests.postgres.helpers import commit, row, sealables
from trailseal.keys import log_verifier
from trailseal.ledger import Signer, Verifier, generate
from trailseal.ledger.verify import verify_log
from trailseal.pipeline import Sealer
from trailseal.store.base import StoreError
from trailseal.store.postgres import PostgresStore

SEALED = ["entries", "entry_ids", "checkpoints"]
REFUSED = (errors.IntegrityConstraintViolation, errors.InsufficientPrivilege)


@pytest.fixture
def store(pg_url):
    store = PostgresStore(pg_url)
    store.commit([commit("l", [row(0, "a", b"A"), row(1, "b", b"B")], [(0, 0, b"1" * 64)], 2)])
    yield store
    store.close()


@pytest.fixture
def app_role(pg_url, store) -> str:
    """A login role holding only the writer grants; dropped afterwards."""
    name = f"trailseal_app_{secrets.token_hex(4)}"
    with admin(pg_url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute("SELECT trailseal_grant_writer(%s)", (name,))
    yield name
    with admin(pg_url) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def refused(conn: psycopg.Connection, statement: str, expected=REFUSED) -> None:
    """``statement`` fails with ``expected`` and changes nothing."""
    with pytest.raises(expected):
        with conn.transaction():
            conn.execute(statement)


@pytest.mark.parametrize("table", SEALED)
def test_owner_cannot_update_delete_or_truncate_sealed_rows(pg_url, store, table):
    with admin(pg_url) as conn:
        refused(conn, f"UPDATE {table} SET log = 'x'", errors.IntegrityConstraintViolation)
        refused(conn, f"DELETE FROM {table}", errors.IntegrityConstraintViolation)
        refused(conn, f"TRUNCATE {table}", errors.IntegrityConstraintViolation)
    assert list(store.read_entries("l", 0, 9)) == [(0, b"A"), (1, b"B")]
    assert store.checkpoint_at("l", 2) == "l 2\n"


def test_owner_cannot_truncate_a_partition_or_rewind_a_log(pg_url, store):
    with admin(pg_url) as conn:
        refused(conn, "TRUNCATE entries_2026_01", errors.IntegrityConstraintViolation)
        refused(conn, "DELETE FROM entries_2026_01", errors.IntegrityConstraintViolation)
        refused(conn, "UPDATE logs SET size = 1", errors.IntegrityConstraintViolation)
        refused(conn, "DELETE FROM logs", errors.IntegrityConstraintViolation)
        refused(conn, "DELETE FROM tiles", errors.IntegrityConstraintViolation)
        refused(conn, "TRUNCATE tiles, logs", errors.IntegrityConstraintViolation)
    assert store.tree_size("l") == 2


def test_app_role_writes_and_reads_through_the_store(pg_url, app_role):
    skey, vkey = generate("grants.test")
    as_app = PostgresStore(with_params(pg_url, user=app_role))
    sealer = Sealer(as_app, Signer.from_skey(skey), clock=lambda: "2031-05-01T00:00:00.000000Z").start()
    receipts = sealer.seal(sealables(0, 300, received="2031-05-01T00:00:00.000000Z"))  # a brand-new month
    sealer.stop()
    assert receipts[-1].index == 299
    with admin(pg_url) as conn:  # the partition it made through the SECURITY DEFINER function is the owner's
        owners = dict(conn.execute("SELECT relname, pg_get_userbyid(relowner) FROM pg_class"
                                   " WHERE relnamespace = current_schema()::regnamespace"
                                   " AND relname IN ('entries', 'entries_2031_05')").fetchall())
    assert owners["entries_2031_05"] == owners["entries"] != app_role
    assert verify_log(as_app, "default", [log_verifier(Verifier.from_vkey(vkey), "default")]).ok
    as_app.close()


@pytest.mark.parametrize("table", SEALED + ["tiles", "logs"])
def test_app_role_cannot_update_delete_or_truncate(pg_url, app_role, table):
    column = "name" if table == "logs" else "log"
    with psycopg.connect(with_params(pg_url, user=app_role), autocommit=True) as conn:
        refused(conn, f"UPDATE {table} SET {column} = 'x'", errors.InsufficientPrivilege)
        refused(conn, f"DELETE FROM {table}", errors.InsufficientPrivilege)
        refused(conn, f"TRUNCATE {table}", errors.InsufficientPrivilege)
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0


def test_app_role_cannot_bypass_the_rules(pg_url, app_role):
    with psycopg.connect(with_params(pg_url, user=app_role), autocommit=True) as conn:
        refused(conn, "UPDATE tiles SET data = substring(data FROM 1 FOR 32)")  # granted column, trigger says no
        refused(conn, "UPDATE logs SET size = 0")
        refused(conn, "ALTER TABLE entries DISABLE TRIGGER entries_sealed", errors.InsufficientPrivilege)
        refused(conn, "DROP TABLE entries_2026_01", errors.InsufficientPrivilege)
        refused(conn, "ALTER TABLE entries DETACH PARTITION entries_2026_01", errors.InsufficientPrivilege)
        refused(conn, "DELETE FROM entries_2026_01", errors.InsufficientPrivilege)
        refused(conn, "CREATE TABLE scratch (x int)", errors.InsufficientPrivilege)
        refused(conn, "SELECT trailseal_grant_writer(current_user)", errors.InsufficientPrivilege)


def test_app_role_cannot_create_the_schema(pg_url, app_role):
    empty = f"t_{secrets.token_hex(6)}"
    with admin(pg_url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(empty)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(empty), sql.Identifier(app_role)))
    with pytest.raises(StoreError, match="owner"):
        PostgresStore(with_params(pg_url, user=app_role, options=f"-csearch_path={empty}"))

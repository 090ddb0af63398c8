"""Tiles only grow: a stored tile may be replaced by a longer one that starts with it, nothing else."""

from __future__ import annotations

import pytest
from psycopg import errors

from tests.postgres.fixtures import admin
from tests.postgres.helpers import commit, row
from trailseal.store.postgres import PostgresStore

OLD = b"1" * 32 + b"2" * 32


@pytest.fixture
def store(pg_url):
    store = PostgresStore(pg_url)
    store.commit([commit("l", [row(0, "a", b"A"), row(1, "b", b"B")], [(0, 0, OLD)], 2)])
    yield store
    store.close()


@pytest.mark.parametrize("tile", [b"1" * 32, b"1" * 32 + b"X" * 32, b"X" * 32 + b"2" * 32 + b"3" * 32, b""],
                         ids=["shrink", "rewrite", "longer-other-prefix", "empty"])
def test_a_tile_that_does_not_extend_the_stored_one_is_refused(store, tile):
    with pytest.raises(errors.IntegrityConstraintViolation, match="may only grow"):
        store.commit([commit("l", [row(2, "c", b"C")], [(0, 0, tile)], 3)])
    assert store.read_tile("l", 0, 0) == OLD
    assert store.tree_size("l") == 2 and list(store.read_entries("l", 2, 3)) == []


def test_a_longer_tile_with_the_same_prefix_replaces_it(store):
    store.commit([commit("l", [row(2, "c", b"C")], [(0, 0, OLD + b"3" * 32)], 3)])
    assert store.read_tile("l", 0, 0) == OLD + b"3" * 32


def test_rewriting_the_same_tile_is_a_no_op(store):
    store.commit([commit("l", [row(2, "c", b"C")], [(0, 0, OLD)], 3)])
    assert store.read_tile("l", 0, 0) == OLD


def test_the_owner_cannot_shrink_a_tile_either(pg_url, store):
    with admin(pg_url) as conn, pytest.raises(errors.IntegrityConstraintViolation):
        conn.execute("UPDATE tiles SET data = substring(data FROM 1 FOR 32)")
    assert store.read_tile("l", 0, 0) == OLD

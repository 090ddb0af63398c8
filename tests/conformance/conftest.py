"""Store conformance: every Store implementation must pass these tests unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.postgres.fixtures import pg_database, pg_server, pg_url  # noqa: F401 - PostgreSQL fixtures
from trailseal.ledger import Signer, generate
from trailseal.store.base import Store

STORES = ["sqlite", "postgresql"]


@pytest.fixture(params=STORES)
def make_store(request, tmp_path) -> Iterator[Callable[[], Store]]:
    """A factory opening the same fresh store (call it again to 'reopen' after a restart)."""
    opened: list[Store] = []
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None

    def factory() -> Store:
        if request.param == "sqlite":
            from trailseal.store.sqlite import SQLiteStore

            store = SQLiteStore(tmp_path / "conformance.db")
        elif request.param == "postgresql":
            from trailseal.store.postgres import PostgresStore

            store = PostgresStore(url)
        else:  # pragma: no cover - new engines register here
            raise AssertionError(request.param)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def signer() -> Signer:
    skey, _ = generate("conformance.test")
    return Signer.from_skey(skey)

"""Entry payloads are partitioned by UTC month of `received`; partitions appear when a commit needs them."""

from __future__ import annotations

import pytest

from tests.conftest import make_event
from tests.postgres.fixtures import admin
from tests.postgres.helpers import commit, count_by_partition, row, sealables
from trailseal.event import from_dict, utc_now
from trailseal.ledger import Signer, generate
from trailseal.pipeline import Sealer
from trailseal.store.postgres import PostgresStore, _month, _next_month, _timestamp


@pytest.fixture
def signer() -> Signer:
    return Signer.from_skey(generate("partitions.test")[0])


class Clock:
    """A settable trusted clock for the writer and for `received`."""

    def __init__(self, now: str):
        self.now = now

    def __call__(self) -> str:
        return self.now


def test_events_of_two_months_land_in_two_partitions(pg_url, signer):
    store, clock = PostgresStore(pg_url), Clock("2026-01-31T23:59:59.999999Z")
    sealer = Sealer(store, signer, clock=clock).start()
    sealer.seal(sealables(0, 5, received=clock.now))
    clock.now = "2026-02-01T00:00:00.000000Z"
    sealer.seal(sealables(5, 7, received=clock.now))
    sealer.stop()
    with admin(pg_url) as conn:
        counts = count_by_partition(conn)
    assert counts == {"entries_2026_01": 5, "entries_2026_02": 7}
    assert [i for i, _ in store.read_entries("default", 0, 99)] == list(range(12))
    store.close()


def test_one_commit_spanning_months_and_offsets(pg_url, signer):
    store = PostgresStore(pg_url)
    items = [from_dict(make_event(0), received="2030-03-01T00:30:00+01:00"),  # still February in UTC
             from_dict(make_event(1), received="2030-03-01T00:30:00.000000Z"),
             from_dict(make_event(2), received="2031-12-31T23:00:00.000000Z")]
    Sealer(store, signer).seal(items)
    with admin(pg_url) as conn:
        assert count_by_partition(conn) == {"entries_2030_02": 1, "entries_2030_03": 1, "entries_2031_12": 1}
    assert store.find_ids("default", ["evt-00000000"]) == {"evt-00000000": (0, items[0].canonical)}
    store.close()


def test_a_partition_dropped_behind_the_stores_back_is_recreated(pg_url):
    store = PostgresStore(pg_url)  # created this month's and next month's partitions at open
    ahead = _next_month(_month(_timestamp(utc_now())))
    name = f"entries_{ahead:%Y_%m}"
    with admin(pg_url) as conn:  # what retention does, as the owner
        conn.execute(f"ALTER TABLE entries DETACH PARTITION {name}")
        conn.execute(f"DROP TABLE {name}")
    received = f"{ahead:%Y-%m}-02T00:00:00.000000Z"
    store.commit([commit("l", [row(0, "a", b"A", received=received)], [(0, 0, b"h" * 32)], 1)])
    with admin(pg_url) as conn:
        assert count_by_partition(conn) == {name: 1}
    store.close()


def test_new_partitions_get_the_indexes_and_the_truncate_guard(pg_url):
    PostgresStore(pg_url).close()
    with admin(pg_url) as conn:
        parts = [name for (name,) in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'entries'::regclass ORDER BY 1")]
        indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
                               " AND tablename = %s", (parts[0],)).fetchone()[0]
        triggers = {t for (t,) in conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass",
                                               (parts[0],))}
    assert len(parts) == 2  # this month and the next, made ahead of time at open
    assert indexes == 4
    assert {"entries_sealed", "entries_no_truncate"} <= triggers

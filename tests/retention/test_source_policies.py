"""Retention policies chosen by source (`sources = [...]`: source.component or source.kind values), on both
stores: the most specific policy governs each entry, a source beating a log beating a category; archived
entries keep the source they were archived with, so their expiry follows the same policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.archive.helpers import T0, entries
from tests.conftest import make_event
from trailseal.retention import Policies, PrunedEntry, Retention, RetentionError

DAY = timedelta(days=1)
CONFIG = {"policies": {
    "data_access": {"hot": "30d", "keep": "180d"},
    "vpn": {"sources": ["vpn"], "categories": ["data_access"], "hot": "10d", "keep": "60d"},
    "databases": {"sources": ["database"], "keep": "400d"},
}}


def event_from(i: int, component: str, kind: str = "app") -> dict:
    """make_event(i) (data_access for i % 5 in (1, 3)) from one source."""
    return make_event(i, source={"component": component, "kind": kind, "host": "node-1"})


def test_each_entry_follows_the_policy_of_its_source(engine):
    name, trail, clock = engine
    trail.append([event_from(1, "web"), event_from(3, "vpn"), event_from(6, "postgres", "database"),
                  event_from(8, "web", "database"), event_from(2, "web")])  # the last: admin, governed by none
    retention = Retention(trail.store, Policies.from_config(CONFIG), Retention.from_trail(trail).archive,
                          verifier=trail.verifier, clock=clock.moment)
    plan = retention.plan(T0 + DAY)
    upcoming = {(s.action, s.policy, s.due.date().isoformat()): s.count for s in plan.upcoming}
    assert upcoming[("archive", "vpn", "2026-02-10")] == 1 and upcoming[("archive", "data_access", "2026-03-02")] == 1
    assert upcoming[("expire", "databases", "2027-03-07")] == 2 and len(upcoming) == 5

    applied = retention.apply(T0 + 10 * DAY)  # vpn's entry (index 1) goes to the archive, with its source
    assert [(s.action, s.policy, s.first) for s in applied.steps] == [("archive", "vpn", 1)]
    applied = retention.apply(T0 + 30 * DAY)
    assert [(s.action, s.policy, s.first) for s in applied.steps] == [("archive", "data_access", 0)]
    applied = retention.apply(T0 + 60 * DAY)  # only vpn's expires: the web entry archived beside it stays
    assert [(s.action, s.policy, s.first, s.count) for s in applied.steps] == [("expire", "vpn", 1, 1)]
    assert isinstance(retention.read("default", 1), PrunedEntry) and retention.status("default", 0) == "archived"
    applied = retention.apply(T0 + 180 * DAY)
    assert [(s.action, s.policy, s.first, s.count) for s in applied.steps] == [("expire", "data_access", 0, 1)]
    assert sorted(entries(trail.store)) == [2, 3, 4]  # both database entries (kind), and the ungoverned one
    applied = retention.apply(T0 + 400 * DAY)
    assert [(s.action, s.policy, s.count) for s in applied.steps] == [("expire", "databases", 2)]
    assert sorted(entries(trail.store)) == [4]
    assert all(report.ok for report in trail.verify())


def test_source_policies_from_config():
    policies = Policies.from_config(CONFIG)
    assert policies.by_source and not Policies.from_config({"policies": {"all": {"keep": "1y"}}}).by_source
    assert policies.for_entry("default", "data_access", "vpn", "app").name == "vpn"
    assert policies.for_entry("default", "data_access", "web", "app").name == "data_access"
    assert policies.for_entry("default", "data_access", "web", "database").name == "databases"  # more specific
    assert policies.for_entry("default", "admin", "web", "app") is None
    assert policies.categories_by_policy("default")["data_access"] == ["data_access"]
    assert "vpn" in policies.get("vpn").describe() and "from vpn" in policies.get("vpn").describe()


@pytest.mark.parametrize("conf, message", [
    ({"a": {"sources": ["vpn"], "keep": "1y"}, "b": {"sources": ["vpn", "web"], "keep": "2y"}}, "both govern"),
    ({"a": {"sources": [""], "keep": "1y"}}, "not empty"),
    ({"a": {"sources": "vpn", "keep": "1y"}}, "Expected `array"),
])
def test_bad_source_policies(conf, message):
    with pytest.raises(RetentionError, match=message):
        Policies.from_config({"policies": conf})


def test_a_pruned_table_from_before_sources_gets_their_columns(tmp_path):
    import sqlite3

    from trailseal.retention_db import SQLITE_SCHEMA, ensure_schema

    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    conn.executescript(SQLITE_SCHEMA.replace("    source_component TEXT, source_kind TEXT,\n", ""))
    conn.execute("INSERT INTO pruned (log, idx, id, leaf_hash, category, received, state, policy) VALUES "
                 "('default', 0, 'e', x'00', 'admin', '2026-01-01T00:00:00.000000Z', 'archived', 'p')")
    assert "source_kind" not in {row[1] for row in conn.execute("PRAGMA table_info(pruned)")}
    ensure_schema(conn)
    ensure_schema(conn)  # and again: nothing to add
    assert conn.execute("SELECT idx, source_component, source_kind FROM pruned").fetchall() == [(0, None, None)]

"""Periods, policies from config, and legal-hold queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trailseal.retention import Policies, RetentionError, add_months, compile_query, parse_period


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("text, start, end", [
    ("90d", utc(2026, 1, 31, 12), utc(2026, 5, 1, 12)),
    ("36h", utc(2026, 1, 31, 12), utc(2026, 2, 2, 0)),
    ("2w", utc(2026, 1, 31), utc(2026, 2, 14)),
    ("1m", utc(2026, 1, 31), utc(2026, 2, 28)),
    ("1m", utc(2028, 1, 31), utc(2028, 2, 29)),
    ("12m", utc(2026, 3, 15), utc(2027, 3, 15)),
    ("1y", utc(2028, 2, 29), utc(2029, 2, 28)),
    ("7y", utc(2026, 1, 31, 12), utc(2033, 1, 31, 12)),
    ("1y 6m", utc(2026, 1, 1), utc(2027, 7, 1)),
])
def test_periods_are_calendar_exact(text, start, end):
    period = parse_period(text)
    assert period.after(start) == end
    sure, maybe = period.cutoffs(end)
    stamp = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert period.due(stamp, end, sure) and stamp <= maybe
    assert not period.due(stamp, end - timedelta(microseconds=1), period.cutoffs(end - timedelta(microseconds=1))[0])


def test_sql_cutoffs_never_miss_a_due_moment():
    period = parse_period("1m")
    for day in range(1, 32):
        start = utc(2026, 1, day, 23, 59)
        now = period.after(start)
        sure, maybe = period.cutoffs(now)
        assert start.strftime("%Y-%m-%dT%H:%M:%S.%fZ") <= maybe


def test_forever_and_bad_periods():
    assert parse_period("forever").after(utc(2026, 1, 1)) is None
    for bad in ("", "90", "3 days", "1x", "-1d"):
        with pytest.raises(RetentionError, match="period"):
            parse_period(bad)


def test_add_months_clamps_to_month_end():
    assert add_months(utc(2026, 3, 31), -1) == utc(2026, 2, 28)
    assert add_months(utc(2026, 12, 15), 1) == utc(2027, 1, 15)
    assert add_months(utc(2026, 1, 15), -13) == utc(2024, 12, 15)


def test_policies_from_config_and_specificity():
    policies = Policies.from_config({"policies": {
        "authentication": {"hot": "90d", "keep": "1y"},
        "admin": {"keep": "7y"},
        "pci": {"logs": ["payments"], "hot": "3m", "keep": "12m"},
        "pci-admin": {"logs": ["payments"], "categories": ["admin"], "keep": "10y"},
        "rest": {"keep": "400d"},
    }})
    assert policies.for_entry("default", "authentication").name == "authentication"
    assert policies.for_entry("default", "admin").name == "admin"
    assert policies.for_entry("default", "config").name == "rest"
    assert policies.for_entry("payments", "authentication").name == "pci"
    assert policies.for_entry("payments", "admin").name == "pci-admin"
    assert policies.categories_by_policy("payments")["pci-admin"] == ["admin"]
    assert "hot 90d, keep 1y (authentication)" in policies.get("authentication").describe()
    assert Policies.from_config({}).for_entry("default", "admin") is None


@pytest.mark.parametrize("conf, message", [
    ({"a": {"keep": "1y"}, "b": {"keep": "2y"}}, "both govern"),
    ({"x": {"categories": ["admin"], "keep": "1y"}, "admin": {"keep": "2y"}}, "both govern"),
    ({"admin": {"hot": "2y", "keep": "1y"}}, "longer than keep"),
    ({"admin": {"hot": "forever", "keep": "1y"}}, "hot forever"),
    ({"admin": {"keep": "1y", "hold": "x"}}, "unknown field"),
    ({"Admin": {"keep": "1y"}}, "policy name"),
    ({"x": {"categories": ["nope"], "keep": "1y"}}, "unknown categories"),
    ({"admin": {}}, "keep"),
])
def test_bad_policies(conf, message):
    with pytest.raises(RetentionError, match=message):
        Policies.from_config({"policies": conf})


def test_hold_queries_compile_to_sql():
    clause, params = compile_query('category:admin actor:alice actor:bob action:user.* since:2026-01-01 '
                                   'id:"evt 1"', "e.")
    assert params == ["admin", "alice", "bob", "user.*", "2026-01-01", "evt 1"]
    assert "(e.actor_id = ? OR e.actor_id = ?)" in clause and "glob(?, e.action)" in clause
    assert "e.time >= ?" in clause
    for bad in ("admin", "color:red", "category:admin junk"):
        with pytest.raises(RetentionError, match="hold query"):
            compile_query(bad)

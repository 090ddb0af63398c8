"""Exports and evidence bundles on a PostgreSQL store (scale-out) equal those of SQLite for the same
events: the same lines, the same OCSF rows, personal values joined back, a bundle that verifies."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import trailseal
from tests.conftest import make_event
from tests.postgres.fixtures import new_schema, pg_database, pg_server, pg_url  # noqa: F401 - fixtures
from trailseal.query.bundle import write_bundle
from trailseal.query.bundle_check import verify_bundle
from trailseal.query.export import export_to

QUERIES = ["log:default", "outcome:failure", "action:user.* -category:admin", "actor:user-3", '"login"', "ip:10.1.0.0/16"]


def events() -> list[dict]:
    made = []
    for i in range(400):
        event = make_event(i, outcome="failure" if i % 3 == 0 else "success")
        event["actor"] = {"id": f"user-{i % 7}", "type": "user", "ip": f"10.{i % 2}.{i % 5}.{i % 250}"}
        made.append(event)
    return made


@pytest.fixture(scope="module")
def both(tmp_path_factory, pg_database):  # noqa: F811
    """The same events, privacy on (the default policy), in a SQLite and a PostgreSQL data dir."""
    trails = []
    for name, store in (("sqlite", None), ("pg", new_schema(pg_database))):
        root = tmp_path_factory.mktemp(name) / "data"
        args = {"store": store} if store else {}
        trail = trailseal.open(trailseal.init(root, origin="test.trailseal", **args))
        assert trail.protection.enabled
        for start in range(0, 400, 100):
            trail.append(events()[start:start + 100])
        trails.append(trail)
    yield trails
    for trail in trails:
        trail.close()


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def comparable(event: dict) -> tuple:
    """What both stores must agree on (the received stamp and commitment salts differ per store)."""
    return (event["log"], event["index"], event["id"], event["action"], event["outcome"], event["actor"]["id"],
            event["actor"].get("ip"))


@pytest.mark.parametrize("query", QUERIES)
def test_jsonl_export_on_postgres_equals_sqlite(both, tmp_path, query):
    lite, pg = both
    exported = []
    for trail, name in ((lite, "lite"), (pg, "pg")):
        result = export_to(trail, query, "jsonl", tmp_path / f"{name}.jsonl")
        exported.append(lines(tmp_path / f"{name}.jsonl"))
        assert result.rows == len(exported[-1])
    assert [comparable(e) for e in exported[1]] == [comparable(e) for e in exported[0]]
    assert exported[0], f"{query!r} should match something"
    assert not any(str(e["actor"]["id"]).startswith("pd:") for e in exported[1])  # values joined back


def test_ocsf_parquet_on_postgres_has_the_same_rows(both, tmp_path):
    lite, pg = both
    counts = []
    for trail, name in ((lite, "lite"), (pg, "pg")):
        result = export_to(trail, "log:default", "ocsf-parquet", tmp_path / name)
        counts.append(sorted((path.name, pq.read_metadata(path).num_rows) for path in result.files))
    assert counts[0] == counts[1] and sum(n for _, n in counts[1]) >= 400


def test_a_bundle_from_postgres_verifies_offline(both, tmp_path):
    _, pg = both
    out = tmp_path / "pg.zip"
    result = write_bundle(pg, "outcome:failure", out, by="test")
    assert result.events >= 134
    report = verify_bundle(out)
    assert not report.problems and report.events == result.events


def test_the_cli_exports_from_postgres_and_records_the_export(tmp_path, pg_database):  # noqa: F811
    from typer.testing import CliRunner

    from trailseal.cli import app as cli

    root = trailseal.init(tmp_path / "data", origin="test.trailseal", store=new_schema(pg_database))
    with trailseal.open(root) as trail:
        trail.append(events()[:50])
    out = tmp_path / "failures.jsonl"
    result = CliRunner().invoke(cli, ["export", "outcome:failure", "--format", "jsonl", "--out", str(out),
                                      "--data", str(root)])
    assert result.exit_code == 0, result.output
    assert len(lines(out)) == 17
    with trailseal.open(root) as trail:
        meta = [json.loads(data) for _, data in trail.store.read_entries("trailseal", 0, 1000)]
    assert any(e["action"].startswith("trailseal.export") for e in meta)

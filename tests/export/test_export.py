"""Exports through the CLI and the library: contents equal the search, CSV is spreadsheet-safe,
erased values stay erased, bad input gets a clear error, and every export is sealed in the meta log."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

import trailseal
from trailseal.cli import app
from trailseal.query.export import ExportError, csv_lines, export_to
from trailseal.query.sealed import search_trail

runner = CliRunner()


def meta_exports(directory) -> list[dict]:
    with trailseal.open(directory) as trail:
        return [e for e in search_trail(trail, "log:trailseal action:trailseal.export*", limit=1000).events]


def test_jsonl_equals_the_search_and_crosses_pages(trail, tmp_path, monkeypatch):
    monkeypatch.setattr("trailseal.query.export.PAGE", 37)  # many pages, one stream
    result = export_to(trail, "category:authentication OR category:session", "jsonl", tmp_path / "a.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    expected = search_trail(trail, "category:authentication OR category:session", limit=1000).events
    assert result.rows == len(lines) == len(expected) > 37
    assert [(e["log"], e["index"]) for e in lines] == sorted((e["log"], e["index"]) for e in lines)  # sealed order
    assert lines == sorted(expected, key=lambda e: (e["log"], e["index"]))


def test_erased_values_stay_erased_and_others_are_joined(trail, tmp_path):
    export_to(trail, "", "jsonl", tmp_path / "all.jsonl")
    events = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    gone = [e for e in events if e.get("id") == "evt-00001000"]
    assert gone and gone[0]["actor"]["id"].startswith("pd:") and gone[0]["actor"]["ip"].startswith("pd:")
    assert "192.0.2.9" not in (tmp_path / "all.jsonl").read_text()
    assert any(e["actor"]["id"].startswith("user") for e in events)


def test_csv_columns_and_formula_cells():
    text = csv_lines(
        [
            {
                "log": "default",
                "index": 3,
                "id": "e1",
                "action": "x",
                "reason": "=HYPERLINK(1)",
                "actor": {"id": "@bob", "roles": ["a", "b"]},
                "request": {"status": 404},
                "attributes": {"k": 1},
            }
        ]
    ).decode()
    row = next(
        csv.DictReader(
            io.StringIO(
                "log,index,id,time,received,category,action,outcome,severity,reason,"
                "actor.id,actor.type,actor.name,actor.session,actor.roles\n" + text
            )
        )
    )
    assert row["reason"] == "'=HYPERLINK(1)" and row["actor.id"] == "'@bob"
    assert json.loads(row["actor.roles"]) == ["a", "b"] and row["index"] == "3"


def test_ecs_export(trail, tmp_path):
    export_to(trail, "action:user.login", "ecs", tmp_path / "e.ndjson")
    docs = [json.loads(line) for line in (tmp_path / "e.ndjson").read_text().splitlines()]
    assert docs and all(
        d["event"]["category"] == ["authentication"] and d["event"]["type"] == ["start"] for d in docs
    )
    assert all(
        d["ecs"]["version"] and d["@timestamp"].endswith("Z") and d["trailseal"]["log"] == "default"
        for d in docs
    )


def test_bad_input_is_refused_before_anything_is_written(trail, tmp_path):
    with pytest.raises(ExportError, match="unknown format"):
        export_to(trail, "", "xml", tmp_path / "x")
    (tmp_path / "exists.jsonl").write_text("keep")
    with pytest.raises(ExportError, match="already exists"):
        export_to(trail, "", "jsonl", tmp_path / "exists.jsonl")
    assert (tmp_path / "exists.jsonl").read_text() == "keep"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(ExportError, match="not an empty directory"):
        export_to(trail, "", "ocsf", tmp_path / "full")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ocsf", "ocsf-parquet", "ecs"])
def test_cli_export_writes_and_seals_who_what_how_many(sealed, tmp_path, fmt):
    before = len(meta_exports(sealed))
    result = runner.invoke(
        app,
        ["export", "outcome:failure", "--format", fmt, "--out", str(tmp_path / "out"), "--data", str(sealed)],
    )
    assert result.exit_code == 0, result.output
    assert "exported" in result.output and (tmp_path / "out").exists()
    records = meta_exports(sealed)
    assert len(records) == before + 1
    newest = records[0]["attributes"]
    assert newest["query"] == "outcome:failure" and newest["format"] == fmt and newest["rows"] > 0


def test_cli_errors_say_what_to_do(sealed, tmp_path):
    cases = [
        (["export", "actor:("], "give --out"),
        (["export", "actor:(", "-o", str(tmp_path / "q")], "query: col"),
        (["export", "", "-f", "xml", "-o", str(tmp_path / "x")], "unknown format"),
        (["export", "", "-o", str(tmp_path / "y"), "--bundle", str(tmp_path / "b.zip")], "not both"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, [*args, "--data", str(sealed)])
        assert result.exit_code == 2 and needle in result.output, (args, result.output)
    assert not (tmp_path / "q").exists()


def test_cli_export_to_stdout(sealed):
    result = runner.invoke(app, ["export", "action:user.login", "--out", "-", "--data", str(sealed)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines and all(line["action"] == "user.login" for line in lines)
    refused = runner.invoke(app, ["export", "", "-f", "ocsf-parquet", "--out", "-", "--data", str(sealed)])
    assert refused.exit_code == 2 and "--out -" in refused.output


def test_csv_columns_are_every_schema_field_once():
    from trailseal.event import FIELD_PATHS
    from trailseal.query.export import CSV_COLUMNS

    assert sorted(CSV_COLUMNS) == sorted(["index", *FIELD_PATHS]) and len(set(CSV_COLUMNS)) == len(CSV_COLUMNS)

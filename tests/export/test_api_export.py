"""The export routes: streaming formats, one-class Parquet, evidence bundles that verify offline,
clear 400s, and the meta log recording each export."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq

from tests.api.conftest import bearer
from tests.conftest import make_event
from tests.export.conftest import varied_event
from tests.export.ocsf_schema import validate
from trailseal.query.bundle_check import verify_bundle


def seed(client, tokens) -> None:
    response = client.post(
        "/v1/events", json=[varied_event(i) for i in range(60)], headers=bearer(tokens["admin"])
    )
    assert response.status_code == 200


def meta(app, action: str) -> list[dict]:
    from trailseal.query.sealed import search_trail

    return search_trail(app.state.service.trail, f"log:trailseal action:{action}", limit=100).events


def test_streams_every_line_format(api):
    client, tokens, app = api
    seed(client, tokens)
    auditor = bearer(tokens["auditor"])
    jsonl = client.get("/v1/export", params={"q": "log:default", "format": "jsonl"}, headers=auditor)
    assert jsonl.status_code == 200 and jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert len(jsonl.text.splitlines()) == 60
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get("/v1/export", params={"q": "log:default", "format": "csv"}, headers=auditor).text
            )
        )
    )
    assert len(rows) == 60 and {r["log"] for r in rows} == {"default"}
    ocsf = client.get(
        "/v1/export", params={"q": "log:default", "format": "ocsf", "class_uid": "3002"}, headers=auditor
    )
    records = [json.loads(line) for line in ocsf.text.splitlines()]
    assert records and all(r["class_uid"] == 3002 and validate(r) == [] for r in records)
    ecs = client.get("/v1/export", params={"q": "log:default action:db.*", "format": "ecs"}, headers=auditor)
    assert all(json.loads(line)["event"]["category"] == ["database"] for line in ecs.text.splitlines())
    started, done = meta(app, "trailseal.export"), meta(app, "trailseal.export.done")
    assert len(started) == 4 and len(done) == 4
    assert {d["attributes"]["rows"] for d in done} >= {60, len(records)}
    assert all(e["actor"]["roles"] == ["auditor"] for e in started + done)


def test_parquet_of_one_class(api, tmp_path):
    client, tokens, _ = api
    seed(client, tokens)
    response = client.get(
        "/v1/export",
        params={"q": "", "format": "ocsf-parquet", "class_uid": "6005"},
        headers=bearer(tokens["admin"]),
    )
    assert (
        response.status_code == 200
        and "6005_datastore_activity.parquet" in response.headers["content-disposition"]
    )
    (tmp_path / "x.parquet").write_bytes(response.content)
    table = pq.read_table(tmp_path / "x.parquet")
    assert table.num_rows > 0 and set(table.column("class_uid").to_pylist()) == {6005}


def test_bundle_download_verifies_offline(api, tmp_path):
    client, tokens, app = api
    seed(client, tokens)
    response = client.get(
        "/v1/export/bundle", params={"q": "category:authentication"}, headers=bearer(tokens["auditor"])
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    (tmp_path / "b.zip").write_bytes(response.content)
    report = verify_bundle(tmp_path / "b.zip")
    assert report.ok, report.problems
    assert report.events == int(response.headers["x-trailseal-events"]) > 0
    sealed = meta(app, "trailseal.export")
    assert any(
        e["attributes"].get("manifest_sha256") == response.headers["x-trailseal-manifest-sha256"]
        for e in sealed
    )


def test_bad_requests_get_reasons(api):
    client, tokens, _ = api
    client.post("/v1/events", json=[make_event(0)], headers=bearer(tokens["admin"]))
    auditor = bearer(tokens["auditor"])
    cases = [
        ({"q": "actor:(", "format": "jsonl"}, "query: col"),
        ({"format": "xml"}, "format must be"),
        ({"format": "ocsf-parquet"}, "add class_uid"),
        ({"format": "ocsf", "class_uid": "9"}, "class_uid must"),
        ({"q": "", "bogus": "1"}, "unknown parameter"),
    ]
    for params, needle in cases:
        response = client.get("/v1/export", params=params, headers=auditor)
        assert response.status_code == 400 and needle in response.json()["error"], (params, response.text)
    bundle = client.get("/v1/export/bundle", params={"q": "since:forever"}, headers=auditor)
    assert bundle.status_code == 400 and "query" in bundle.json()["error"]
    none = client.get(
        "/v1/export",
        params={"q": "log:default", "format": "ocsf-parquet", "class_uid": "2004"},
        headers=auditor,
    )
    assert none.status_code == 200 and pq.read_table(io.BytesIO(none.content)).num_rows == 0
    reader = client.get("/v1/export", params={"q": ""}, headers=bearer(tokens["reader"]))
    assert reader.status_code == 403 and "auditor" in reader.json()["error"]

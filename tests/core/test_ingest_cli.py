"""`trailseal ingest` against hostile input: per-line errors, no traceback, nothing sealed is touched."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import trailseal
from tests.conftest import make_event
from trailseal.cli import app


def ingest(data_dir, payload: bytes, tmp_path, name="in.ndjson"):
    path = tmp_path / name
    path.write_bytes(payload)
    return CliRunner().invoke(app, ["ingest", "--data", str(data_dir), str(path)])


def ndjson(*events) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def test_good_records_are_sealed_and_bad_lines_reported(data_dir, tmp_path):
    good = [make_event(i) for i in range(3)]
    bad_type = make_event(10, outcome=5)
    missing = {k: v for k, v in make_event(11).items() if k != "actor"}
    payload = (ndjson(good[0]) + b"{not json\n" + ndjson(bad_type) + b"\xff\xfe\n" + ndjson(good[1])
               + ndjson(missing) + ndjson(good[2]))
    result = ingest(data_dir, payload, tmp_path)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith("line 2: ") and "malformed JSON" in line for line in lines)
    assert any(line.startswith("line 3: outcome") for line in lines)
    assert any(line.startswith("line 4: ") and "UTF-8" in line for line in lines)
    assert any(line.startswith("line 6: ") and "actor" in line for line in lines)
    assert "Traceback" not in result.output
    assert "sealed 3 events" in result.stdout
    with trailseal.open(data_dir) as log:
        assert log.store.tree_size("default") == 3


def test_hostile_lines_never_touch_what_was_sealed(data_dir, tmp_path):
    assert ingest(data_dir, ndjson(*[make_event(i) for i in range(5)]), tmp_path).exit_code == 0
    with trailseal.open(data_dir) as log:
        before = log.checkpoint()
    deep = {"a": None}
    for _ in range(200):
        deep = {"a": deep}
    hostile = [
        b"x" * (10 * 1024 * 1024),                                        # a 10 MB line
        ndjson(make_event(20, attributes=deep)).strip(),                    # deeply nested attributes
        ndjson(make_event(21, time="0000-01-01T00:00:00Z")).strip(),        # out of range
        ndjson(make_event(22, time="2026-13-45T99:00:00Z")).strip(),
        ndjson(make_event(23, time="2026-01-01T00:00:00")).strip(),         # no offset
        ndjson(make_event(24, id="has space")).strip(),
        ndjson(make_event(25, action="User Login")).strip(),
        ndjson(make_event(26, attributes={"n": 2**70})).strip(),
        b'{"id":"\\u0000"}',
        b"\x00\x01\x02",
        b"[]", b"null", b"123", b'"str"',
    ]
    result = ingest(data_dir, b"\n".join(hostile) + b"\n", tmp_path, "hostile.ndjson")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.count("line ") == len(hostile)
    assert "line 1: " in result.stderr and "limit" in result.stderr
    with trailseal.open(data_dir) as log:
        assert log.checkpoint() == before
        assert all(r.ok for r in log.verify())


def test_nul_and_control_characters_are_sealed_escaped(data_dir, tmp_path):
    event = make_event(1, reason="tab\there\x00nul\x1bescape")
    assert ingest(data_dir, ndjson(event), tmp_path).exit_code == 0
    with trailseal.open(data_dir) as log:
        data = log.entry(0)
    assert b"\\u0000" in data and b"\\u001b" in data and b"\x00" not in data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=200), st.text(max_size=100).map(str.encode),
                          st.builds(lambda i: json.dumps(make_event(i)).encode(), st.integers(0, 10**6))),
                max_size=8))
def test_random_lines_give_errors_not_tracebacks(data_dir, tmp_path, lines):
    payload = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
    result = ingest(data_dir, payload, tmp_path)
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def test_big_files_go_through_the_prepare_workers_with_the_same_answers(data_dir, tmp_path):
    """2,500 lines (bad ones among them) in batches the prepare workers take: each bad line is reported
    by its number, every good one sealed once, in file order, and the log verifies."""
    import re

    config = data_dir / "trailseal.toml"
    config.write_text(re.sub(r"prepare_workers = -?\d+", "prepare_workers = 2", config.read_text()))
    bad = {7: b"{not json", 1500: json.dumps(make_event(1500, outcome="maybe")).encode(), 2401: b"\xff\xfe"}
    events = [make_event(i) for i in range(2500)]
    payload = b"".join((bad.get(i + 1) or json.dumps(e).encode()) + b"\n" for i, e in enumerate(events))
    assert len(payload) >= (1 << 20), "big enough for ingest to start its prepare workers first"
    result = ingest(data_dir, payload, tmp_path)
    assert result.exit_code == 1
    reported = [int(m.group(1)) for m in re.finditer(r"^line (\d+): ", result.stderr, re.M)]
    assert reported == sorted(bad)
    assert "sealed 2497 events" in result.stdout
    with trailseal.open(data_dir) as log:
        sealed = [json.loads(data)["id"] for _, data in log.store.read_entries("default", 0, 3000)]
        assert sealed == [e["id"] for i, e in enumerate(events) if i + 1 not in bad]
        assert all(r.ok for r in log.verify())

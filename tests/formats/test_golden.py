"""Golden tests: every file of ../shared/testdata/logs parses to exactly the reviewed events in golden/."""

from __future__ import annotations

import json

import pytest

from tests.formats.cases import CASES, GOLDEN, LOGS, NOT_LOGS, run_case
from trailseal.event import from_dict


@pytest.fixture(scope="module", autouse=True)
def shared_logs() -> None:
    if not LOGS.is_dir():
        pytest.fail(f"shared test data not found at {LOGS}: the checkout is broken, not skippable")


def load_golden(name: str) -> list[dict]:
    path = GOLDEN / f"{name}.jsonl"
    assert path.is_file(), f"no golden for {name}; run `python -m tests.formats.regen` and review it"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_testdata_file_has_a_golden_case():
    files = {p.name for p in LOGS.iterdir() if p.is_file()} - NOT_LOGS
    assert files == set(CASES), f"unmapped: {sorted(files - set(CASES))}, stale: {sorted(set(CASES) - files)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_golden(name: str):
    produced = json.loads(json.dumps(run_case(name)))
    expected = load_golden(name)
    assert len(produced) == len(expected)
    for got, want in zip(produced, expected, strict=True):
        assert got == want


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_events_pass_the_schema(name: str):
    events = [e for row in load_golden(name) for e in row.get("events", [])]
    for event in events:
        sealable = from_dict(event)
        assert sealable.event.raw_hash == event["raw_hash"]
        assert "received" not in event


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_summary_counts_every_record(name: str):
    rows = load_golden(name)
    summary = rows[-1]["summary"]
    assert summary["records"] == len(rows) - 1
    assert summary["events"] == sum(len(r.get("events", [])) for r in rows[:-1])
    assert summary["rejected_records"] == sum(1 for r in rows[:-1] if "rejected" in r)
    assert all(r["rejected"] for r in rows[:-1] if "rejected" in r), "every rejection has a reason"

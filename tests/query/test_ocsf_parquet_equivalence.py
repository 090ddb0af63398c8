"""The OCSF Parquet fast path (typed decode, columns per class) gives exactly the rows of the
straightforward path (one ``ocsf.to_ocsf`` dict per event), for any event and through a real export."""

from __future__ import annotations

import msgspec
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trailseal
from tests.conftest import make_event
from tests.export.conftest import KINDS
from trailseal.event import CATEGORIES, OUTCOMES, SEVERITIES
from trailseal.query import export, ocsf, ocsf_arrow
from trailseal.query.export import export_to, pages

# every verb some class knows, and words that pick a class (db, http, role, ...)
WORDS = sorted({w for verbs in ocsf.ACTIVITIES.values() for w in verbs} | {"db", "sql", "http", "role", "mfa", "x"})
UNICODE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
TEXT = st.one_of(
    UNICODE,
    st.sampled_from(["", "é", "😀 x", "名前", 'q"uo\\te', "tab\there\n", "\u2028", "pd:" + "ab" * 32]),
)
STAMPS = st.sampled_from(
    [
        "2026-11-01T00:00:00.000000Z",
        "2026-11-01T23:59:59.999999Z",
        "1969-12-31T23:59:59.999500Z",
        "2026-11-01T00:00:00.5+01:00",
    ]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
OPTIONAL_TEXT = st.none() | TEXT  # None: the key is there with a JSON null
events = st.fixed_dictionaries(
    {
        "time": STAMPS,
        "category": st.sampled_from(CATEGORIES),
        "outcome": st.sampled_from(OUTCOMES),
        "action": st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(".".join),
        "actor": st.fixed_dictionaries(
            {},
            optional={
                "id": OPTIONAL_TEXT,
                "ip": st.sampled_from(["10.0.0.1", "", "pd:" + "cd" * 32]),
                "session": st.sampled_from(["s1", ""]),
                "name": OPTIONAL_TEXT,
                "roles": st.none() | st.lists(TEXT, max_size=2),
                "user_agent": OPTIONAL_TEXT,
                "type": st.sampled_from(["user", "service", "system", "anonymous", "robot", ""]),
            },
        ),
        "source": st.fixed_dictionaries(
            {"component": st.sampled_from(["web", "pg", "", "kube-apiserver"]),
             "kind": st.sampled_from(["app", "database", "scanner", "kubernetes"])},
            optional={
                "host": st.sampled_from(["h1", "", None]),
                "ip": st.just("10.9.9.9"),
                "format": st.sampled_from(["pgaudit", "MySQL", "json", ""]),
                "endpoint": TEXT,
            },
        ),
    },
    optional={
        "id": TEXT,
        "received": STAMPS,
        "log": st.just("default"),
        "severity": st.sampled_from([*SEVERITIES, ""]),
        "reason": OPTIONAL_TEXT,
        "raw_hash": st.just("ab" * 32),
        "attributes": st.dictionaries(
            st.sampled_from(["role", "privilege", "rule_id", "rule", "title", "rule_title", "n"]), JSON
        ),
        "request": st.none() | st.fixed_dictionaries(
            {},
            optional={
                "method": st.sampled_from(["GET", "DELETE", "post", "PUT", ""]),
                "path": st.sampled_from(["/a", "", "/é?q=1"]),
                "status": st.none() | st.integers(0, 999),
                "bytes": st.integers(0, 2**40),
                "trace_id": st.just("t1"),
                "span_id": st.just("s1"),
            },
        ),
        "target": st.none() | st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["user", "account", "table", "database", "role"]),
                "id": OPTIONAL_TEXT,
                "name": OPTIONAL_TEXT,
            },
        ),
    },
)


def fast_rows(text: bytes, indexes: list[int], log: str) -> list[dict]:
    """The fast path's records (it must be the path taken), in the page's order."""
    msgspec.json.decode(text, type=list[ocsf_arrow.Sealed])
    batches = ocsf_arrow.page_batches(text, indexes, log, ocsf_arrow.Classes())
    return sorted((r for b in batches.values() for r in b.to_pylist()), key=lambda r: r["metadata"]["sequence"])


def plain_rows(text: bytes, indexes: list[int], log: str) -> list[dict]:
    """The straightforward path's records: one to_ocsf dict each, converted by Arrow."""
    batches = ocsf_arrow.record_by_record(msgspec.json.decode(text), indexes, log)
    return sorted((r for b in batches.values() for r in b.to_pylist()), key=lambda r: r["metadata"]["sequence"])


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=1, max_size=16))
def test_fast_rows_equal_plain_rows_for_any_events(batch):
    text = msgspec.json.encode(batch, order="sorted")
    indexes = [i * 7 for i in range(len(batch))]
    assert fast_rows(text, indexes, "default") == plain_rows(text, indexes, "default")


def test_a_page_the_structs_cannot_hold_is_built_record_by_record():
    batch = [make_event(1), {**make_event(2), "extra": {"not": "in the schema"}}, make_event(3, actor={"id": "a", "department": "x"})]
    text = msgspec.json.encode(batch, order="sorted")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(text, type=list[ocsf_arrow.Sealed])
    batches = ocsf_arrow.page_batches(text, [1, 2, 3], "default", ocsf_arrow.Classes())
    plain = ocsf_arrow.record_by_record(msgspec.json.decode(text), [1, 2, 3], "default")
    assert {uid: b.to_pylist() for uid, b in batches.items()} == {uid: b.to_pylist() for uid, b in plain.items()}



def test_a_page_written_over_lines_is_built_record_by_record():
    """Sources and attributes are cut out of the page by newlines, which compact JSON never holds."""
    batch = [make_event(1, attributes={"a": [1, 2]}), make_event(2, source={"component": "web", "kind": "app"})]
    text = b"[" + b",\n".join(msgspec.json.format(msgspec.json.encode(e, order="sorted")) for e in batch) + b"]"
    batches = ocsf_arrow.page_batches(text, [1, 2], "default", ocsf_arrow.Classes())
    plain = ocsf_arrow.record_by_record(msgspec.json.decode(text), [1, 2], "default")
    assert {uid: b.to_pylist() for uid, b in batches.items()} == {uid: b.to_pylist() for uid, b in plain.items()}

UNICODE_VALUES = ["Zoë", "李雷", "😀 emoji", 'quote " and \\ slash', "line\nbreak\ttab", "\u2028sep"]


def every_kind_event(i: int) -> dict:
    """An event of KINDS[i] with every optional field set, unicode values, and some fields left out."""
    event = make_event(i)
    event.update(KINDS[i % len(KINDS)])
    word = UNICODE_VALUES[i % len(UNICODE_VALUES)]
    actor = {**event.get("actor", {}), "name": word, "user_agent": f"agent {word}", "roles": ["admin", word]}
    if i % 5 == 0:
        actor["type"] = "service"
    event["actor"] = actor
    event["reason"] = f"because {word}"
    if i % 3 == 0:
        event["raw_hash"] = f"{i:064x}"
        event["severity"] = SEVERITIES[i % len(SEVERITIES)]
    if i % 4 == 0:
        event["source"] = {**event["source"], "format": "pgaudit", "endpoint": f"ep {word}", "ip": "10.1.1.1"}
    if i % 7 == 0:
        event["target"] = {"type": ("database", "user", "account", "table")[i % 4], "name": word, "id": f"t{i}"}
    if i % 6 == 0:
        event["attributes"] = {"role": word, "rule_id": i, "title": word, "score": 1.5, "nested": {"b": [1, None]}}
    if event.get("request") and i % 2:
        event["request"] = {**event["request"], "bytes": i, "span_id": f"{i:016x}"}
    return {k: v for k, v in event.items() if v is not None}


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """A sealed data dir with every kind of event and optional field, in two logs, one subject erased."""
    directory = trailseal.init(tmp_path_factory.mktemp("ocsf") / "data", origin="test.trailseal")
    with trailseal.open(directory) as trail:
        trail.append([every_kind_event(i) for i in range(0, 300)])
        trail.append([{**every_kind_event(i), "log": "second"} for i in range(300, 360)])
        trail.append([make_event(999, actor={"id": "gone-ë", "ip": "192.0.2.9", "type": "user", "name": "Gone"})])
        trail.erase("gone-ë")
    return directory


original = ocsf_arrow.record_by_record


def expected_rows(trail) -> dict[int, list[dict]]:
    """class_uid -> the straightforward path's rows of every event, in export order."""
    rows: dict[int, list[dict]] = {}
    for page in pages(trail, ""):
        for event in page:
            record = ocsf.to_ocsf(event)
            batch = original([event], [record["metadata"]["sequence"]], event["log"])
            rows.setdefault(record["class_uid"], []).extend(batch[record["class_uid"]].to_pylist())
    return rows


@pytest.mark.parametrize("page", [7, 20_000])
def test_parquet_export_rows_equal_the_straightforward_path(varied, tmp_path, monkeypatch, page):
    monkeypatch.setattr(export, "PARQUET_PAGE", page)
    monkeypatch.setattr(export, "PARQUET_ROWS", 11)
    monkeypatch.setattr(export, "PARQUET_WORKERS", 0)
    plain = []
    monkeypatch.setattr(ocsf_arrow, "record_by_record", lambda *a, **k: plain.append(a) or original(*a, **k))
    with trailseal.open(varied) as trail:
        result = export_to(trail, "", "ocsf-parquet", tmp_path / "lake")
    assert plain == []  # every page went the fast way
    with trailseal.open(varied) as trail:
        expected = expected_rows(trail)
    assert result.rows == sum(map(len, expected.values())) > 361  # with the meta log's events
    assert set(result.classes) == set(ocsf.CLASSES) == set(expected)
    for path in result.files:
        table = pq.read_table(path)
        assert table.to_pylist() == expected[int(path.name.split("_")[0])]


def test_erased_values_stay_erased_in_parquet(varied, tmp_path):
    with trailseal.open(varied) as trail:
        result = export_to(trail, "", "ocsf-parquet", tmp_path / "lake")
    rows = [r for path in result.files for r in pq.read_table(path).to_pylist()]
    gone = [r for r in rows if r["metadata"]["uid"] == "evt-00000999"]
    assert len(gone) == 1
    user = gone[0]["actor"]["user"]
    assert user["uid"].startswith("pd:") and gone[0]["src_endpoint"]["ip"].startswith("pd:")
    assert "gone-ë" not in repr(rows) and "192.0.2.9" not in repr(rows)
    joined = [r for r in rows if r["metadata"]["uid"] == "evt-00000001"]
    assert not joined[0]["actor"]["user"]["uid"].startswith("pd:")  # others' values are joined in


def wait_for_workers(monkeypatch) -> list[int]:
    """Make every page wait for a worker to be up (so workers build pages however slowly they start);
    returns the list the number of each page a worker built gets appended to."""
    from trailseal.query import ocsf_workers

    built: list[int] = []

    def started(self, worker):
        if worker not in self.ready and ocsf_workers.read_frame(self.processes[worker].stdout) == b"":
            self.ready.add(worker)
        return worker in self.ready

    real_result = ocsf_workers.Workers.result

    def result(self, entry, here):
        batches = real_result(self, entry, here)
        if entry[0] is not None and entry[2] is None:
            built.append(entry[0])
        return batches

    monkeypatch.setattr(ocsf_workers.Workers, "started", started)
    monkeypatch.setattr(ocsf_workers.Workers, "result", result)
    return built


def test_pages_built_by_worker_processes_make_the_same_files(varied, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "PARQUET_PAGE", 40)
    monkeypatch.setattr(export, "PARQUET_ROWS", 25)
    by_workers = wait_for_workers(monkeypatch)
    made = {}
    for workers in (0, 2):
        monkeypatch.setattr(export, "PARQUET_WORKERS", workers)
        with trailseal.open(varied) as trail:
            made[workers] = export_to(trail, "", "ocsf-parquet", tmp_path / f"lake-{workers}")
    assert set(by_workers) == {0, 1}  # both workers built pages
    assert made[0].classes == made[2].classes and made[0].rows == made[2].rows > 40 * 2
    for here, there in zip(made[0].files, made[2].files, strict=True):
        assert here.name == there.name
        assert pq.read_table(here).to_pylist() == pq.read_table(there).to_pylist()
        assert pq.ParquetFile(here).metadata.num_row_groups == pq.ParquetFile(there).metadata.num_row_groups


def test_a_worker_that_dies_leaves_its_pages_to_this_process(monkeypatch):
    from trailseal.query import ocsf_workers

    pages = [(msgspec.json.encode([every_kind_event(i)]), [i], "default") for i in range(8)]
    expected = [ocsf_arrow.page_batches(*page, ocsf_arrow.Classes()) for page in pages]
    by_workers = wait_for_workers(monkeypatch)
    real = ocsf_workers.Workers.__init__

    def broken(self, count):  # the second worker dies once up, as a crashed one would
        real(self, count)
        assert self.started(1)
        self.processes[1].kill()
        self.processes[1].wait()

    monkeypatch.setattr(ocsf_workers.Workers, "__init__", broken)
    got = list(ocsf_workers.batches_in_order(pages, workers=2))
    assert [{u: b.to_pylist() for u, b in g.items()} for g in got] == [
        {u: b.to_pylist() for u, b in e.items()} for e in expected
    ]
    assert set(by_workers) == {0}

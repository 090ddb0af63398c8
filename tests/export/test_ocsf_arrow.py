"""The columnar OCSF builder (Parquet exports) gives exactly the records ``ocsf.to_ocsf`` gives."""

from __future__ import annotations

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import rfc8785
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trailseal.event import CATEGORIES, OUTCOMES, SEVERITIES
from trailseal.query import ocsf, ocsf_arrow
from trailseal.query.export import export_to, pages

WORDS = ["user", "login", "db", "http", "role", "grant", "delete", "mfa", "start", "get", "close", "query", "x"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
STAMPS = st.sampled_from(
    [
        "2026-11-01T00:00:00.000000Z",
        "2026-11-01T23:59:59.999999Z",
        "1969-12-31T23:59:59.999500Z",
        "1969-12-31T23:59:59.000000Z",
        "2026-11-01T00:00:00.5+01:00",
    ]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
events = st.fixed_dictionaries(
    {
        "time": STAMPS,
        "category": st.sampled_from(CATEGORIES),
        "outcome": st.sampled_from(OUTCOMES),
        "action": st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(".".join),
        "actor": st.fixed_dictionaries(
            {"id": TEXT},
            optional={
                "ip": st.sampled_from(["10.0.0.1", ""]),
                "session": st.sampled_from(["s1", ""]),
                "name": TEXT,
                "roles": st.lists(TEXT, max_size=2),
                "user_agent": TEXT,
                "type": st.sampled_from(["user", "service", "system", "anonymous"]),
            },
        ),
        "source": st.fixed_dictionaries(
            {"component": st.sampled_from(["web", "pg", ""]), "kind": st.sampled_from(["app", "database"])},
            optional={"host": st.just("h1"), "ip": st.just("10.9.9.9"), "format": st.sampled_from(["pgaudit", "json"])},
        ),
    },
    optional={
        "id": TEXT,
        "received": STAMPS,
        "severity": st.sampled_from(SEVERITIES),
        "reason": TEXT,
        "raw_hash": st.just("ab" * 32),
        "attributes": st.dictionaries(st.sampled_from(["role", "privilege", "rule_id", "title", "n"]), JSON),
        "request": st.fixed_dictionaries(
            {},
            optional={
                "method": st.sampled_from(["GET", "DELETE", "post", ""]),
                "path": st.sampled_from(["/a", ""]),
                "status": st.integers(0, 999),
                "trace_id": st.just("t1"),
            },
        ),
        "target": st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["user", "account", "table", "database"]),
                "id": TEXT,
                "name": TEXT,
            },
        ),
    },
)


def columnar(rows: list[tuple[int, bytes]], log: str) -> list[dict]:
    """Records built by ocsf_arrow, back as Python values, in the rows' order."""
    text = b"[" + b",".join(data for _, data in rows) + b"]"
    batches = ocsf_arrow.page_batches(text, [i for i, _ in rows], log, ocsf_arrow.Classes())
    records = [record for batch in batches.values() for record in batch.to_pylist()]
    return sorted(records, key=lambda r: r["metadata"]["sequence"])


def by_dicts(rows: list[tuple[int, bytes]], log: str) -> list[dict]:
    """The same records the slow way: one ``to_ocsf`` dict each, converted by Arrow."""
    records = []
    for index, data in rows:
        record = ocsf.to_ocsf(msgspec.json.decode(data), log, index)
        schema = ocsf_arrow.arrow_schema(record["class_uid"])
        records += pa.Table.from_pylist([record], schema=schema).to_pylist()
    return records


@settings(max_examples=150, deadline=None)
@given(st.lists(events, min_size=1, max_size=12))
def test_columns_equal_to_ocsf_for_any_events(batch):
    rows = [(i * 3, msgspec.json.encode(event, order="sorted")) for i, event in enumerate(batch)]
    assert columnar(rows, "default") == by_dicts(rows, "default")


@settings(max_examples=150, deadline=None)
@given(st.lists(events, min_size=1, max_size=12))
def test_columns_equal_to_ocsf_for_events_sealed_by_rfc_8785(batch):
    """What the slow sealing path writes (floats outside [1e-4, 1e16), non-ASCII keys) reads the same."""
    try:
        rows = [(i * 3, rfc8785.dumps(event)) for i, event in enumerate(batch)]
    except rfc8785.IntegerDomainError:  # ±2^53: trailseal refuses these before sealing
        assume(False)
    assert columnar(rows, "default") == by_dicts(rows, "default")


def test_parquet_export_equals_to_ocsf_of_every_event(trail, tmp_path):
    result = export_to(trail, "", "ocsf-parquet", tmp_path / "lake")
    expected: dict[int, list[dict]] = {}
    for page in pages(trail, ""):
        for event in page:
            record = ocsf.to_ocsf(event)
            expected.setdefault(record["class_uid"], []).append(record)
    assert sorted(expected) == sorted(result.classes)
    for path in result.files:
        uid = int(path.name.split("_")[0])
        table = pq.read_table(path)
        assert table.to_pylist() == pa.Table.from_pylist(expected[uid], schema=table.schema).to_pylist()


def test_one_class_asked_for_gets_only_its_rows(trail, tmp_path):
    result = export_to(trail, "", "ocsf-parquet", tmp_path / "lake", class_uid=3002)
    assert [p.name for p in result.files] == ["3002_authentication.parquet"]
    table = pq.read_table(result.files[0])
    assert table.num_rows == result.rows > 0 and set(table.column("class_uid").to_pylist()) == {3002}


def test_millis_of_a_column_equals_ocsf_millis():
    stamps = ["1969-12-31T23:59:59.999500Z", "1970-01-01T00:00:00.000999Z", None, "2026-11-27T10:00:00.123456Z"]
    assert ocsf_arrow.millis(pa.array(stamps)).to_pylist() == [ocsf.millis(s) for s in stamps]
    mixed = [*stamps, "2026-11-01T00:00:00.5+01:00"]
    assert ocsf_arrow.millis(pa.array(mixed)).to_pylist() == [ocsf.millis(s) for s in mixed]


@pytest.mark.parametrize(
    "stamps",
    [
        ["2026-11-27T10:00:00.123456Z"] * 3 + ["2026-11-27T10:00:00.12345Z"],  # one digit short
        ["2026-11-27T10:00:00.123456", "Z2026-11-27T10:00:00.123456Z"],  # 26 + 28 bytes: the shape twice over
        ["2026-11-27 10:00:00.123456Z"],  # a space for the T
        ["2026-11-27T10:00:00.12345\u00e9Z"[:27]],  # a letter where a digit goes
        ["2026-11-27T10:00:00.123456Z", "2026-11-27T10:00:00.1234567"],  # 27 characters, no Z
        ["2026-11-27T10:00:00.123456Z", None, "1970-01-01T00:00:00.000000Z"],  # a null: the regex decides
        [f"2026-11-27T10:00:{s:02d}.{s:06d}Z" for s in range(60)],
    ],
)
def test_the_sealed_form_is_told_as_its_regular_expression_tells_it(stamps):
    column = pa.array(stamps, pa.string())
    by_regex = pc.all(pc.match_substring_regex(column, ocsf_arrow._SEALED)).as_py() is not False
    assert ocsf_arrow._all_sealed(column) is by_regex
    expected = [_millis_or_error(s) for s in stamps]
    if "error" in expected:
        with pytest.raises(ValueError):
            ocsf_arrow.millis(column)
    else:
        assert ocsf_arrow.millis(column).to_pylist() == expected


def _millis_or_error(stamp):
    try:
        return ocsf.millis(stamp)
    except ValueError:
        return "error"


def test_columns_of_constants_are_slices_that_cross_ipc_whole():
    from trailseal.query.ocsf_workers import batch_of, ipc_message

    short, long = ocsf_arrow.constant("x", pa.string(), 3), ocsf_arrow.constant("x", pa.string(), 5000)
    assert short.to_pylist() == ["x"] * 3 and long.to_pylist() == ["x"] * 5000
    schema = ocsf_arrow.arrow_schema(3002)
    batch = pa.RecordBatch.from_arrays([ocsf_arrow.constant("x", kind, 3) if pa.types.is_string(kind) else
                                        pa.nulls(3, kind) for kind in schema.types], schema=schema)
    message = ipc_message(batch)
    assert batch_of(3002, message.to_pybytes()).column("class_name").to_pylist() == ["x"] * 3
    assert message.size < 16 * 1024  # the slices, not the arrays they are cut from


def test_vault_values_join_into_a_page_as_join_values_does(monkeypatch):
    import sqlite3

    from trailseal.privacy.vault import VaultRow
    from trailseal.query.export import VaultValues, join_values
    from trailseal.store import sqlite_vault

    known = {f"pd:{i:064x}".encode(): f'v"{i}\u00e9\n' for i in range(6)}
    conn = sqlite3.connect(":memory:")
    sqlite_vault.create(conn)
    sqlite_vault.insert(conn, [VaultRow("s", "default", c.decode(), b"\0" * 32, v, "actor.id", "0" * 64)
                               for c, v in known.items()])
    erased = b"pd:" + b"f" * 64
    commitments = [*known, erased]
    pages = [
        b'{"a":"%s","b":"x %s y","c":"pd:%s"}' % (commitments[i % 7], commitments[(i + 3) % 7], b"e" * 63)
        for i in range(12)
    ]
    monkeypatch.setattr(VaultValues, "CAPACITY", 3)  # the cache is emptied between pages, never within one
    vault = VaultValues()
    for page in pages:
        expected = join_values(page, {c: v for c, v in known.items()})
        assert vault.reveal_text(conn, page) == expected
        assert erased in expected or erased not in page


def test_sources_and_targets_the_typed_structs_cannot_hold_give_the_same_records():
    plain = {
        "time": "2026-11-01T00:00:00.000000Z",
        "category": "data_access",
        "outcome": "success",
        "action": "db.query",
        "actor": {"id": "a"},
        "source": {"component": "pg", "kind": "database"},
        "target": {"type": "database", "id": "shop"},
    }
    odd = [
        {**plain, "target": {"type": "table", "id": None, "name": "orders"}},  # a null: kept in unmapped's JSON
        {**plain, "source": {"component": "pg", "kind": "database", "host": None}},
        {**plain, "source": {"component": "pg", "kind": "database", "zone": "eu"}},  # a key trailseal never seals
        {**plain, "attributes": {"name": None}},  # a null elsewhere only
    ]
    for event in odd:
        rows = [(1, msgspec.json.encode(event, order="sorted")), (2, msgspec.json.encode(plain, order="sorted"))]
        assert columnar(rows, "default") == by_dicts(rows, "default")
    spaced = [(1, msgspec.json.encode(odd[0], order="sorted").replace(b'"id":null', b'"id" : null'))]
    assert columnar(spaced, "default") == by_dicts(spaced, "default")


def test_a_source_is_typed_once_per_distinct_text():
    memo = ocsf_arrow.TextMemo(ocsf_arrow.Source, ocsf_arrow._NO_SOURCE)
    texts = [msgspec.Raw(b'{"component":"web","kind":"app"}'), msgspec.Raw(), msgspec.Raw(b"null"),
             msgspec.Raw(b'{"component":"web","kind":"app"}'), msgspec.Raw(b"{}")]
    typed = memo.typed(texts)
    sources = typed.values
    assert sources[0] is sources[3] and sources[0] == ocsf_arrow.Source("web", "app")
    assert sources[1] is sources[2] is ocsf_arrow._NO_SOURCE and sources[4] == ocsf_arrow.Source()
    assert typed.numbers == [0, 1, 2, 0, 3]  # b"" (none) and b"null" are distinct texts, both typed as none
    assert typed.distinct.values == [ocsf_arrow.Source("web", "app"), ocsf_arrow._NO_SOURCE, ocsf_arrow._NO_SOURCE,
                                     ocsf_arrow.Source()]
    assert typed.distinct.texts == ['{"component":"web","kind":"app"}', None, None, None]
    with pytest.raises(msgspec.ValidationError):
        memo.typed([msgspec.Raw(b'{"component":"web","shoe":1}')])


def test_attribute_texts_are_the_sealed_texts_or_written_again_where_msgspec_differs():
    texts = [b'{"a":1,"b":"x"}', b"", b"null", b"{}", rfc8785.dumps({"big": 1e21, "z\u00e9": 1}),
             rfc8785.dumps({"\u00e9": 1, "\U0001f600": 2, "\uff61": 3})]
    assert ocsf_arrow.attribute_texts([msgspec.Raw(t) for t in texts]).to_pylist() == [
        '{"a":1,"b":"x"}', None, None, None,
        msgspec.json.encode({"big": 1e21, "z\u00e9": 1}, order="sorted").decode(),
        msgspec.json.encode({"\u00e9": 1, "\U0001f600": 2, "\uff61": 3}, order="sorted").decode(),
    ]
    with pytest.raises(msgspec.ValidationError):
        ocsf_arrow.attribute_texts([msgspec.Raw(b"[1]")])


def test_parquet_files_have_zstd_pages_without_dictionaries_and_integer_statistics(trail, tmp_path):
    result = export_to(trail, "", "ocsf-parquet", tmp_path / "lake", class_uid=3002)
    group = pq.ParquetFile(result.files[0]).metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert {column.compression for column in columns.values()} == {"ZSTD"}
    assert not [e for column in columns.values() for e in column.encodings if "DICTIONARY" in e]
    with_statistics = {path for path, column in columns.items() if column.is_stats_set}
    assert {"time", "type_uid", "metadata.sequence", "metadata.logged_time", "actor.user.type_id"} <= with_statistics
    assert not with_statistics & {"metadata.uid", "message", "unmapped.key_value.value", "actor.user.uid"}
    assert columns["time"].statistics.min <= columns["time"].statistics.max


def test_field_values_read_one_field_of_each_row():
    actors = [ocsf_arrow.Actor(id="a", ip="10.0.0.1"), ocsf_arrow.Actor(), ocsf_arrow.Actor(id="b")]
    assert ocsf_arrow.field_values(actors, "id") == ["a", None, "b"]
    assert ocsf_arrow.field_values(actors, "ip") == ["10.0.0.1", None, None]
    assert ocsf_arrow.field_values([], "id") == []


def test_field_values_take_field_names_only():
    for name in ("id; import os", "a.b", "", "x)"):
        with pytest.raises(ValueError):
            ocsf_arrow.field_values([ocsf_arrow.Actor()], name)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=3, max_size=3), max_size=40))
def test_a_map_of_rows_holds_each_rows_values_that_are_not_null_in_column_order(rows):
    columns = {name: pa.array([row[i] for row in rows], pa.string()) for i, name in enumerate("abc")}
    expected = [[(name, row[i]) for i, name in enumerate("abc") if row[i] is not None] for row in rows]
    assert ocsf_arrow.map_of_rows(columns).to_pylist() == expected

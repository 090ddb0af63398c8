"""OCSF records as Arrow columns: the same values as ``ocsf.to_ocsf``, built a class at a time.

For Parquet, building one nested dict per record and handing it to Arrow costs tens of µs an event.
Here each field is one Python list (or one Arrow array shared by the fields that repeat it),
low-cardinality mappings (class, activity, severity, status, user type) are computed once per
distinct value, and timestamps are parsed by Arrow: about half the CPU per event (BENCHMARKS.md).
``tests/export/test_ocsf_arrow.py`` holds the result equal to ``to_ocsf`` for any event.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from trailseal.query import ocsf

_json = msgspec.json.Encoder(order="sorted").encode
_STRING, _INT32, _INT64 = pa.string(), pa.int32(), pa.int64()
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_MEMO_LIMIT = 100_000


class Classes:
    """(class_uid, activity_id) of events, remembered per (category, action, source kind, method)."""

    def __init__(self) -> None:
        self.memo: dict[tuple, tuple[int, int]] = {}

    def of(self, event: dict[str, Any]) -> tuple[int, int]:
        source, request = event.get("source") or {}, event.get("request") or {}
        key = (event.get("category"), event.get("action", ""), source.get("kind"), request.get("method"))
        found = self.memo.get(key)
        if found is None:
            if len(self.memo) > _MEMO_LIMIT:
                self.memo.clear()
            uid = ocsf.class_of(event)
            found = self.memo[key] = (uid, ocsf.activity_of(uid, event))
        return found


def decode_page(
    rows: list[tuple[int, bytes]], reveal: Callable[[bytes], bytes] | None = None
) -> list[dict[str, Any]]:
    """The page's sealed JSON texts decoded in one call (after ``reveal`` joins vault values, if given)."""
    text = b"[" + b",".join(data for _, data in rows) + b"]"
    return msgspec.json.decode(reveal(text) if reveal is not None else text)


def by_class(
    events: list[dict[str, Any]], indexes: list[int], classes: Classes
) -> dict[int, tuple[list[dict[str, Any]], list[int], list[int]]]:
    """class_uid -> (its events, their indexes, their activity ids), in the page's order."""
    groups: dict[int, tuple[list, list, list]] = {}
    for event, position in zip(events, indexes, strict=True):
        uid, activity = classes.of(event)
        group = groups.get(uid)
        if group is None:
            group = groups[uid] = ([], [], [])
        group[0].append(event)
        group[1].append(position)
        group[2].append(activity)
    return groups


def record_batch(
    uid: int, events: list[dict[str, Any]], indexes: list[int], activities: list[int], log: str, schema
) -> pa.RecordBatch:
    """One class's events as a record batch of ``schema`` (export.arrow_schema(uid))."""
    columns = Columns(uid, events, indexes, activities, log)
    return pa.RecordBatch.from_arrays([columns.field(name) for name in schema.names], schema=schema)


class Columns:
    """The fields of one class's records, each built once, on demand."""

    def __init__(self, uid: int, events: list[dict], indexes: list[int], activities: list[int], log: str):
        self.uid, self.events, self.indexes, self.activities, self.log = uid, events, indexes, activities, log
        self.size = len(events)
        self.actors = [e.get("actor") or {} for e in events]
        self.sources = [e.get("source") or {} for e in events]
        self.requests = [e.get("request") or {} for e in events]
        self.strings: dict[str, pa.Array] = {}
        self.extras: list[dict] | None = None

    def field(self, name: str) -> pa.Array:
        """The column ``name`` of the class's schema."""
        builder = getattr(self, "c_" + name, None)
        if builder is not None:
            return builder()
        if self.extras is None:  # the class's own fields: small dicts, converted by Arrow
            self.extras = [ocsf.class_fields(self.uid, e) for e in self.events]
        kind = arrow_type(ocsf.CLASS_SHAPE[self.uid][name])
        return pa.array([extra[name] for extra in self.extras], kind)

    # -- shared arrays of event values -------------------------------------------------------------
    def value(self, name: str) -> pa.Array:
        """A top-level string field of every event (one array, reused by every field that copies it)."""
        if name not in self.strings:
            self.strings[name] = pa.array([e.get(name) for e in self.events], _STRING)
        return self.strings[name]

    def of(self, rows: list[dict], name: str) -> list[Any]:
        return [row.get(name) for row in rows]

    def const(self, value: Any, kind) -> pa.Array:
        return pa.nulls(self.size, kind).fill_null(pa.scalar(value, kind))

    # -- the common fields -------------------------------------------------------------------------
    def c_class_uid(self):
        return self.const(self.uid, _INT32)

    def c_class_name(self):
        return self.const(ocsf.CLASSES[self.uid][0], _STRING)

    def c_category_uid(self):
        return self.const(ocsf.CLASSES[self.uid][1], _INT32)

    def c_category_name(self):
        return self.const(ocsf.CLASSES[self.uid][2], _STRING)

    def c_activity_id(self):
        return pa.array(self.activities, _INT32)

    def c_activity_name(self):
        names = ocsf.ACTIVITY_NAMES[self.uid]
        return pa.array([names.get(a, "Other") for a in self.activities], _STRING)

    def c_type_uid(self):
        return pa.array([self.uid * 100 + a for a in self.activities], _INT64)

    def c_type_name(self):
        names, prefix = ocsf.ACTIVITY_NAMES[self.uid], ocsf.CLASSES[self.uid][0]
        return pa.array([f"{prefix}: {names.get(a, 'Other')}" for a in self.activities], _STRING)

    def c_time(self):
        return millis(self.value("time"))

    def c_severity_id(self):
        return mapped(self.value("severity"), lambda s: _severity(s)[0], _INT32)

    def c_severity(self):
        return mapped(self.value("severity"), lambda s: _severity(s)[1], _STRING)

    def c_status_id(self):
        return mapped(self.value("outcome"), lambda s: _status(s)[0], _INT32)

    def c_status(self):
        return mapped(self.value("outcome"), lambda s: _status(s)[1], _STRING)

    def c_status_detail(self):
        return self.value("reason")

    def c_message(self):
        return self.value("action")

    def c_metadata(self):
        product = ocsf.PRODUCT
        children = {
            "version": self.const(ocsf.OCSF_VERSION, _STRING),
            "uid": self.value("id"),
            "log_name": self.const(self.log, _STRING),
            "sequence": pa.array(self.indexes, _INT64),
            "logged_time": millis(self.value("received")),
            "original_time": self.value("time"),
            "event_code": self.value("action"),
            "log_provider": pa.array(self.of(self.sources, "component"), _STRING),
            "log_format": pa.array(self.of(self.sources, "format"), _STRING),
            "correlation_uid": pa.array(self.of(self.requests, "trace_id"), _STRING),
            "product": struct(
                {key: self.const(product[key], _STRING) for key in ("name", "vendor_name", "version")}
            ),
        }
        return struct(children)

    def c_actor(self):
        sessions = self.of(self.actors, "session")
        return struct(
            {
                "user": self.user(self.actors),
                "session": struct({"uid": pa.array(sessions, _STRING)}, [not s for s in sessions]),
                "app_name": pa.array([s.get("component") or "unknown" for s in self.sources], _STRING),
            }
        )

    def user(self, actors: list[dict]) -> pa.Array:
        kinds = pa.array([a.get("type") for a in actors], _STRING)
        return struct(
            {
                "uid": pa.array(self.of(actors, "id"), _STRING),
                "name": pa.array(self.of(actors, "name"), _STRING),
                "type_id": mapped(kinds, lambda t: _user_type(t)[0], _INT32),
                "type": mapped(kinds, lambda t: _user_type(t)[1], _STRING),
            },
            [not a.get("id") for a in actors],
        )

    def c_src_endpoint(self):
        ips = [a.get("ip") or None for a in self.actors]
        if self.uid in (6003, 6005):
            return struct(
                {"ip": pa.array(ips, _STRING), "name": pa.array([None if i else "unknown" for i in ips], _STRING)}
            )
        return struct(
            {"ip": pa.array(ips, _STRING), "name": pa.nulls(self.size, _STRING)}, [i is None for i in ips]
        )

    def c_dst_endpoint(self):
        hosts, ips = self.of(self.sources, "host"), self.of(self.sources, "ip")
        return struct(
            {
                "hostname": pa.array(hosts, _STRING),
                "ip": pa.array(ips, _STRING),
                "svc_name": pa.array(self.of(self.sources, "component"), _STRING),
            },
            [not (h or i) for h, i in zip(hosts, ips, strict=True)],
        )

    def c_unmapped(self):
        return unmapped(self.events, self.indexes, self.log)


def unmapped(events: list[dict], indexes: list[int], log: str) -> pa.Array:
    """``unmapped`` as map<string, string>: the JSON text of every field with no OCSF home."""
    columns = {
        "trailseal.log": [None if log in (None, {}, []) else _json(log).decode()] * len(events),
        "trailseal.index": [str(i) for i in indexes],
        "category": _texts([e.get("category") for e in events]),
        "source": _texts([e.get("source") for e in events]),
        "target": _texts([e.get("target") for e in events]),
        "attributes": _texts([e.get("attributes") for e in events]),
        "raw_hash": _texts([e.get("raw_hash") for e in events]),
        "actor.roles": _texts([(e.get("actor") or {}).get("roles") for e in events]),
    }
    rows = list(zip(*columns.values(), strict=True))
    items = [text for row in rows for text in row if text is not None]
    names = tuple(columns)
    keys = [name for row in rows for name, text in zip(names, row) if text is not None]  # noqa: B905
    offsets = [0, *accumulate(len(names) - row.count(None) for row in rows)]
    return pa.MapArray.from_arrays(pa.array(offsets, _INT32), pa.array(keys, _STRING), pa.array(items, _STRING))


def _texts(values: list[Any]) -> list[str | None]:
    """Sorted-key JSON text of each value; None where ``to_ocsf`` leaves the key out (None, {}, [])."""
    memo: dict[str, str] = {}
    out: list[str | None] = []
    for value in values:
        if value is None or value == {} or value == []:
            out.append(None)
        elif type(value) is str:
            text = memo.get(value)
            if text is None:
                text = memo[value] = _json(value).decode()
            out.append(text)
        else:
            out.append(_json(value).decode())
    return out


# -- helpers ---------------------------------------------------------------------------------------
def struct(children: dict[str, pa.Array], nulls: list[bool] | None = None) -> pa.StructArray:
    """A struct array of the children; rows where ``nulls`` is true are null."""
    mask = pa.array(nulls, pa.bool_()) if nulls is not None and any(nulls) else None
    return pa.StructArray.from_arrays(list(children.values()), names=list(children), mask=mask)


def mapped(values: pa.Array, function: Callable[[Any], Any], kind) -> pa.Array:
    """``function`` of every value, computed once per distinct value (None included)."""
    encoded = values.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    table = pa.array([function(v) for v in distinct] + [function(None)], kind)
    return table.take(encoded.indices.fill_null(len(distinct)))


def millis(stamps: pa.Array) -> pa.Array:
    """``ocsf.millis`` of every stamp: Arrow parses the sealed form; any other form goes through Python."""
    if len(stamps) and pc.all(pc.match_substring_regex(stamps, _SEALED)).as_py() is not False:
        micros = pc.cast(pc.cast(stamps, _TIMESTAMP), _INT64)
        negative = pc.less(micros, 0)
        if pc.any(negative).as_py():  # floor, as ocsf.millis, before 1970
            micros = pc.subtract(micros, pc.if_else(negative, 999, 0))
        return pc.divide(micros, 1000)
    return pa.array([ocsf.millis(s) for s in stamps.to_pylist()], _INT64)


_SEALED = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


def _severity(value: str | None) -> tuple[int, str]:
    return ocsf.SEVERITY.get(value or "info", ocsf.SEVERITY["info"])


def _status(value: str | None) -> tuple[int, str]:
    return ocsf.STATUS.get(value or "unknown", ocsf.STATUS["unknown"])


def _user_type(value: str | None) -> tuple[int, str]:
    return ocsf.USER_TYPE.get(value or "user", (0, "Unknown"))


def arrow_schema(class_uid: int) -> pa.Schema:
    """The pyarrow schema of a class's records (ocsf.shape)."""
    return pa.schema([pa.field(name, arrow_type(kind)) for name, kind in ocsf.shape(class_uid).items()])


def arrow_type(kind: Any) -> pa.DataType:
    if isinstance(kind, dict):
        return pa.struct([pa.field(name, arrow_type(sub)) for name, sub in kind.items()])
    if isinstance(kind, list):
        return pa.list_(arrow_type(kind[0]))
    if kind == "map":
        return pa.map_(pa.string(), pa.string())
    return {"string": _STRING, "int32": _INT32, "int64": _INT64}[kind]

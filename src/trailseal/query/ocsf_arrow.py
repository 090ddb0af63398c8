"""OCSF records as Arrow record batches, one per class a page holds: the rows ``ocsf.to_ocsf`` gives.

A page of sealed JSON texts is decoded in one msgspec call into typed structs (``Sealed``), split by
class, and each field of a class's records is built as one column: attribute reads into Python lists,
low-cardinality mappings (severity, status, user type) once per distinct value, timestamps and the
``unmapped`` map assembled by Arrow. Three fields stay JSON text: ``source`` and ``target`` are typed
once per distinct text (``TextMemo``), and ``attributes`` go into ``unmapped`` as sealed (compact,
sorted keys: msgspec's text, or RFC 8785's, which is written again where the two may differ). A page
the structs cannot hold exactly (a field the schema does not know, a value of another type, a null in a
source or target, a newline) is built record by record with ``to_ocsf`` instead, so the rows are the
same for any page of sealed entries, and for any other JSON but in the spacing of attributes not
written compact. ``tests/export/test_ocsf_arrow.py`` and
``tests/query/test_ocsf_parquet_equivalence.py`` hold the two paths equal.
"""

from __future__ import annotations

import re
from array import array as packed
from collections.abc import Callable
from itertools import accumulate
from operator import itemgetter
from typing import Any, NamedTuple

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from trailseal.query import ocsf

_json = msgspec.json.Encoder(order="sorted").encode
_raw_items = msgspec.json.Decoder(list[msgspec.Raw]).decode
_STRING, _INT32, _INT64 = pa.string(), pa.int32(), pa.int64()
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_MEMO_LIMIT = 100_000
_LEFT_OUT = pa.array(["null", "{}", "[]"], _STRING)  # to_ocsf's unmapped drops None, {} and []


# -- the sealed event, typed for decoding (every field optional: to_ocsf reads them with .get) -------
class Actor(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: str | None = None
    type: str | None = None
    name: str | None = None
    session: str | None = None
    roles: Any = None
    ip: str | None = None
    user_agent: str | None = None


class Request(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    method: str | None = None
    path: str | None = None
    status: int | None = None
    bytes: Any = None
    trace_id: str | None = None
    span_id: Any = None


class Source(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True, gc=False):
    """``source`` as sealed (``trailseal.event.Source``); frozen: one instance stands for every event with
    the same text (``TextMemo``); without its None fields, its sorted JSON is the sealed dict's."""

    component: str | None = None
    kind: str | None = None
    format: str | None = None
    host: str | None = None
    ip: str | None = None
    endpoint: str | None = None


class Target(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True, gc=False):
    """``target`` as sealed (``trailseal.event.Target``); frozen, shared as ``Source`` is."""

    type: str | None = None
    id: str | None = None
    name: str | None = None


_ABSENT = msgspec.Raw()  # a field the sealed text does not have


class Sealed(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An event as sealed; ``source``, ``target`` and ``attributes`` stay JSON text: a page types each
    distinct source and target once (``TextMemo``), and an event's attributes go in unmapped as their text."""

    time: str | None = None
    category: str | None = None
    action: str | None = None
    outcome: str | None = None
    actor: Actor | None = None
    source: msgspec.Raw = _ABSENT
    id: str | None = None
    received: str | None = None
    log: Any = None
    reason: str | None = None
    severity: str | None = None
    target: msgspec.Raw = _ABSENT
    request: Request | None = None
    attributes: msgspec.Raw = _ABSENT
    raw_hash: Any = None


_NO_ACTOR, _NO_REQUEST, _NO_SOURCE, _NO_TARGET = Actor(), Request(), Source(), Target()
_NO_ATTRIBUTES: dict = {}  # shared by the events without attributes: only read
# a null the typed source or target would not keep (a sealed one has none; the key names may be others')
_PART_NULL = re.compile(rb'"(?:component|kind|format|host|ip|endpoint|type|id|name)"\s*:\s*null')
_decode_sealed = msgspec.json.Decoder(list[Sealed]).decode
_decode_dicts = msgspec.json.Decoder().decode
# attributes whose sealed text msgspec would write otherwise (RFC 8785 sealed it): a non-ASCII key, 1e+21
_REWRITTEN = re.compile(rb"[\x80-\xff]|\de\+")
_ATTRIBUTE_HEADS = pa.array(["", "n", "{"], _STRING)  # absent, null, an object
_NO_ATTRIBUTE_TEXTS = pa.array(["", "null", "{}"], _STRING)  # none (b"" when absent), null, {}


# -- a page ----------------------------------------------------------------------------------------
def page_batches(
    text: bytes, indexes: list[int], log: str, classes: Classes, only: int | None = None
) -> dict[int, pa.RecordBatch]:
    """class_uid -> the record batch of its events, for a page given as one JSON array text (sealed
    entries, vault values joined) and the entries' indexes; ``only`` keeps one class."""
    try:
        if b"\n" in text:  # not compact, as nothing sealed is: sources and attributes are split by newlines
            raise msgspec.ValidationError("a page that is not compact JSON")
        events = _decode_sealed(text)
        sources = classes.sources.typed(field_values(events, "source"))
        targets = classes.targets.typed(field_values(events, "target"))
        rows = Rows(events, indexes, sources.values, sources.numbers, targets.values, targets.numbers,
                    attribute_texts(field_values(events, "attributes")), sources.distinct, targets.distinct)
    except msgspec.ValidationError:
        return record_by_record(_decode_dicts(text), indexes, log, only)
    batches = {}
    for uid, (chosen, activities) in classes.split(events, rows.sources).items():
        if only is None or uid == only:
            batches[uid] = Columns(uid, rows.take(chosen), activities, log).batch()
    return batches


def record_by_record(
    events: list[dict[str, Any]], indexes: list[int], log: str, only: int | None = None
) -> dict[int, pa.RecordBatch]:
    """The straightforward build: one ``to_ocsf`` dict per event, converted by Arrow."""
    records: dict[int, list[dict[str, Any]]] = {}
    for event, position in zip(events, indexes, strict=True):
        record = ocsf.to_ocsf(event, log, position)
        records.setdefault(record["class_uid"], []).append(record)
    return {
        uid: pa.RecordBatch.from_pylist(rows, schema=arrow_schema(uid))
        for uid, rows in records.items()
        if only is None or uid == only
    }


class Distinct(NamedTuple):
    """The distinct sources (or targets) of a page, in order of first sight: typed, and as JSON text."""

    values: list[Any]
    texts: list[str | None]


class Typed(NamedTuple):
    """Each event's typed source (or target), and its number among the page's distinct ones."""

    values: list[Any]
    numbers: list[int]
    distinct: Distinct


class Rows(msgspec.Struct, gc=False):
    """A page's events with what is worked out once per page: each event's typed source and target
    (``_NO_SOURCE``, ``_NO_TARGET`` for none) and its number among the page's distinct ones (whose
    columns are built once, then taken for each event), and its attributes' text (an Arrow array)."""

    events: list[Sealed]
    indexes: list[int]
    sources: list[Source]
    source_numbers: list[int]
    targets: list[Target]
    target_numbers: list[int]
    attributes: pa.StringArray
    distinct_sources: Distinct
    distinct_targets: Distinct

    def take(self, chosen: list[int] | None) -> Rows:
        """The rows at ``chosen`` (None: all of them)."""
        if chosen is None:
            return self
        pick = itemgetter(*chosen) if len(chosen) > 1 else lambda rows: (rows[chosen[0]],)
        lists = (self.events, self.indexes, self.sources, self.source_numbers, self.targets, self.target_numbers)
        return Rows(*(list(pick(rows)) for rows in lists), self.attributes.take(pa.array(chosen, _INT32)),
                    self.distinct_sources, self.distinct_targets)


class TextMemo:
    """The typed value (``empty`` for none) and the JSON text (null for none, null or {}) of each distinct
    JSON text of one struct type: sources and targets, a few hundred distinct ones a page."""

    def __init__(self, kind: type, empty: Any) -> None:
        self.decode = msgspec.json.Decoder(kind | None).decode
        self.empty = empty
        self.known: dict[bytes, tuple[Any, str | None]] = {}

    def typed(self, texts: list[msgspec.Raw]) -> Typed:
        """Each event's typed value and its number among the distinct texts; raises ValidationError for
        one the type cannot hold."""
        keys = _texts_of(texts)
        found = list(map(self.known.get, keys))
        if None in found:
            if len(self.known) > _MEMO_LIMIT:
                self.known.clear()
            found = [pair or self.known.get(key) or self.learn(key) for pair, key in zip(found, keys, strict=True)]
        first = dict(zip(keys, found, strict=True))  # each distinct text's pair, in order of first sight
        numbers = {key: number for number, key in enumerate(first)}
        distinct = Distinct([value for value, _ in first.values()], [text for _, text in first.values()])
        return Typed([value for value, _ in found], list(map(numbers.__getitem__, keys)), distinct)

    def learn(self, key: bytes) -> tuple[Any, str | None]:
        if b"null" in key and _PART_NULL.search(key):  # the typed value would drop it: the text would differ
            raise msgspec.ValidationError("a null in source or target")
        value = self.decode(key) if key else None  # b"": the event has no such field
        text = None if value is None else _json(value).decode()
        found = self.known[key] = (self.empty if value is None else value, None if text == "{}" else text)
        return found


def attribute_texts(texts: list[msgspec.Raw]) -> pa.StringArray:
    """Each event's attributes as sorted-key JSON text (null for none, null or {}): the sealed text itself
    where msgspec would write it the same, which is everywhere but non-ASCII keys (RFC 8785 orders them by
    UTF-16) and exponents of 1e21 and over (``1e+21``), conservatively spotted; those are written again.
    Raises ValidationError where attributes are not an object."""
    joined = b"".join(texts)
    if joined.isascii() and b"e+" not in joined:  # most pages: every text as it is, in one buffer
        lengths = pa.array(list(map(len, texts)), _INT32)
        offsets = pa.concat_arrays([pa.array([0], _INT32), pc.cumulative_sum(lengths)])
        array = pa.StringArray.from_buffers(len(texts), offsets.buffers()[1], pa.py_buffer(joined))
        heads = pc.utf8_slice_codeunits(array, 0, 1)
    else:
        rows = _texts_of(texts)
        array = pa.array([_json(_decode_dicts(t)) if _REWRITTEN.search(t) else t for t in rows], _STRING)
        heads = pa.array([t[:1] for t in rows], _STRING)
    if not pc.all(pc.is_in(heads, value_set=_ATTRIBUTE_HEADS)).as_py():
        raise msgspec.ValidationError("attributes that are not an object")
    return pc.if_else(pc.is_in(array, value_set=_NO_ATTRIBUTE_TEXTS), pa.scalar(None, _STRING), array)


def _texts_of(raws: list[msgspec.Raw]) -> list[bytes]:
    """The bytes of each compact JSON text (one join and split: faster than ``bytes()`` of each)."""
    return b"\n".join(raws).split(b"\n") if raws else []


class Classes:
    """(class_uid, activity_id) of events, remembered per (category, action, source kind, method); and
    the typed sources and targets of the pages seen (``TextMemo``)."""

    def __init__(self) -> None:
        self.memo: dict[tuple, tuple[int, int]] = {}
        self.sources, self.targets = TextMemo(Source, _NO_SOURCE), TextMemo(Target, _NO_TARGET)

    def split(self, events: list[Sealed], sources: list[Source]) -> dict[int, tuple[list[int] | None, list[int]]]:
        """class_uid -> (the rows of its events, None for all, in the page's order; their activity ids)."""
        methods = field_values([e.request or _NO_REQUEST for e in events], "method")
        keys = list(zip(field_values(events, "category"), field_values(events, "action"),
                        field_values(sources, "kind"), methods, strict=True))
        pairs = list(map(self.memo.get, keys))
        if None in pairs:
            pairs = [pair or self.memo.get(key) or self.learn(key) for pair, key in zip(pairs, keys, strict=True)]
        uids = [uid for uid, _ in pairs]
        activities = [activity for _, activity in pairs]
        distinct = set(uids)
        if len(distinct) == 1:
            return {distinct.pop(): (None, activities)}
        order = sorted(range(len(uids)), key=uids.__getitem__)  # stable: each class's rows stay in order
        classes, start = {}, 0
        for uid in sorted(distinct):
            end = start + uids.count(uid)
            chosen = order[start:end]
            classes[uid] = (chosen, [activities[i] for i in chosen])
            start = end
        return classes

    def learn(self, key: tuple) -> tuple[int, int]:
        if len(self.memo) > _MEMO_LIMIT:
            self.memo.clear()
        category, action, kind, method = key
        event = {"category": category, "source": {"kind": kind}, "request": {"method": method}}
        if action is not None:
            event["action"] = action
        uid = ocsf.class_of(event)
        found = self.memo[key] = (uid, ocsf.activity_of(uid, event))
        return found


# -- one class's columns ---------------------------------------------------------------------------
class Columns:
    """The fields of one class's records, each built once, from the events' attributes."""

    def __init__(self, uid: int, rows: Rows, activities: list[int], log: str):
        self.uid, self.rows, self.activities, self.log = uid, rows, activities, log
        self.events, self.indexes, self.sources, self.targets = rows.events, rows.indexes, rows.sources, rows.targets
        self.size = len(self.events)
        self.actors = [e.actor or _NO_ACTOR for e in self.events]
        self.requests = [e.request or _NO_REQUEST for e in self.events]
        self.arrays: dict[str, pa.Array] = {}
        self.encodings: dict[int, tuple[pa.Array, list[Any], pa.Array]] = {}  # id(array) -> see mapped()

    @property
    def attributes(self) -> list[dict[str, Any]]:
        """Each event's attributes as a dict (read by a few classes' fields only)."""
        texts = field_values(self.events, "attributes")
        return [(_decode_dicts(text) if text else None) or _NO_ATTRIBUTES for text in texts]

    def batch(self) -> pa.RecordBatch:
        schema = arrow_schema(self.uid)
        return pa.RecordBatch.from_arrays([getattr(self, "c_" + name)() for name in schema.names], schema=schema)

    # -- shared arrays of values -------------------------------------------------------------------
    def strings(self, where: str, name: str) -> pa.Array:
        """A string field of every event's ``where`` ("event", "actor", "request", "source", "target"),
        one array reused by every column that copies it."""
        key = f"{where}.{name}"
        if key not in self.arrays:
            if where in ("source", "target"):
                distinct = self.rows.distinct_sources if where == "source" else self.rows.distinct_targets
                self.arrays[key] = self.by_number(where, pa.array(field_values(distinct.values, name), _STRING))
            else:
                self.arrays[key] = pa.array(self.values(where, name), _STRING)
        return self.arrays[key]

    def by_number(self, where: str, distinct: pa.Array) -> pa.Array:
        """Each event's value of a column of the page's distinct sources (or targets)."""
        key = f"{where} numbers"
        if key not in self.arrays:
            numbers = self.rows.source_numbers if where == "source" else self.rows.target_numbers
            self.arrays[key] = pa.array(numbers, _INT32)
        return distinct.take(self.arrays[key])

    def values(self, where: str, name: str) -> list[Any]:
        rows = {
            "event": self.events,
            "actor": self.actors,
            "request": self.requests,
            "source": self.sources,
            "target": self.targets,
        }[where]
        return field_values(rows, name)

    def const(self, value: Any, kind) -> pa.Array:
        return constant(value, kind, self.size)

    def mapped(self, values: pa.Array, function: Callable[[Any], Any], kind) -> pa.Array:
        """``function`` of every value, computed once per distinct value (None included); the distinct
        values of an array are found once for all the columns mapped from it (a code and its name)."""
        found = self.encodings.get(id(values))
        if found is None or found[0] is not values:
            encoded = values.dictionary_encode()
            distinct = encoded.dictionary.to_pylist()
            found = self.encodings[id(values)] = (values, distinct, encoded.indices.fill_null(len(distinct)))
        _, distinct, positions = found
        return pa.array([function(v) for v in distinct] + [function(None)], kind).take(positions)

    def one_each(self, values: pa.Array, nulls: list[bool] | None = None) -> pa.ListArray:
        """A list column holding one of ``values`` a row; rows where ``nulls`` is true are null and
        have no value in ``values``."""
        if nulls is None or not any(nulls):
            return pa.ListArray.from_arrays(pa.array(range(self.size + 1), _INT32), values)
        offsets = pa.array(list(accumulate((not n for n in nulls), initial=0)), _INT32)
        return pa.ListArray.from_arrays(offsets, values, mask=pa.array(nulls, pa.bool_()))

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
        if "activity_id" not in self.arrays:
            self.arrays["activity_id"] = pa.array(self.activities, _INT32)
        return self.arrays["activity_id"]

    def sequences(self) -> pa.Array:
        """The entries' indexes (``metadata.sequence``, and ``trailseal.index`` in unmapped)."""
        if "sequence" not in self.arrays:
            self.arrays["sequence"] = pa.array(self.indexes, _INT64)
        return self.arrays["sequence"]

    def c_activity_name(self):
        names = ocsf.ACTIVITY_NAMES[self.uid]
        return self.mapped(self.c_activity_id(), lambda a: names.get(a, "Other"), _STRING)

    def c_type_uid(self):
        return pc.add(pc.cast(self.c_activity_id(), _INT64), self.uid * 100)

    def c_type_name(self):
        names, prefix = ocsf.ACTIVITY_NAMES[self.uid], ocsf.CLASSES[self.uid][0]
        return self.mapped(self.c_activity_id(), lambda a: f"{prefix}: {names.get(a, 'Other')}", _STRING)

    def c_time(self):
        return millis(self.strings("event", "time"))

    def c_severity_id(self):
        return self.mapped(self.strings("event", "severity"), lambda s: _severity(s)[0], _INT32)

    def c_severity(self):
        return self.mapped(self.strings("event", "severity"), lambda s: _severity(s)[1], _STRING)

    def c_status_id(self):
        return self.mapped(self.strings("event", "outcome"), lambda s: _status(s)[0], _INT32)

    def c_status(self):
        return self.mapped(self.strings("event", "outcome"), lambda s: _status(s)[1], _STRING)

    def c_status_detail(self):
        return self.strings("event", "reason")

    def c_message(self):
        return self.strings("event", "action")

    def c_metadata(self):
        product = ocsf.PRODUCT
        return struct(
            {
                "version": self.const(ocsf.OCSF_VERSION, _STRING),
                "uid": self.strings("event", "id"),
                "log_name": self.const(self.log, _STRING),
                "sequence": self.sequences(),
                "logged_time": millis(self.strings("event", "received")),
                "original_time": self.strings("event", "time"),
                "event_code": self.strings("event", "action"),
                "log_provider": self.strings("source", "component"),
                "log_format": self.strings("source", "format"),
                "correlation_uid": self.strings("request", "trace_id"),
                "product": struct(
                    {key: self.const(product[key], _STRING) for key in ("name", "vendor_name", "version")}
                ),
            }
        )

    def c_actor(self):
        return struct(
            {
                "user": self.actor_user(),
                "session": self.session(),
                "app_name": self.app_name(),
            }
        )

    def actor_user(self) -> pa.Array:
        """``actor.user``: null where the actor has no id."""
        kinds = self.strings("actor", "type")
        return struct(
            {
                "uid": self.strings("actor", "id"),
                "name": self.strings("actor", "name"),
                "type_id": self.mapped(kinds, lambda t: _user_type(t)[0], _INT32),
                "type": self.mapped(kinds, lambda t: _user_type(t)[1], _STRING),
            },
            falsy(self.strings("actor", "id")),
        )

    def session(self) -> pa.Array:
        sessions = self.strings("actor", "session")
        return struct({"uid": sessions}, falsy(sessions))

    def app_name(self) -> pa.Array:
        components = self.strings("source", "component")
        return pc.if_else(falsy(components), pa.scalar("unknown", _STRING), components)

    def c_src_endpoint(self):
        given = self.strings("actor", "ip")
        none = falsy(given)
        ips = pc.if_else(none, pa.scalar(None, _STRING), given)
        if self.uid in (6003, 6005):
            names = pc.if_else(none, pa.scalar("unknown", _STRING), pa.scalar(None, _STRING))
            return struct({"ip": ips, "name": names})
        return struct({"ip": ips, "name": self.const(None, _STRING)}, none)

    def c_dst_endpoint(self):
        hosts, ips = self.strings("source", "host"), self.strings("source", "ip")
        return struct(
            {"hostname": hosts, "ip": ips, "svc_name": self.strings("source", "component")},
            pc.and_(falsy(hosts), falsy(ips)),
        )

    def c_unmapped(self):
        log = None if self.log in (None, {}, []) else _json(self.log).decode()
        return map_of_rows(
            {
                "trailseal.log": self.const(log, _STRING),
                "trailseal.index": pc.cast(self.sequences(), _STRING),
                "category": self.mapped(self.strings("event", "category"), _text_or_none, _STRING),
                "source": self.by_number("source", pa.array(self.rows.distinct_sources.texts, _STRING)),
                "target": self.by_number("target", pa.array(self.rows.distinct_targets.texts, _STRING)),
                "attributes": self.rows.attributes,
                "raw_hash": json_texts(self.values("event", "raw_hash")),
                "actor.roles": json_texts(self.values("actor", "roles")),
            }
        )

    # -- the class fields (ocsf.CLASS_SHAPE) -------------------------------------------------------
    def c_user(self):
        """``_target_user``: the target when it is a user or account with an id, else the actor, else unknown."""
        chosen = [t.type in ("user", "account") and bool(t.id) for t in self.targets]
        rows = list(zip(chosen, self.targets, self.actors, strict=True))
        by_target, by_actor = pa.array(chosen, pa.bool_()), pa.array([bool(a.id) for a in self.actors], pa.bool_())
        kinds = self.strings("actor", "type")
        return struct(
            {
                "uid": pa.array([t.id if c else a.id or "unknown" for c, t, a in rows], _STRING),
                "name": pa.array([t.name if c else a.name if a.id else None for c, t, a in rows], _STRING),
                "type_id": choose(
                    by_target, 1, by_actor, self.mapped(kinds, lambda t: _user_type(t)[0], _INT32), 0, _INT32
                ),
                "type": choose(
                    by_target, "User", by_actor, self.mapped(kinds, lambda t: _user_type(t)[1], _STRING), "Unknown", _STRING
                ),
            }
        )

    def c_session(self):
        return self.session()

    def c_http_request(self):
        methods, paths = self.strings("request", "method"), self.strings("request", "path")
        agents = self.strings("actor", "user_agent")
        no_path = falsy(paths)
        return struct(
            {"http_method": methods, "url": struct({"path": paths}, no_path), "user_agent": agents},
            pc.and_(pc.and_(falsy(methods), no_path), falsy(agents)),
        )

    def c_http_response(self):
        statuses = pa.array(self.values("request", "status"), _INT32)
        return struct({"code": statuses}, pc.is_null(statuses))

    def c_privileges(self):
        names = [
            str(at.get("role") or at.get("privilege") or t.name or t.id or e.action)
            for at, t, e in zip(self.attributes, self.targets, self.events, strict=True)
        ]
        return self.one_each(pa.array(names, _STRING))

    def c_web_resources(self):
        names = [
            r.path or t.name or t.id or e.action
            for r, t, e in zip(self.requests, self.targets, self.events, strict=True)
        ]
        resource = struct(
            {"name": pa.array(names, _STRING), "uid": self.strings("target", "id"), "type": self.strings("target", "type")}
        )
        return self.one_each(resource)

    def c_app(self):
        return struct(
            {"name": self.app_name(), "vendor_name": self.const(None, _STRING), "version": self.const(None, _STRING)}
        )

    def c_api(self):
        components = self.strings("source", "component")
        service = struct({"name": components}, falsy(components))
        return struct({"operation": self.strings("event", "action"), "service": service})

    def c_resources(self):
        kept = [t for t in self.targets if t.id or t.name]
        resource = struct({name: pa.array(field_values(kept, key), _STRING) for name, key in _RESOURCE})
        return self.one_each(resource, [not (t.id or t.name) for t in self.targets])

    def c_table(self):
        names = [t.name or t.id if t.type == "table" else None for t in self.targets]
        return struct({"name": pa.array(names, _STRING)}, [not n for n in names])

    def c_database(self):
        kept = [t.type == "database" and bool(t.id or t.name) for t in self.targets]
        relational = [(s.format or "").lower() in ocsf.RELATIONAL for s in self.sources]
        return struct(
            {
                "name": pa.array(
                    [t.name or t.id if k else None for t, k in zip(self.targets, kept, strict=True)],
                    _STRING,
                ),
                "type_id": pa.array([1 if r else 99 for r in relational], _INT32),
                "type": pa.array(["Relational" if r else "Other" for r in relational], _STRING),
            },
            [not k for k in kept],
        )

    def c_finding_info(self):
        rows = list(zip(self.attributes, self.events, strict=True))
        return struct(
            {
                "uid": pa.array([str(e.id) for e in self.events], _STRING),
                "title": pa.array([str(at.get("title") or at.get("rule_title") or e.action) for at, e in rows], _STRING),
                "desc": self.strings("event", "reason"),
                "types": self.one_each(
                    pa.array([str(at.get("rule_id") or at.get("rule") or e.action) for at, e in rows], _STRING)
                ),
            }
        )


# -- helpers ---------------------------------------------------------------------------------------
_FIELD_VALUES: dict[str, Callable[[list], list]] = {}


def field_values(rows: list[Any], name: str) -> list[Any]:
    """``[row.<name> for row in rows]``, compiled once per name: the interpreter's specialized
    attribute reads cost about half the instructions of ``map(attrgetter(name), rows)``."""
    values = _FIELD_VALUES.get(name)
    if values is None:
        if not name.isidentifier():
            raise ValueError(f"not a field name: {name!r}")
        values = _FIELD_VALUES[name] = eval(f"lambda rows: [row.{name} for row in rows]")  # a field name only
    return values(rows)


def struct(children: dict[str, pa.Array], nulls: list[bool] | pa.BooleanArray | None = None) -> pa.StructArray:
    """A struct array of the children; rows where ``nulls`` is true are null."""
    if isinstance(nulls, list):
        nulls = pa.array(nulls, pa.bool_()) if any(nulls) else None
    mask = nulls if nulls is not None and nulls.true_count else None
    return pa.StructArray.from_arrays(list(children.values()), names=list(children), mask=mask)


def falsy(values: pa.Array) -> pa.BooleanArray:
    """Where a string column's Python value is false: null or empty (never null itself)."""
    return pc.or_kleene(pc.is_null(values), pc.equal(values, ""))


_CONSTANTS: dict[tuple[Any, pa.DataType], pa.Array] = {}


def constant(value: Any, kind: pa.DataType, size: int) -> pa.Array:
    """``size`` rows of ``value``: a slice of one array kept per (value, type), made again only to grow
    (a column of constants costs a slice, not a fill, per batch)."""
    array = _CONSTANTS.get((value, kind))
    if array is None or len(array) < size:
        if len(_CONSTANTS) > 1024:
            _CONSTANTS.clear()
        array = pa.nulls(max(size, 1024), kind).fill_null(pa.scalar(value, kind))
        _CONSTANTS[(value, kind)] = array
    return array.slice(0, size)


def json_texts(values: list[Any]) -> pa.StringArray:
    """Sorted-key JSON text of each value, all encoded in one call; null where the value is None, {} or []."""
    if values.count(None) == len(values):
        return pa.nulls(len(values), _STRING)
    data = _json(values)  # b"[text,text,...]": each text ends one byte before the next begins
    lengths = pc.add(pa.array(list(map(len, _raw_items(data))), _INT32), 1)
    starts = pa.concat_arrays([pa.array([1], _INT32), pc.cast(pc.add(pc.cumulative_sum(lengths), 1), _INT32)])
    joined = pa.StringArray.from_buffers(len(values), starts.buffers()[1], pa.py_buffer(data))
    texts = pc.utf8_slice_codeunits(joined, 0, -1)  # each text without the "," or "]" after it
    return pc.if_else(pc.is_in(texts, value_set=_LEFT_OUT), pa.scalar(None, _STRING), texts)


def map_of_rows(columns: dict[str, pa.Array]) -> pa.MapArray:
    """map<string, string> whose row i holds (name, column[i]) for each column not null at i, in order."""
    size = len(next(iter(columns.values())))
    columns = {name: array for name, array in columns.items() if array.null_count < size}  # no empty columns
    arrays = list(columns.values())
    width = len(arrays)
    if not width:  # every row empty
        nothing = pa.array([], _STRING)
        return pa.MapArray.from_arrays(constant(0, _INT32, size + 1), nothing, nothing)
    numbers, rows, row_ends = _grid(width, size)
    items = pa.concat_arrays(arrays).take(pc.add(pc.multiply(numbers, size), rows))  # row by row
    keys = pa.array(list(columns), _STRING).take(numbers)
    present = items.is_valid()
    kept = pc.cumulative_sum(pc.cast(present, _INT32))  # items kept up to each cell, row by row
    offsets = pa.concat_arrays([pa.array([0], _INT32), kept.take(row_ends)])
    return pa.MapArray.from_arrays(offsets, keys.filter(present), items.filter(present))


_GRIDS: dict[int, tuple[pa.Array, pa.Array, pa.Array]] = {}


def _grid(width: int, size: int) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(0, 1, .., width-1, 0, 1, ..) and (0 width times, 1 width times, ..) for ``size`` rows: the
    column and row of each cell of a row-major grid; and the last cell of each row (width-1, 2*width-1,
    ..). Slices of arrays kept for the largest size yet."""
    empty = pa.array([], _INT64)
    numbers, rows, row_ends = _GRIDS.get(width, (empty, empty, empty))
    if len(row_ends) < size:
        capacity = max(size, 2 * len(row_ends), 1024)
        numbers = pa.array(list(range(width)) * capacity, _INT64)
        rows = pa.array([row for row in range(capacity) for _ in range(width)], _INT64)
        row_ends = pa.array(range(width - 1, width * capacity, width), _INT64)
        _GRIDS[width] = numbers, rows, row_ends
    return numbers.slice(0, width * size), rows.slice(0, width * size), row_ends.slice(0, size)


def choose(first: pa.Array, a: Any, second: pa.Array, b: pa.Array, c: Any, kind) -> pa.Array:
    """``a`` where ``first``, else ``b`` where ``second``, else ``c``."""
    return pc.if_else(first, pa.scalar(a, kind), pc.if_else(second, b, pa.scalar(c, kind)))


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _json(value).decode()


def millis(stamps: pa.Array) -> pa.Array:
    """``ocsf.millis`` of every stamp, worked out once per distinct stamp when they repeat (``received``:
    one per batch ingested; a sample of the first rows tells, before any hashing, when they do not)."""
    if _may_repeat(stamps):
        encoded = stamps.dictionary_encode()
        if 2 * len(encoded.dictionary) < len(stamps):
            return _millis(encoded.dictionary).take(encoded.indices)
    return _millis(stamps)


def _may_repeat(stamps: pa.Array) -> bool:
    """Whether a quarter or more of the first 64 stamps repeat one before them."""
    sample = stamps.slice(0, 64).to_pylist()
    return 4 * len(set(sample)) < 3 * len(sample)


def _millis(stamps: pa.Array) -> pa.Array:
    """Arrow parses the sealed form; any other form goes through Python."""
    if len(stamps) and _all_sealed(stamps):
        micros = pc.cast(pc.cast(stamps, _TIMESTAMP), _INT64)
        negative = pc.less(micros, 0)
        if pc.any(negative).as_py():  # floor, as ocsf.millis, before 1970
            micros = pc.subtract(micros, pc.if_else(negative, 999, 0))
        return pc.divide(micros, 1000)
    return pa.array([ocsf.millis(s) for s in stamps.to_pylist()], _INT64)


def _all_sealed(stamps: pa.StringArray) -> bool:
    """Whether every stamp not null has the sealed form YYYY-MM-DDTHH:MM:SS.ffffffZ (``_SEALED``). Without
    nulls, read off the array's buffers: offsets 27 bytes apart, and the bytes, digits zeroed, the
    form's shape again and again (a regular expression costs ten times more per stamp)."""
    size = len(stamps)
    if stamps.null_count or stamps.offset or pa.types.is_large_string(stamps.type):
        return pc.all(pc.match_substring_regex(stamps, _SEALED)).as_py() is not False
    _, offsets, data = stamps.buffers()
    steps = _SEALED_STEPS[0]
    if len(steps) < 4 * (size + 1):
        steps = _SEALED_STEPS[0] = packed("i", range(0, 27 * (2 * size + 1), 27)).tobytes()
    if offsets.to_pybytes()[: 4 * (size + 1)] != steps[: 4 * (size + 1)] or data is None:
        return False
    return data.to_pybytes()[: 27 * size].translate(_ZEROED) == _SEALED_SHAPE * size


_RESOURCE = (("uid", "id"), ("name", "name"), ("type", "type"))
_SEALED = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
_SEALED_SHAPE = b"0000-00-00T00:00:00.000000Z"  # _SEALED with every digit 0
_ZEROED = bytes.maketrans(b"123456789", b"000000000")
_SEALED_STEPS = [packed("i").tobytes()]  # int32 offsets 0, 27, 54, ... (little-endian, as Arrow's), grown


def _severity(value: str | None) -> tuple[int, str]:
    return ocsf.SEVERITY.get(value or "info", ocsf.SEVERITY["info"])


def _status(value: str | None) -> tuple[int, str]:
    return ocsf.STATUS.get(value or "unknown", ocsf.STATUS["unknown"])


def _user_type(value: str | None) -> tuple[int, str]:
    return ocsf.USER_TYPE.get(value or "user", (0, "Unknown"))


_SCHEMAS: dict[int, pa.Schema] = {}


def arrow_schema(class_uid: int) -> pa.Schema:
    """The pyarrow schema of a class's records (ocsf.shape)."""
    if class_uid not in _SCHEMAS:
        _SCHEMAS[class_uid] = pa.schema(
            [pa.field(name, arrow_type(kind)) for name, kind in ocsf.shape(class_uid).items()]
        )
    return _SCHEMAS[class_uid]


def parquet_options(class_uid: int) -> dict[str, Any]:
    """How a class's file is written: zstd pages without dictionaries (the repeated strings compress
    as well or better, and cost less to write), min/max statistics for the integer columns only (times,
    ids, codes: what readers prune row groups by; strings' statistics cost more than they help)."""
    return {
        "compression": "zstd",
        "use_dictionary": False,
        "write_statistics": integer_columns(arrow_schema(class_uid)),
    }


def integer_columns(schema: pa.Schema) -> list[str]:
    """Dotted paths of the integer leaves outside lists (``time``, ``metadata.sequence``, ...)."""
    paths = []
    pending = [(field.name, field.type) for field in schema]
    while pending:
        path, kind = pending.pop(0)
        if pa.types.is_struct(kind):
            pending.extend((f"{path}.{field.name}", field.type) for field in kind)
        elif pa.types.is_integer(kind):
            paths.append(path)
    return paths


def arrow_type(kind: Any) -> pa.DataType:
    if isinstance(kind, dict):
        return pa.struct([pa.field(name, arrow_type(sub)) for name, sub in kind.items()])
    if isinstance(kind, list):
        return pa.list_(arrow_type(kind[0]))
    if kind == "map":
        return pa.map_(pa.string(), pa.string())
    return {"string": _STRING, "int32": _INT32, "int64": _INT64}[kind]

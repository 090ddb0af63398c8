"""Run queries on the SQLite store: the AST compiled to indexed, parameterized SQL.

Indexed columns of ``entries`` (time, category, action, outcome, actor_id, id, log) are compared
directly so SQLite can use its indexes (a wildcard with a literal prefix becomes a range); an actor
is found through ``entries_actor`` (kept by index.py, off the write path); free text goes through
``entries_fts``, ``actor.ip`` ranges through ``entries_ip``, session and trace through expression
indexes (see ``index.py``), everything else through ``json_extract``/``json_each``.
Values are always bound parameters. Results are newest first by time, then by commit order (the
log index within a log); pages continue from an opaque cursor, so they stay stable as events arrive.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import msgspec

from trailseal.event import format_time
from trailseal.query import index
from trailseal.query.language import (
    INT_FIELDS,
    IP_FIELDS,
    STRING_FIELDS,
    And,
    Node,
    Not,
    Or,
    QueryError,
    Term,
    Text,
    TimeBound,
    format,
    parse,
    parse_ip,
    parse_number,
    resolve_time,
    text_tokens,
)
from trailseal.store.base import on_postgres
from trailseal.store.readers import SPLIT_ABOVE, Readers

COLUMNS = {"id": "e.id", "time": "e.time", "received": "e.received", "log": "e.log",
           "category": "e.category", "action": "e.action", "outcome": "e.outcome", "actor.id": "e.actor_id"}
# Must be spelled exactly as in index.SCHEMA for SQLite to use the expression indexes.
INDEXED_EXPRESSIONS = {"actor.session": "json_extract(e.data, '$.actor.session')",
                       "request.trace_id": "json_extract(e.data, '$.request.trace_id')"}
TIMELINE_KEYS = {"actor": "actor.id", "session": "actor.session", "trace": "request.trace_id"}
MAX_LIMIT = 10_000
_decode = msgspec.json.Decoder().decode


@dataclass
class Page:
    """One page of results, newest first; ``next_cursor`` is None on the last page."""

    events: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


# -- compiling -------------------------------------------------------------------------------------
def to_sql(node: Node, now: datetime, *, probe: frozenset[int] = frozenset(), skip: Node | None = None,
           window: tuple[int, int] | None = None) -> tuple[str, list[Any]]:
    """A WHERE expression over ``entries e`` and its parameters.

    Free text and ``actor.ip`` leaves are tested as a set (built once per statement), except the
    leaves whose id() is in ``probe``: those are tested row by row. With a ``window`` (the seq range
    of the rows a statement can reach) free-text sets are built only for that range and IP leaves
    are tested row by row. ``skip`` is a leaf a join already enforces.
    """
    compiler = _Compiler(now, probe, skip, window)
    return compiler.node(node, False), compiler.params


class BooleanCompiler(ABC):
    """The query tree as one SQL boolean expression over ``entries e``, for one SQL dialect: negations
    pushed to the leaves (De Morgan), where NULL-safe NOT keeps SQL two-valued. Subclasses say how a
    value is bound and how a time bound, a free-text leaf and a term read."""

    TRUE, FALSE = "1", "0"
    skip: Node | None = None  # a leaf the driving index already guarantees

    def __init__(self, now: datetime):
        self.now = now
        self.params: list[Any] = []

    @abstractmethod
    def bind(self, value: Any) -> str:
        """Add a parameter; its placeholder."""

    @abstractmethod
    def time_bound(self, node: TimeBound) -> str:
        """since: / until: on the event time."""

    @abstractmethod
    def text(self, node: Text) -> str:
        """A free-text phrase."""

    @abstractmethod
    def term(self, term: Term) -> str:
        """field:value."""

    def node(self, node: Node, negated: bool) -> str:
        if node is self.skip:
            return self.TRUE
        if isinstance(node, Not):
            return self.node(node.item, not negated)
        if isinstance(node, And | Or):
            return self.group(node, negated)
        sql = self.leaf(node)
        return f"NOT coalesce(({sql}), {self.FALSE})" if negated else sql

    def group(self, node: And | Or, negated: bool) -> str:
        conjunction = isinstance(node, And) != negated
        if not node.items:
            return self.TRUE if conjunction else self.FALSE
        parts = [self.node(item, negated) for item in node.items]
        return "(" + (" AND " if conjunction else " OR ").join(parts) + ")"

    def leaf(self, node: Term | Text | TimeBound) -> str:
        if isinstance(node, TimeBound):
            return self.time_bound(node)
        if isinstance(node, Text):
            return self.text(node)
        return self.term(node)


class _Compiler(BooleanCompiler):
    """SQLite: ``?`` parameters, FTS5 and the IP table of query/index.py, optional probes and windows."""

    def __init__(self, now: datetime, probe: frozenset[int] = frozenset(), skip: Node | None = None,
                 window: tuple[int, int] | None = None):
        super().__init__(now)
        self.probe = probe
        self.skip = skip
        self.window = window

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def time_bound(self, node: TimeBound) -> str:
        op = ">=" if node.bound == "since" else "<"
        return f"e.time {op} {self.bind(resolve_time(node.spec, self.now))}"

    def text(self, node: Text) -> str:
        match = self.bind(fts_query(node))
        if self.window is not None:
            low, high = self.bind(self.window[0]), self.bind(self.window[1])
            return (f"e.seq IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH {match}"
                    f" AND rowid BETWEEN {low} AND {high})")
        if id(node) in self.probe:
            return f"EXISTS (SELECT 1 FROM entries_fts WHERE entries_fts MATCH {match} AND rowid = e.seq)"
        return f"e.seq IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH {match})"

    def term(self, term: Term) -> str:
        network = parse_ip(term.value[0]) if term.field in IP_FIELDS and term.op == "=" else None
        if network is not None and len(term.value) == 1:
            return self.ip(term, network)
        if term.field in COLUMNS:
            return self.scalar(COLUMNS[term.field], term, str, not_null=True)
        if term.field in INDEXED_EXPRESSIONS:
            return self.scalar(INDEXED_EXPRESSIONS[term.field], term, str)
        if term.field in STRING_FIELDS | INT_FIELDS:
            kind = int if term.field in INT_FIELDS else str
            return self.scalar(f"json_extract(e.data, '$.{term.field}')", term, kind)
        return self.each(term)

    def ip(self, term: Term, network) -> str:
        """An address range; `actor.ip` always through the IP index, which also keys addresses the
        payload holds only as sealed commitments (the payload's own text would never match them)."""
        low, high = index.network_range(network)
        if term.field != "actor.ip":
            return f"ts_ip_key(json_extract(e.data, '$.{term.field}')) BETWEEN {self.bind(low)} AND {self.bind(high)}"
        within = f"ip BETWEEN {self.bind(low)} AND {self.bind(high)}"
        if self.window is not None:
            first, last = self.bind(self.window[0]), self.bind(self.window[1])
            return f"e.seq IN (SELECT seq FROM entries_ip WHERE {within} AND seq BETWEEN {first} AND {last})"
        if id(term) in self.probe:
            return f"EXISTS (SELECT 1 FROM entries_ip INDEXED BY entries_ip_by_seq WHERE seq = e.seq AND {within})"
        return f"e.seq IN (SELECT seq FROM entries_ip WHERE {within})"

    def scalar(self, expr: str, term: Term, kind: type, not_null: bool = False) -> str:
        """A field whose schema type is known (str or int), as a plain comparison of ``expr``."""
        if term.value == ("", ""):
            return "1" if not_null else f"{expr} IS NOT NULL"
        if len(term.value) > 1:
            return self.wildcard(expr, term.value, kind)
        q = term.value[0]
        if kind is str:
            return f"{expr} {_SQL_OP[term.op]} {self.bind(q)}"
        number = parse_number(q)
        return "0" if number is None else f"{expr} {_SQL_OP[term.op]} {self.bind(number)}"

    def wildcard(self, expr: str, pieces: tuple[str, ...], kind: type) -> str:
        """A glob, led by a range on its literal prefix so an index can serve it."""
        parts = []
        prefix = pieces[0]
        if prefix and kind is str:
            parts.append(f"{expr} >= {self.bind(prefix)}")
            upper = prefix_upper_bound(prefix)
            if upper is not None:
                parts.append(f"{expr} < {self.bind(upper)}")
        if not (kind is str and len(pieces) == 2 and pieces[1] == "" and prefix):
            parts.append(f"{expr} GLOB {self.bind(glob_pattern(pieces))}")
        return "(" + " AND ".join(parts) + ")"

    def each(self, term: Term) -> str:
        """Fields of unknown shape (attributes, lists): any scalar at any reading of the path."""
        checks = [f"EXISTS (SELECT 1 FROM json_each(e.data, {self.bind(path)}) j"
                  f" WHERE typeof(j.key) != 'text' AND {self.each_test(term)})" for path in json_paths(term.field)]
        return "(" + " OR ".join(checks) + ")" if len(checks) > 1 else checks[0]

    def each_test(self, term: Term) -> str:
        """One json_each value against the term, typed as language.scalar_test does."""
        if term.value == ("", ""):
            return "j.type NOT IN ('null', 'object', 'array')"
        if len(term.value) > 1:
            return f"(j.type IN ('text', 'integer') AND j.atom GLOB {self.bind(glob_pattern(term.value))})"
        q, op = term.value[0], _SQL_OP[term.op]
        tests = [f"(j.type = 'text' AND j.atom {op} {self.bind(q)})"]
        number = parse_number(q)
        if number is not None:
            tests.append(f"(j.type IN ('integer', 'real') AND j.atom {op} {self.bind(number)})")
        if term.op == "=" and q in ("true", "false"):
            tests.append(f"j.type = {self.bind(q)}")
        return "(" + " OR ".join(tests) + ")"


def glob_pattern(pieces: tuple[str, ...]) -> str:
    """A SQLite GLOB pattern: pieces literal ([*], [?], [[] escaped), '*' between them."""
    return "*".join("".join(f"[{c}]" if c in "*?[" else c for c in piece) for piece in pieces)


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string starting with prefix, or None."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def json_paths(field_name: str) -> list[str]:
    """SQLite JSON paths for a field; under attributes, every reading of dotted keys."""
    parts = field_name.split(".")
    if parts[0] != "attributes":
        return ["$." + ".".join(f'"{p}"' for p in parts)]
    return ['$."attributes".' + ".".join(f'"{key}"' for key in keys) for keys in _segmentations(parts[1:])]


def _segmentations(parts: list[str]) -> list[list[str]]:
    """Every way to group consecutive parts into dotted keys."""
    if not parts:
        return [[]]
    out = []
    for end in range(1, len(parts) + 1):
        head = ".".join(parts[:end])
        out.extend([head, *rest] for rest in _segmentations(parts[end:]))
    return out


def fts_query(node: Text) -> str:
    """The FTS5 MATCH expression of free text: one phrase, its last word a prefix when asked."""
    phrase = '"' + " ".join(text_tokens(node.value[0])) + '"'
    return phrase + " *" if len(node.value) == 2 else phrase


_SQL_OP = {"=": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


# -- planning --------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """How one log's rows are reached: a forced index of ``entries``, or a driving set of seqs.

    A windowed plan walks the time index a window of rows at a time (see ``_windowed``).
    """

    source: str
    params: list[Any]
    node: Node
    now: datetime
    probe: frozenset[int] = frozenset()
    skip: Node | None = None
    windowed: bool = False
    order: tuple[str, str] = ("e.time", "e.seq")  # the (time, seq) columns pages are sorted and keyed on
    driver: tuple[str, list[Any]] | None = None  # a SELECT of the seqs whose rows a page reads (see _prefetch)

    def where(self, window: tuple[int, int] | None = None) -> tuple[str, list[Any]]:
        return to_sql(self.node, self.now, probe=self.probe, skip=self.skip, window=window)


CAP = 20_000  # a driver matching fewer rows than this is read whole and sorted
KEYS_PER_READ = 50  # index keys tested (on one page) for the cost of one random row read
PREFETCH_MAX = 4_096  # rows of a set-driven page read ahead on the reader threads (see _prefetch)
WINDOW = 16_384  # rows of the time index in a windowed plan's first window (it doubles after)
SPARSE_SPAN = 8  # a window whose rows' seqs spread wider than this many per row is probed row by row
ACTORS = "entries_actor"  # a table of the query index, not an index of entries (see index.py)
KEYS = "entries_keys"  # session and trace ids with time and seq: a table of the query index too
ORDERED = {"actor.id": ACTORS, "action": "entries_by_action", "outcome": "entries_by_outcome_action",
           "actor.session": KEYS, "request.trace_id": KEYS, "id": "entries_by_id"}


def plan(conn: sqlite3.Connection, node: Node, log: str, now: datetime, ordered: bool = True) -> _Plan:
    """Pick the cheapest way in: the most selective indexed leaf, or the time index.

    SQLite (without STAT4) cannot size an index range, an FTS phrase or an IP range, so each
    top-level indexed leaf is counted up to CAP through its index and the smallest wins; a leaf
    with an equality on a (log, field, time) index returns rows already in time order, so it wins
    over a scan even when common. With no selective leaf, a page walks the time index newest first,
    window by window, so common free text is matched per window, never over the whole log.
    """
    candidates = _candidates(node)
    sizes = {id(leaf): _count_capped(conn, leaf, kind, node, log, now)
             for leaf, kind in candidates if not kind.startswith("eq:")}
    probe = frozenset(_probes(conn, node, sizes)) if ordered else frozenset()
    sizes.update(_equality_sizes(conn, candidates, sizes, node, log, now, lone=ordered and not probe))
    best = None
    for leaf, kind in candidates:
        size = _reads(kind, sizes[id(leaf)], candidates)
        rank = (size >= CAP and not kind.startswith("eq:"), size)
        if best is None or rank < best[0]:
            best = (rank, leaf, kind)
    if best is not None and ordered and best[0][1] >= CAP and probe:
        best = None  # a big ordered index with common free text: windows beat row-by-row FTS probes
    if best is None or (best[0][0] and ordered):
        forced = best is not None or (ordered and bool(probe))  # else SQLite may OR indexes (a OR b)
        if forced and ordered:
            return _Plan("entries e INDEXED BY entries_by_time", [], node, now, windowed=True)
        return _Plan("entries e", [], node, now)
    return _driven_plan(best[1], best[2], node, log, now, probe)


def _reads(kind: str, size: int, candidates: list[tuple[Node, str]]) -> int:
    """What driving a page by this candidate costs, in row reads: its size, except for an outcome beside an
    action leaf. ``entries_by_outcome_action`` holds the action, so that walk tests it on the index entry
    and reads rows only for the events it returns: its keys cost about KEYS_PER_READ to one row read."""
    if kind == f"eq:{ORDERED['outcome']}" and any(k.endswith(ORDERED["action"]) for _, k in candidates):
        return size // KEYS_PER_READ
    return size


def _equality_sizes(conn: sqlite3.Connection, candidates: list[tuple[Node, str]], others: dict[int, int],
                    node: Node, log: str, now: datetime, lone: bool) -> dict[int, int]:
    """The row counts (up to CAP) of the equality candidates, by id(leaf).

    With ``lone`` (an ordered page, nothing probed) a single equality leaf is not counted when no other
    candidate is under CAP: it drives the page whatever its size (CAP stands in). On a cold cache a count
    reads up to CAP index keys, about as many pages as the whole page costs."""
    equal = [(leaf, kind) for leaf, kind in candidates if kind.startswith("eq:")]
    if lone and len(equal) == 1 and all(size >= CAP for size in others.values()):
        return {id(equal[0][0]): CAP}
    return {id(leaf): _count_capped(conn, leaf, kind, node, log, now) for leaf, kind in equal}


def _probes(conn: sqlite3.Connection, node: Node, sizes: dict[int, int]) -> Iterator[int]:
    """Free-text and IP leaves matching CAP rows or more, best tested row by row on a page.

    Prefix phrases stay sets: FTS5 would expand the prefix again for every row.
    """
    for leaf in _leaves(node):
        if isinstance(leaf, Text) and len(leaf.value) == 1:
            kind = "fts"
        elif isinstance(leaf, Term) and _ip_leaf(leaf):
            kind = "ip"
        else:
            continue
        size = sizes.get(id(leaf))
        if size is None:
            size = _count_capped(conn, leaf, kind, node, "", datetime.now(UTC))
        if size >= CAP:
            yield id(leaf)


def _leaves(node: Node) -> Iterator[Node]:
    if isinstance(node, And | Or):
        for item in node.items:
            yield from _leaves(item)
    elif isinstance(node, Not):
        yield from _leaves(node.item)
    else:
        yield node


def _ip_leaf(leaf: Term) -> bool:
    return leaf.field == "actor.ip" and leaf.op == "=" and len(leaf.value) == 1 and parse_ip(leaf.value[0]) is not None


def _candidates(node: Node) -> list[tuple[Node, str]]:
    """Top-level leaves an index can serve (eq:<index>, range:<index>, fts, ip), and ORs of them."""
    found = []
    for item in node.items if isinstance(node, And) else (node,):
        kind = _leaf_kind(item)
        if kind is not None:
            found.append((item, kind))
        elif isinstance(item, Or) and all(_leaf_kind(branch) for branch in item.items):
            found.append((item, "or"))
    return found


def _leaf_kind(leaf: Node) -> str | None:
    if isinstance(leaf, Text):
        return "fts"
    if not isinstance(leaf, Term) or leaf.op != "=" or leaf.value == ("", ""):
        return None
    if _ip_leaf(leaf):
        return "ip"
    if leaf.field in ORDERED and len(leaf.value) == 1:
        return f"eq:{ORDERED[leaf.field]}"
    if leaf.field in ORDERED and leaf.value[0]:
        return f"range:{ORDERED[leaf.field]}"
    return None


def _time_bounds(node: Node) -> list[Node]:
    return [leaf for leaf in (node.items if isinstance(node, And) else ()) if isinstance(leaf, TimeBound)]


def _count_capped(conn: sqlite3.Connection, leaf: Node, kind: str, node: Node, log: str, now: datetime) -> int:
    """How many rows the leaf's index yields, counting no further than CAP."""
    inner, params = _seqs(leaf, kind, node, log, now)
    return conn.execute(f"SELECT count(*) FROM ({inner} LIMIT {CAP})", params).fetchone()[0]


def _seqs(leaf: Node, kind: str, node: Node, log: str, now: datetime) -> tuple[str, list[Any]]:
    """A SELECT of the entries.seq values a leaf's index yields (a superset across logs for fts/ip)."""
    if kind == "fts":
        return "SELECT rowid AS seq FROM entries_fts WHERE entries_fts MATCH ?", [fts_query(leaf)]
    if kind == "ip":
        return "SELECT seq FROM entries_ip WHERE ip BETWEEN ? AND ?", list(_ip_range(leaf))
    if kind == "or":
        parts = [_seqs(branch, _leaf_kind(branch), node, log, now) for branch in leaf.items]
        return " UNION ".join(sql for sql, _ in parts), [p for _, params in parts for p in params]
    if kind.endswith(ACTORS):
        where, params = _actor_where(leaf, node, now)
        return f"SELECT a.seq FROM {ACTORS} a WHERE a.log = ? AND {where}", [log, *params]
    if kind.endswith(KEYS):
        where, params = _key_where(leaf, node, now)
        return f"SELECT k.seq FROM {KEYS} k WHERE k.log = ? AND k.field = ? AND {where}", [log, leaf.field, *params]
    where, params = to_sql(And((leaf, *_time_bounds(node))), now)
    return f"SELECT e.seq FROM entries e INDEXED BY {kind.split(':')[1]} WHERE e.log = ? AND {where}", [log, *params]


def _actor_where(leaf: Node, node: Node, now: datetime) -> tuple[str, list[Any]]:
    """An actor leaf and the query's time bounds, on the columns of ``entries_actor a``."""
    where, params = to_sql(And((leaf, *_time_bounds(node))), now)
    return where.replace("e.actor_id", "a.actor").replace("e.time", "a.time"), params


def _key_where(leaf: Term, node: Node, now: datetime) -> tuple[str, list[Any]]:
    """A session or trace leaf and the query's time bounds, on the columns of ``entries_keys k``."""
    where, params = to_sql(And((leaf, *_time_bounds(node))), now)
    return where.replace(INDEXED_EXPRESSIONS[leaf.field], "k.value").replace("e.time", "k.time"), params


def _ip_range(leaf: Term) -> tuple[bytes, bytes]:
    return index.network_range(parse_ip(leaf.value[0]))


def _driven_plan(leaf: Node, kind: str, node: Node, log: str, now: datetime, probe: frozenset[int]) -> _Plan:
    """Rows reached through one selective leaf: its index, or a join on the seqs it yields.

    An actor walks ``entries_actor`` in (time, seq) order, so a page reads only the rows it returns.
    """
    if kind.endswith(ACTORS):
        where, params = _actor_where(leaf, node, now)
        source = f"{ACTORS} a CROSS JOIN entries e ON e.seq = a.seq AND a.log = ? AND {where}"
        return _Plan(source, [log, *params], node, now, probe, leaf, order=("a.time", "a.seq"),
                     driver=(f"SELECT a.seq FROM {ACTORS} a WHERE a.log = ? AND {where}", [log, *params]))
    if kind.endswith(KEYS):
        where, params = _key_where(leaf, node, now)
        source = f"{KEYS} k CROSS JOIN entries e ON e.seq = k.seq AND k.log = ? AND k.field = ? AND {where}"
        return _Plan(source, [log, leaf.field, *params], node, now, probe, leaf, order=("k.time", "k.seq"),
                     driver=(f"SELECT k.seq FROM {KEYS} k WHERE k.log = ? AND k.field = ? AND {where}",
                             [log, leaf.field, *params]))
    if kind.startswith(("eq:", "range:")):
        return _Plan(f"entries e INDEXED BY {kind.split(':')[1]}", [], node, now, probe)
    driver, args = _seqs(leaf, kind, node, log, now)
    return _Plan(f"({driver}) d CROSS JOIN entries e ON e.seq = d.seq", args, node, now, probe, leaf,
                 driver=(driver, args))


# -- running ---------------------------------------------------------------------------------------
def search(store: Any, query: str | Node, log: str | None = None, limit: int = 100,
           cursor: str | None = None, *, now: datetime | None = None) -> Page:
    """One page of matching events, newest first; each event dict carries its ``log`` and ``index``."""
    if on_postgres(store):
        return _postgres().search(store, query, log, limit, cursor, now=now)
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be 1..{MAX_LIMIT}")
    node = _node(query)
    conn = _ready(store)
    stamp = _fingerprint(node, log)
    after = decode_cursor(cursor, stamp) if cursor else None
    rows = _merged(conn, node, _logs(conn, log), now or datetime.now(UTC), after, limit + 1, True,
                   getattr(store, "readers", None))
    events = [_event(row) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return Page(events, encode_cursor(last[0], last[1], stamp) if last else None)


def count(store: Any, query: str | Node, log: str | None = None, *, now: datetime | None = None) -> int:
    """How many events match."""
    if on_postgres(store):
        return _postgres().count(store, query, log, now=now)
    node = _node(query)
    conn = _ready(store)
    total = 0
    for name in _logs(conn, log):
        chosen = plan(conn, node, name, now or datetime.now(UTC), ordered=False)
        where, params = chosen.where()
        sql = f"SELECT count(*) FROM {chosen.source} WHERE e.log = ? AND {where}"
        total += conn.execute(sql, [*chosen.params, name, *params]).fetchone()[0]
    return total


def timeline_query(key: str, value: str, since: str | datetime | None = None) -> Node:
    """The query behind a timeline: one actor, session or trace, optionally since a time."""
    if key not in TIMELINE_KEYS:
        raise QueryError(f"timeline key must be one of {', '.join(TIMELINE_KEYS)}, not {key!r}")
    items: list[Node] = [Term(TIMELINE_KEYS[key], (value,))]
    if since is not None:
        spec = format_time(since) if isinstance(since, datetime) else since
        items.append(parse(f"since:{spec}"))
    return And(tuple(items))


def timeline(store: Any, key: str, value: str, since: str | datetime | None = None, *,
             log: str | None = None, limit: int = 1000, now: datetime | None = None) -> list[dict[str, Any]]:
    """Events of one actor, session or trace (``request.trace_id``) in time order, oldest first."""
    if on_postgres(store):
        return _postgres().timeline(store, key, value, since, log=log, limit=limit, now=now)
    node = timeline_query(key, value, since)
    conn = _ready(store)
    rows = _merged(conn, node, _logs(conn, log), now or datetime.now(UTC), None, limit, False)
    return [_event(row) for row in rows]


def explain(store: Any, query: str | Node, log: str = "default", *, now: datetime | None = None) -> list[str]:
    """SQLite's plan for the first page of a query on one log (one line per plan step)."""
    if on_postgres(store):
        return _postgres().explain(store, query, log, now=now)
    conn = _ready(store)
    chosen = plan(conn, _node(query), log, now or datetime.now(UTC))
    window = (0, 2**62) if chosen.windowed else None
    sql, args = _page_sql(chosen, log, None, 100, True, window, None)
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]


def _postgres():
    from trailseal.query import search_pg

    return search_pg


def _node(query: str | Node) -> Node:
    return parse(query) if isinstance(query, str) else query


def _ready(store: Any) -> sqlite3.Connection:
    """The query connection, with every committed entry indexed."""
    conn = index.connection(store)
    index.refresh(conn)
    return conn


def _logs(conn: sqlite3.Connection, log: str | None) -> list[str]:
    if log is not None:
        return [log]
    return [name for (name,) in conn.execute("SELECT name FROM logs ORDER BY name")]


def _page_sql(chosen: _Plan, log: str, after: tuple[str, int] | None, limit: int, descending: bool,
              window: tuple[int, int] | None, floor: tuple[str, int] | None) -> tuple[str, list[Any]]:
    """One log's page: keyset pagination on (time, seq), optionally down to a floor row."""
    order, beyond = ("DESC", "<") if descending else ("ASC", ">")
    time, seq = chosen.order
    where, params = chosen.where(window)
    sql = f"SELECT e.time, e.seq, e.log, e.idx, e.data FROM {chosen.source} WHERE e.log = ? AND {where}"
    args = [*chosen.params, log, *params]
    if after is not None:
        sql += f" AND {time} {beyond}= ? AND ({time} {beyond} ? OR {seq} {beyond} ?)"
        args.extend((after[0], after[0], after[1]))
    if floor is not None:
        sql += " AND e.time >= ? AND (e.time > ? OR e.seq >= ?)"
        args.extend((floor[0], floor[0], floor[1]))
    sql += f" ORDER BY {time} {order}, {seq} {order} LIMIT ?"
    args.append(limit)
    return sql, args


def _log_rows(conn: sqlite3.Connection, node: Node, log: str, now: datetime, after: tuple[str, int] | None,
              limit: int, descending: bool, readers: Readers | None = None) -> list[tuple]:
    """One log's first ``limit`` matching rows after the cursor."""
    chosen = plan(conn, node, log, now)
    if chosen.windowed and descending:
        return _windowed(conn, chosen, log, after, limit)
    if readers is not None and chosen.driver is not None:
        _prefetch(conn, readers, chosen, log, after, limit, descending)
    return conn.execute(*_page_sql(chosen, log, after, limit, descending, None, None)).fetchall()


def _prefetch(conn: sqlite3.Connection, readers: Readers, chosen: _Plan, log: str, after: tuple[str, int] | None,
              limit: int, descending: bool) -> None:
    """Read the entry rows a page is about to read on the reader threads first, so that their cold disk
    reads overlap and the page finds them cached. A set of seqs (IP range, free text, OR) is read whole
    by the page, so all of it, up to PREFETCH_MAX; an ordered walk (actor, session, trace) reads about
    ``limit`` rows, so its first ``limit`` after the cursor. Only a hint: the page reads what it reads."""
    sql, args = chosen.driver
    if isinstance(chosen.skip, Or) and len(chosen.skip.items) > SPLIT_ABOVE:  # an actor's commitments, say:
        seqs = _split_or_seqs(readers, chosen, log)  # one index seek each, also overlapped
        if seqs is None:
            return
    elif chosen.order == ("e.time", "e.seq"):
        seqs = [seq for (seq,) in conn.execute(f"{sql} LIMIT {PREFETCH_MAX + 1}", args)]
        if len(seqs) > PREFETCH_MAX:
            return
    else:
        (time, seq), (order, beyond) = chosen.order, ("DESC", "<") if descending else ("ASC", ">")
        if after is not None:
            sql += f" AND {time} {beyond}= ? AND ({time} {beyond} ? OR {seq} {beyond} ?)"
            args = [*args, after[0], after[0], after[1]]
        seqs = [seq for (seq,) in conn.execute(f"{sql} ORDER BY {time} {order}, {seq} {order} LIMIT {limit}", args)]
    if len(seqs) > SPLIT_ABOVE:
        readers.map(_read_rows, seqs)


def _split_or_seqs(readers: Readers, chosen: _Plan, log: str) -> list[int] | None:
    """The seqs an OR of many leaves yields, its leaves split over the readers; None past PREFETCH_MAX."""
    def part_seqs(conn: sqlite3.Connection, items: Sequence[Node]) -> list[int]:
        sql, args = _seqs(Or(tuple(items)), "or", chosen.node, log, chosen.now)
        return [seq for (seq,) in conn.execute(f"{sql} LIMIT {PREFETCH_MAX + 1}", args)]

    seqs = sorted({seq for part in readers.map(part_seqs, chosen.skip.items) for seq in part})
    return seqs if len(seqs) <= PREFETCH_MAX else None


def _read_rows(conn: sqlite3.Connection, seqs: Sequence[int]) -> int:
    """Read these entry rows (into the page cache) and count them."""
    return conn.execute(f"SELECT count(log) FROM entries WHERE seq IN ({','.join('?' * len(seqs))})",
                        list(seqs)).fetchone()[0]


def _windowed(conn: sqlite3.Connection, chosen: _Plan, log: str, after: tuple[str, int] | None,
              limit: int) -> list[tuple]:
    """Walk the time index newest first, a window of rows at a time, until the page is full.

    Each window is the next N rows in (time, seq) order; free text is matched only within the
    window's seq range, which is narrow because seq (commit order) follows time closely.
    """
    rows: list[tuple] = []
    size = WINDOW
    while len(rows) < limit:
        low, high, floor, found = _window(conn, chosen, log, after, size)
        if found == 0:
            break
        if high - low + 1 > SPARSE_SPAN * found:
            # a sparse log (the meta log's rows among millions of others): its rows' text tested one by one,
            # not every log's text matches over the window's seq range
            sparse = replace(chosen, probe=chosen.probe | _text_leaves(chosen.node))
            sql, args = _page_sql(sparse, log, after, limit - len(rows), True, None, floor)
        else:
            sql, args = _page_sql(chosen, log, after, limit - len(rows), True, (low, high), floor)
        rows.extend(conn.execute(sql, args).fetchall())
        if floor is None:
            break
        after, size = floor, min(size * 2, 1 << 20)  # the next window starts just below this one
    return rows


def _text_leaves(node: Node) -> frozenset[int]:
    """id() of every free-text leaf of a query."""
    return frozenset(id(leaf) for leaf in _leaves(node) if isinstance(leaf, Text))


def _window(conn: sqlite3.Connection, chosen: _Plan, log: str, after: tuple[str, int] | None,
            size: int) -> tuple[int, int, tuple[str, int] | None, int]:
    """The next ``size`` rows of the time index: their seq range, their last row (None if the
    window reaches the end of the log) and how many there are."""
    bounds, params = to_sql(And(tuple(_time_bounds(chosen.node))), chosen.now)
    sql = f"SELECT e.time, e.seq FROM entries e INDEXED BY entries_by_time WHERE e.log = ? AND {bounds}"
    args = [log, *params]
    if after is not None:
        sql += " AND e.time <= ? AND (e.time < ? OR e.seq < ?)"
        args.extend((after[0], after[0], after[1]))
    sql += " ORDER BY e.time DESC, e.seq DESC"
    low, high, found = conn.execute(f"SELECT min(seq), max(seq), count(*) FROM ({sql} LIMIT ?)",
                                    [*args, size]).fetchone()
    last = conn.execute(f"{sql} LIMIT 1 OFFSET ?", [*args, size - 1]).fetchone() if found == size else None
    return low or 0, high or 0, last, found


def _merged(conn: sqlite3.Connection, node: Node, logs: Sequence[str], now: datetime,
            after: tuple[str, int] | None, limit: int, descending: bool, readers: Readers | None = None) -> list[tuple]:
    """The first ``limit`` rows over all logs, merged in (time, seq) order."""
    per_log = [_log_rows(conn, node, log, now, after, limit, descending, readers) for log in logs]
    merged = heapq.merge(*per_log, key=lambda row: (row[0], row[1]), reverse=descending)
    return [row for _, row in zip(range(limit), merged, strict=False)]


def _event(row: tuple) -> dict[str, Any]:
    event = _decode(row[4])
    event["log"], event["index"] = row[2], row[3]
    return event


# -- cursors ---------------------------------------------------------------------------------------
def _fingerprint(node: Node, log: str | None) -> str:
    """Ties a cursor to its query and log, so it cannot silently page through another one."""
    return hashlib.sha256(f"{format(node)}\0{log or ''}".encode()).hexdigest()[:12]


def encode_cursor(time: str, seq: int, stamp: str) -> str:
    raw = msgspec.json.encode([time, seq, stamp])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, stamp: str) -> tuple[str, int]:
    """The (time, seq) a cursor continues after; QueryError if it is foreign or damaged."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time, seq, found = msgspec.json.decode(raw, type=tuple[str, int, str])
    except (ValueError, msgspec.DecodeError):
        raise QueryError("invalid cursor") from None
    if found != stamp:
        raise QueryError("this cursor belongs to another query or log")
    return time, seq

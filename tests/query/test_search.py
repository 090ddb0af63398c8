"""search() over SQLite equals matches() over the same sealed events; plans use indexes; cursors hold."""

from __future__ import annotations

import importlib
import random
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from unittest import mock

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trailseal
from trailseal.query import explain, parse, predicate
from trailseal.query import index as query_index
from trailseal.query.language import And, Node, Not, Or, QueryError, Term, Text, TimeBound
from trailseal.query.search import count, search, timeline

search_module = importlib.import_module("trailseal.query.search")  # the package exports the function
BASE = datetime(2026, 10, 1, tzinfo=UTC)
NOW = BASE + timedelta(days=41)
ACTORS = ["alice", "bob", "Alice Smith", "carol", "svc-backup", "dave.o'brien", "ünïcode", "用户", "a*b", "x;--"]
ACTIONS = {"auth.login": "authentication", "auth.logout": "authentication", "auth.mfa.verify": "authentication",
           "authz.check": "authorization", "user.role.grant": "admin", "db.query": "data_access",
           "db.write": "data_change", "http.request": "data_access", "k8s.secrets.get": "data_access",
           "finding.sqli": "finding"}
IPS = ["10.0.0.1", "10.0.0.200", "10.1.2.3", "10.255.0.9", "192.168.1.5", "172.16.4.4", "2001:db8::1",
       "2001:db8:0:1::5", "::ffff:10.0.0.1", "not-an-ip", "010.0.0.1", None]
WORDS = ["denied", "access", "Müller", "straße", "quick", "brown", "fox", "10.0.0.1", "Ærø", "東京", "login-failed",
         "ORDERS", "orders", "o'hara", "50%", "pass_word"]
SESSIONS = [f"s-{i}" for i in range(30)]
TRACES = [f"{i:032x}" for i in range(40)]


def phrase(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))


def random_event(i: int, rng: random.Random) -> dict:
    """A varied event: optional fields present or not, lists, dotted keys, numbers of both kinds."""
    action = rng.choice(list(ACTIONS))
    moment = BASE + timedelta(seconds=rng.randrange(40 * 86400) if rng.random() > 0.1 else rng.randrange(50))
    actor = {"id": rng.choice(ACTORS), "type": rng.choice(["user", "service"]), "session": rng.choice(SESSIONS)}
    if (ip := rng.choice(IPS)) is not None:
        actor["ip"] = ip
    if rng.random() < 0.3:
        actor["roles"] = rng.sample(["admin", "reader", "ops"], rng.randint(0, 2))
    event = {
        "id": f"ev-{i}", "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "category": ACTIONS[action],
        "action": action, "outcome": rng.choice(["success", "success", "failure", "error", "unknown"]),
        "actor": actor, "log": rng.choice(["default", "default", "audit"]),
        "source": {"component": rng.choice(["web", "api", "db", "k8s"]),
                   "kind": rng.choice(["app", "scanner", "kubernetes", "database"])},
        "attributes": _attributes(rng),
    }
    if rng.random() < 0.4:
        event["source"]["ip"] = rng.choice(["10.9.9.9", "192.168.0.1", "fe80::1"])
    if rng.random() < 0.5:
        event["reason"] = phrase(rng)
    if rng.random() < 0.7:
        event["target"] = {k: v for k, v in (("type", rng.choice(["table", "secret", "pod"])),
                                             ("id", rng.choice(WORDS))) if rng.random() < 0.8}
    if rng.random() < 0.8:
        event["request"] = {"status": rng.choice([200, 201, 401, 403, 404, 500, 503]),
                            "trace_id": rng.choice(TRACES), "path": f"/api/{rng.choice(WORDS)}"}
    return event


def _attributes(rng: random.Random) -> dict:
    options = {
        "db.name": lambda: rng.choice(["orders", "users", "Orders"]),
        "db": lambda: {"name": rng.choice(["orders", "audit"])},
        "latency_ms": lambda: rng.choice([rng.randrange(-5, 500), rng.randrange(1000) / 8]),
        "tags": lambda: rng.choice([["pci", "eu"], ["gdpr"], [], ["pci", 5, True, None, ["nested"]], "pci"]),
        "flag": lambda: rng.choice([True, False]),
        "note": lambda: phrase(rng),
        "empty": lambda: "",
        "nothing": lambda: None,
        "count": lambda: rng.randrange(-100, 100),
    }
    return {key: make() for key, make in options.items() if rng.random() < 0.45}


def without_privacy(directory):
    """Turn protection off in a fresh data dir, so actor ids and IPs are sealed as sent."""
    config = directory / "trailseal.toml"
    config.write_text(re.sub(r"(\[privacy\][^\[]*?)enabled = true", r"\1enabled = false", config.read_text()))
    return directory


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    """3,000 varied events sealed in two logs; yields (trail, {(log, index): (seq, event dict)})."""
    rng = random.Random(20261101)
    directory = without_privacy(trailseal.init(tmp_path_factory.mktemp("query") / "data", origin="test.trailseal"))
    trail = trailseal.open(directory)
    assert not trail.protection.enabled, "the differential test searches plaintext fields"
    events = [random_event(i, rng) for i in range(3000)]
    for start in range(0, len(events), 500):
        trail.append(events[start:start + 500])
    conn = sqlite3.connect(trail.store.path)
    stored = {(log, idx): (seq, msgspec.json.decode(data))
              for seq, log, idx, data in conn.execute("SELECT seq, log, idx, data FROM entries")}
    conn.close()
    yield trail, stored
    trail.close()


def expected(stored: dict, query: Node | str) -> list[tuple[str, int]]:
    """Brute force: every stored event through matches(), newest first by (time, seq)."""
    test = predicate(query, NOW)
    hits = [(event["time"], seq, key) for key, (seq, event) in stored.items() if test(event)]
    return [key for _, _, key in sorted(hits, reverse=True)]


def all_pages(store, query, limit: int, log: str | None = None) -> list[tuple[str, int]]:
    """Follow cursors to the end, returning (log, index) in page order."""
    found, cursor = [], None
    while True:
        page = search(store, query, log=log, limit=limit, cursor=cursor, now=NOW)
        found.extend((e["log"], e["index"]) for e in page.events)
        assert len(page.events) == limit or page.next_cursor is None
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


# -- the differential test -------------------------------------------------------------------------
def _value(options: list[str]):
    return st.sampled_from(options).map(lambda v: (v,))


def _glob(options: list[str]):
    return st.sampled_from(options).map(lambda v: tuple(v.split("*")))


ATTRIBUTE_VALUES = ["orders", "Orders", "users", "audit", "pci", "gdpr", "5", "true", "false", "nested", "12",
                    "-3", "100", "62.5", "", "quick", "M"]
term_leaves = st.one_of(
    st.builds(Term, st.just("actor.id"), st.one_of(_value(ACTORS + ["Alice"]), _glob(["al*", "*e", "a*i*e", "*"]))),
    st.builds(Term, st.just("action"), st.one_of(_value(list(ACTIONS)), _glob(["auth.*", "*.get", "auth*", "k8s.*"]))),
    st.builds(Term, st.just("outcome"), _value(["success", "failure", "error", "unknown"])),
    st.builds(Term, st.just("category"), _value(sorted(set(ACTIONS.values())))),
    st.builds(Term, st.just("log"), _value(["default", "audit"])),
    st.builds(Term, st.just("actor.ip"), st.one_of(
        _value(["10.0.0.0/8", "10.0.0.0/24", "10.0.0.1", "2001:db8::/32", "192.168.0.0/16", "::ffff:0:0/96",
                "010.0.0.1", "not-an-ip"]), _glob(["10.0.*", "*::*"]))),
    st.builds(Term, st.just("source.ip"), _value(["10.0.0.0/8", "fe80::/10", "192.168.0.1"])),
    st.builds(Term, st.just("request.status"), _value(["401", "500", "abc", "2.01e2"]),
              st.sampled_from(["=", ">", ">=", "<", "<="])),
    st.builds(Term, st.just("request.status"), _glob(["4*", "*0*", "*"])),
    st.builds(Term, st.sampled_from(["actor.session", "request.trace_id"]),
              st.one_of(_value(SESSIONS[:5] + TRACES[:5]), _glob(["s-1*", "0000*", "*"]))),
    st.builds(Term, st.sampled_from(["time", "id"]), _value(["2026-10-15", "ev-17", "2026-10-01T00:00:10.000000Z"]),
              st.sampled_from(["=", ">", "<="])),
    st.builds(Term, st.sampled_from(["attributes.db.name", "attributes.db", "attributes.tags", "attributes.flag",
                                     "attributes.latency_ms", "attributes.count", "attributes.note",
                                     "attributes.nothing", "attributes.empty", "attributes.missing"]),
              st.one_of(_value(ATTRIBUTE_VALUES), _glob(["*", "ord*", "1*", "*s"])),
              st.sampled_from(["=", "=", "=", ">", "<="])).filter(lambda t: t.op == "=" or len(t.value) == 1),
    st.builds(Term, st.sampled_from(["actor.roles", "source.component", "source.kind", "target.type", "reason"]),
              st.one_of(_value(["admin", "ops", "web", "scanner", "table", "denied"]), _glob(["*", "a*", "*ed"]))),
)
text_leaves = st.one_of(
    _value(WORDS + ["quick brown", "Muller", "STRASSE", "aero", "denied access", "pci", "api orders", "0 1"]),
    _glob(["qu*", "ord*", "東*", "login fa*"]),
).map(Text)
time_leaves = st.builds(TimeBound, st.sampled_from(["since", "until"]),
                        st.sampled_from(["1d", "7d", "30d", "2026-10-15", "2026-10-20T12:00:00+02:00"]))
queries = st.recursive(st.one_of(term_leaves, text_leaves, time_leaves), lambda inner: st.one_of(
    st.builds(Not, inner),
    st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
    st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
), max_leaves=5)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(query=queries, limit=st.sampled_from([7, 50, 1000]), log=st.sampled_from([None, None, "audit"]),
       cap=st.sampled_from([20_000, 40]))
def test_search_equals_brute_force(sealed, query, limit, log, cap):
    """A small CAP makes the planner walk the time index in (small) windows; a big one drives by index."""
    trail, stored = sealed
    want = [key for key in expected(stored, query) if log is None or key[0] == log]
    limit = max(limit, len(want) // 8 + 1)
    with mock.patch.object(search_module, "CAP", cap), mock.patch.object(search_module, "WINDOW", cap + 9):
        assert all_pages(trail.store, query, limit, log) == want
        assert count(trail.store, query, log=log, now=NOW) == len(want)


def test_brute_force_is_not_vacuous(sealed):
    """The generated data gives the differential test real hits to compare, of every kind."""
    _, stored = sealed
    for query in ["actor.roles:*", "ip:10.0.0.0/8", "attributes.db.name:orders", "attributes.tags:5", '"quick brown"',
                  "muller", "status:>=500", "-source.ip:10.0.0.0/8", "attributes.latency_ms:<10"]:
        assert 0 < len(expected(stored, query)) < len(stored), query


@pytest.mark.parametrize("query", [
    "actor:\"dave.o'brien\"", "actor:x;--", "actor:a\\*b", '"quick brown" -actor:alice', "source:k8s status:>=400",
    "attributes.db.name:ord* OR ip:2001:db8::/32", "since:7d until:1d", "login fa* OR 東*",
])
def test_search_equals_brute_force_on_fixed_queries(sealed, query):
    trail, stored = sealed
    want = expected(stored, query)
    assert want, "fixed queries are chosen to match something"
    assert all_pages(trail.store, query, 13) == want


# -- plans -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "index_name"), [
    ("actor:alice", "SEARCH a USING PRIMARY KEY (log=? AND actor=?)"),
    ("actor:al* since:7d", "SEARCH a USING PRIMARY KEY (log=? AND actor>? AND actor<?)"),
    ("action:auth.*", "entries_by_action"),
    ("outcome:error", "entries_by_outcome_action"),
    ("since:1d", "entries_by_time (log=? AND time>?)"),
    ("since:2026-10-10 until:2026-10-11", "entries_by_time (log=? AND time>? AND time<?)"),
    ("session:s-3", "SEARCH k USING PRIMARY KEY (log=? AND field=? AND value=?)"),
    ("trace:00000000000000000000000000000001", "SEARCH k USING PRIMARY KEY (log=? AND field=? AND value=?)"),
    ("ip:10.0.0.0/24", "entries_ip USING PRIMARY KEY"),
    ('"quick brown"', "entries_fts VIRTUAL TABLE"),
    ("actor:alice outcome:failure -attributes.flag:true", "SEARCH a USING PRIMARY KEY (log=? AND actor=?)"),
    ("(actor:alice OR actor:bob) status:500", "SEARCH a USING PRIMARY KEY (log=? AND actor=?)"),
    ("id:ev-17", "entries_by_id"),
])
def test_selective_queries_use_an_index(sealed, query, index_name):
    trail, _ = sealed
    steps = explain(trail.store, query, now=NOW)
    assert any(index_name in step for step in steps), steps
    assert not any(re.match(r"SCAN e\b", step) for step in steps), steps  # no full scan of entries


def test_an_actor_page_reads_entries_actor_in_time_order(sealed):
    """`actor:X` walks the query index's (log, actor, time, seq) key newest first: no sort, no scan."""
    trail, _ = sealed
    steps = explain(trail.store, "actor:alice", now=NOW)
    assert not any("TEMP B-TREE" in step for step in steps), steps
    assert "entries_by_actor" not in {row[0] for row in trail.store._conn().execute(
        "SELECT name FROM sqlite_master WHERE type='index'")}  # gone from the write path


def test_unselective_leaves_fall_back_to_walking_the_time_index(sealed, monkeypatch):
    """When every indexed leaf matches more than CAP rows, a page walks time order and stops early."""
    trail, stored = sealed
    monkeypatch.setattr(search_module, "CAP", 20)
    steps = explain(trail.store, "action:auth.* orders", now=NOW)
    assert steps[0] == "SEARCH e USING INDEX entries_by_time (log=?)", steps
    assert all_pages(trail.store, "action:auth.* orders", 50) == expected(stored, "action:auth.* orders")
    assert "SEARCH a USING PRIMARY KEY" in explain(trail.store, "actor:alice action:auth.*", now=NOW)[0]


def test_outcome_with_an_action_prefix_tests_the_action_on_the_index(sealed):
    """`outcome:X action:p*` walks (log, outcome, time, action): the action is compared on the index entry,
    so a rare prefix does not read the entry row of every event with that outcome."""
    trail, stored = sealed
    query = "outcome:failure action:auth.*"
    steps = explain(trail.store, query, now=NOW)
    assert steps[0].startswith("SEARCH e USING INDEX entries_by_outcome_action (log=? AND outcome=?)"), steps
    assert all_pages(trail.store, query, 7) == expected(stored, query)
    code = [row[1:4] for row in query_index.connection(trail.store).execute(
        "EXPLAIN SELECT seq, data FROM entries e INDEXED BY entries_by_outcome_action WHERE e.log = 'default'"
        " AND e.outcome = 'failure' AND e.action >= 'auth.' AND e.action < 'auth/' ORDER BY e.time DESC")]
    seek = next(i for i, step in enumerate(code) if step[0] == "DeferredSeek")
    compare = next(i for i, step in enumerate(code) if step[0] in ("Lt", "Ge"))
    reads = [step for step in code[seek:compare] if step[0] == "Column"]
    assert reads and all(step[1] == code[seek][1] for step in reads), code  # the index's cursor, not the row's


def test_an_outcome_beside_an_action_drives_the_page_even_when_the_action_matches_fewer_rows(sealed):
    """Driven by the action, a page reads the row of every event with that action to test the outcome and sort;
    driven by (log, outcome, time, action), it tests the action on the index and reads only the rows it returns.
    So the outcome wins unless the action's rows are fewer than its keys / KEYS_PER_READ."""
    trail, stored = sealed
    prefix = "user."
    with_prefix = sum(1 for _, event in stored.values() if event["action"].startswith(prefix))
    failures = sum(1 for _, event in stored.values() if event["outcome"] == "failure")
    assert failures // search_module.KEYS_PER_READ < with_prefix < failures  # the case this is about
    query = f"outcome:failure action:{prefix}*"
    steps = explain(trail.store, query, now=NOW)
    assert steps[0].startswith("SEARCH e USING INDEX entries_by_outcome_action (log=? AND outcome=?)"), steps
    assert all_pages(trail.store, query, 7) == expected(stored, query)


MANY_ACTORS = " OR ".join(f'actor:"{name}"' for name in [*ACTORS[:5], *(f"nobody-{n}" for n in range(40))])


@pytest.mark.parametrize("query, ordered", [("ip:10.0.0.0/8", False), ("actor:alice", True),
                                            (f"({MANY_ACTORS}) since:2000-01-01", False)])
def test_a_page_reads_its_rows_ahead_on_the_reader_threads(sealed, monkeypatch, query, ordered):
    """Cold, a page's random row reads overlap when the readers read them first: a set of seqs (an IP range)
    whole, an ordered walk (an actor) its first page. The page itself is what it would be without."""
    trail, stored = sealed
    read: list[int] = []
    real = trail.store.readers.map
    monkeypatch.setattr(trail.store.readers, "map", lambda fn, items: read.extend(items) or real(fn, items))
    page = search(trail.store, query, log="default", limit=60, now=NOW).events
    want = [index for log, index in expected(stored, query) if log == "default"]
    assert [e["index"] for e in page] == want[:60]
    seq_of = {index: seq for (log, index), (seq, _) in stored.items() if log == "default"}
    if ordered:  # the walk's first limit + 1 rows: the page and the row that tells whether another follows
        assert read == [seq_of[index] for index in want[:61]]
    elif query.startswith("ip:"):
        assert sorted(read) == sorted(seq for (log, _), (seq, event) in stored.items()
                                      if predicate(query, NOW)(event))  # every log's: the IP index has no log
    else:  # an OR of many actors: its seeks split over the readers too (the leaves, then the rows they found)
        assert sorted(read[-len(want):]) == sorted(seq_of[index] for index in want)
        assert read[:-len(want)] == list(parse(query).items[0].items)


def test_a_lone_equality_leaf_is_not_counted_when_nothing_else_could_win(sealed, monkeypatch):
    """Counting reads up to CAP index keys (cold: as many pages as the page itself), so a page skips the count
    of its one equality leaf when every other candidate is over CAP and no free text is probed."""
    trail, stored = sealed
    monkeypatch.setattr(search_module, "CAP", 3)
    counted = []
    real = search_module._count_capped

    def count_capped(conn, leaf, kind, node, log, now):
        if log == "default":
            counted.append(kind)
        return real(conn, leaf, kind, node, log, now)

    monkeypatch.setattr(search_module, "_count_capped", count_capped)
    for query, counts in [("outcome:failure action:auth.*", ["range:entries_by_action"]),
                          ("outcome:failure", []),
                          ("outcome:failure actor:alice", ["eq:entries_actor", "eq:entries_by_outcome_action"]),
                          ("outcome:failure orders", ["fts", "eq:entries_by_outcome_action"])]:
        counted.clear()
        assert all_pages(trail.store, query, 5) == expected(stored, query), query
        assert set(counted) == set(counts), (query, counted)  # in the default log, every page


def test_an_older_outcome_index_is_replaced(data_dir):
    with trailseal.open(data_dir) as trail:
        conn = query_index.connection(trail.store)
        conn.execute("DROP INDEX entries_by_outcome_action")
        conn.execute("CREATE INDEX entries_by_outcome ON entries (log, outcome, time)")
        query_index.ensure(conn)
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "entries_by_outcome_action" in names and "entries_by_outcome" not in names


def test_values_are_bound_never_spliced(sealed):
    trail, _ = sealed
    conn = query_index.connection(trail.store)
    where, params = search_module.to_sql(parse("actor:\"x'; DROP TABLE entries; --\" attributes.a.b:\"'\""), NOW)
    assert "DROP" not in where and "x'" in params[0]
    assert conn.execute(f"SELECT count(*) FROM entries e WHERE {where}", params).fetchone()[0] == 0


# -- cursors, timelines, the index -----------------------------------------------------------------
def test_cursor_pages_stay_stable_while_events_arrive(data_dir):
    from tests.conftest import make_event

    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(300)])
        first = search(trail.store, "orders", limit=100, now=NOW)
        trail.append([make_event(i) for i in range(300, 400)])  # newer than everything on page 1
        rest = all_pages_from(trail.store, "orders", first.next_cursor)
        indices = [e["index"] for e in first.events] + rest
        assert indices == list(range(299, -1, -1))


def all_pages_from(store, query, cursor) -> list[int]:
    out = []
    while cursor:
        page = search(store, query, limit=100, cursor=cursor, now=NOW)
        out.extend(e["index"] for e in page.events)
        cursor = page.next_cursor
    return out


def test_a_cursor_belongs_to_its_query(sealed):
    trail, _ = sealed
    cursor = search(trail.store, "actor:*", limit=5, now=NOW).next_cursor
    with pytest.raises(QueryError, match="another query"):
        search(trail.store, "actor:alice", limit=5, cursor=cursor, now=NOW)
    with pytest.raises(QueryError, match="invalid cursor"):
        search(trail.store, "actor:*", limit=5, cursor="not a cursor!", now=NOW)


def test_timeline_ties_a_finding_to_the_requests_that_caused_it(data_dir):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    request = {"method": "GET", "path": "/search?q='--", "status": 500, "trace_id": trace}
    events = [
        {"time": "2026-11-01T10:00:02Z", "category": "finding", "action": "finding.sqli", "outcome": "success",
         "actor": {"id": "zap"}, "source": {"component": "zap", "kind": "scanner"}, "request": request,
         "log": "findings"},
        {"time": "2026-11-01T10:00:01Z", "category": "data_access", "action": "http.request", "outcome": "error",
         "actor": {"id": "zap"}, "source": {"component": "web", "kind": "app"}, "request": request},
        {"time": "2026-11-01T10:00:00Z", "category": "data_access", "action": "db.query", "outcome": "error",
         "actor": {"id": "web"}, "source": {"component": "pg", "kind": "database"}, "request": request},
        {"time": "2026-11-01T10:00:00Z", "category": "data_access", "action": "db.query", "outcome": "success",
         "actor": {"id": "web"}, "source": {"component": "pg", "kind": "database"},
         "request": {**request, "trace_id": "other"}},
    ]
    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append(events)
        found = timeline(trail.store, "trace", trace)
        assert [(e["action"], e["log"]) for e in found] == [
            ("db.query", "default"), ("http.request", "default"), ("finding.sqli", "findings")]
        assert [e["action"] for e in timeline(trail.store, "actor", "zap", since="2026-11-01T10:00:02Z")] == [
            "finding.sqli"]
        with pytest.raises(QueryError, match="timeline key"):
            timeline(trail.store, "ip", "10.0.0.1")


def test_search_indexes_new_entries_and_forget_removes_them(data_dir):
    from tests.conftest import make_event

    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append([make_event(1, attributes={"note": "wombat"})])
        assert count(trail.store, "wombat") == 1
        trail.append([make_event(2, attributes={"note": "wombat again"})])
        assert count(trail.store, "wombat") == 2  # indexed on the next search, no writer hook needed
        conn = query_index.connection(trail.store)
        conn.execute("BEGIN IMMEDIATE")
        query_index.forget(conn, "default", [0])
        conn.execute("COMMIT")
        assert [e["index"] for e in search(trail.store, "wombat").events] == [1]
        assert count(trail.store, "ip:10.1.0.0/16") == 0 and count(trail.store, "ip:10.2.0.0/16") == 1
        forgotten, kept = (conn.execute("SELECT seq FROM entries WHERE log = 'default' AND idx = ?", (i,)).fetchone()[0]
                           for i in (0, 1))
        for table in ("entries_ip", "entries_keys", "entries_actor"):  # not even unreachable rows stay
            rows = dict(conn.execute(f"SELECT seq, count(*) FROM {table} WHERE seq IN (?, ?) GROUP BY seq",
                                     (forgotten, kept)).fetchall())
            assert forgotten not in rows and rows.get(kept, 0) >= 1, table


def test_with_privacy_on_the_index_holds_no_erasable_plaintext(data_dir):
    """Full text reads sealed bytes only (an erasable actor id is a commitment there); the IP range index
    follows the vault."""
    from tests.conftest import make_event

    with trailseal.open(data_dir) as trail:
        assert trail.protection.enabled
        trail.append([make_event(1, actor={"id": "alice.liddell", "type": "user", "ip": "10.9.8.7"})])
        assert count(trail.store, "liddell") == 0 and count(trail.store, "actor:alice.liddell") == 0
        # the address range index keys the vault's value while the vault holds it (erasure drops it)
        assert count(trail.store, "ip:10.0.0.0/8") == 1 and count(trail.store, "10.9.8.7") == 0
        sealed_id = search(trail.store, "", "default").events[0]["actor"]["id"]
        assert sealed_id.startswith("pd:") and count(trail.store, f"actor:{sealed_id}") == 1
        trail.erase("alice.liddell")
        assert count(trail.store, "ip:10.0.0.0/8") == 0


def test_common_text_in_a_sparse_log_is_probed_row_by_row(data_dir):
    """A word in every event (past the planner's CAP, so pages walk the time index window by window) over a
    small log whose two rows lie at both ends of a long stretch of another log's: its window's seq range spans
    that whole stretch, so the text is tested on its own rows, not matched over every log in the range."""
    from tests.conftest import make_event
    from trailseal.query import search as search_module

    with trailseal.open(without_privacy(data_dir)) as trail:
        trail.append([make_event(10**6, log="ops")])
        total = search_module.CAP + 5000
        for start in range(0, total, 5000):
            trail.append([make_event(i) for i in range(start, start + 5000)])
        trail.append([make_event(10**6 + 1, log="ops")])
        statements: list[str] = []
        query_index.connection(trail.store).set_trace_callback(statements.append)
        page = search(trail.store, "orders", "ops").events
        assert [e["id"] for e in page] == ["evt-01000001", "evt-01000000"]
        fts = [sql for sql in statements if "entries_fts" in sql and "e.log = 'ops'" in sql]
        assert fts and all("EXISTS (SELECT 1 FROM entries_fts" in sql and "rowid BETWEEN" not in sql for sql in fts)
        everywhere = search(trail.store, "orders").events  # both logs merged, newest first
        assert [e["id"] for e in everywhere[:3]] == ["evt-01000001", "evt-01000000", f"evt-{total - 1:08d}"]

"""search() on PostgreSQL equals search() on SQLite: the same events sealed into both, the same pages."""

from __future__ import annotations

import json
import random
import re
import warnings

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trailseal
from tests.api.server import Server
from tests.cluster.conftest import cluster_data_dir, delete_stream, nats_url  # noqa: F401 - fixture
from tests.conftest import make_event
from tests.postgres.fixtures import new_schema, pg_database, pg_server, pg_url  # noqa: F401 - fixtures
from tests.postgres.helpers import count_by_partition
from tests.query.test_search import NOW, all_pages, expected, queries, random_event, without_privacy
from trailseal.api import create_app
from trailseal.api.ops import search_backlog
from trailseal.jobs import search_index_jobs
from trailseal.query import QueryError, index_pg, language, search_pg
from trailseal.query.language import And, Not, Or, Term
from trailseal.query.sealed import search_trail, timeline_trail
from trailseal.query.search import count, search, timeline

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient  # noqa: E402


def seal_both(tmp_path_factory, pg_url: str, events: list[dict]):  # noqa: F811
    """The same events, in the same batches, into a SQLite and a PostgreSQL data dir (privacy off)."""
    trails = []
    for name, store in (("sqlite", None), ("pg", pg_url)):
        root = tmp_path_factory.mktemp(name) / "data"
        args = {"store": store} if store else {}
        trail = trailseal.open(without_privacy(trailseal.init(root, origin="test.trailseal", **args)))
        for start in range(0, len(events), 500):
            trail.append(events[start:start + 500])
        trails.append(trail)
    return trails


@pytest.fixture(scope="module")
def both(tmp_path_factory, pg_database):  # noqa: F811
    """1,000 varied events in SQLite and PostgreSQL; yields (sqlite trail, pg trail, stored events). Enough for
    every value the generator draws to occur many times and for ties in time across logs; a page walk's cost
    grows with the hits, so more events only make each example slower."""
    rng = random.Random(20261101)
    events = [random_event(i, rng) for i in range(1000)]
    lite, pg = seal_both(tmp_path_factory, new_schema(pg_database), events)
    conn = lite.store._conn()
    stored = {(log, idx): (seq, trailseal_json(data))
              for seq, log, idx, data in conn.execute("SELECT seq, log, idx, data FROM entries")}
    yield lite, pg, stored
    lite.close()
    pg.close()


def trailseal_json(data: bytes) -> dict:
    import msgspec

    return msgspec.json.decode(data)


def pg_order(keys: list[tuple[str, int]], stored: dict) -> list[tuple[str, int]]:
    """Keys in PostgreSQL's order: newest first by (time, idx, log); SQLite breaks time ties by commit."""
    return sorted(keys, key=lambda k: (stored[k][1]["time"], k[1], k[0]), reverse=True)


# -- the differential test -------------------------------------------------------------------------
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(query=queries, limit=st.sampled_from([7, 50, 1000]), log=st.sampled_from([None, "default", "audit"]))
def test_postgres_pages_equal_sqlite_pages(both, query, limit, log):
    lite, pg, stored = both
    want = all_pages(lite.store, query, max(limit, count(lite.store, query, log=log, now=NOW) // 8 + 1), log)
    limit = max(limit, len(want) // 8 + 1)
    found = all_pages(pg.store, query, limit, log)
    event("no hits" if not want else "some hits" if len(want) < len(stored) // 4 else "many hits")
    assert found == (want if log else pg_order(want, stored))
    assert count(pg.store, query, log=log, now=NOW) == len(want)


def _sealed_glob(node) -> bool:
    """A wildcard on a sealed actor field: it compares random commitments, which differ between data dirs."""
    if isinstance(node, Term):
        return node.field.startswith("actor.") and len(node.value) > 1 and node.value != ("", "")
    if isinstance(node, Not):
        return _sealed_glob(node.item)
    return isinstance(node, And | Or) and any(_sealed_glob(item) for item in node.items)


@pytest.fixture(scope="module")
def both_protected(tmp_path_factory, pg_database):  # noqa: F811
    """1,000 varied events in SQLite and PostgreSQL with the default privacy policy (sealed actors and IPs)."""
    rng = random.Random(20261127)
    events = [random_event(i, rng) for i in range(1000)]
    trails = []
    for name, store in (("sqlite", None), ("pg", new_schema(pg_database))):
        root = tmp_path_factory.mktemp(f"protected-{name}") / "data"
        trail = trailseal.open(trailseal.init(root, origin="test.trailseal", **({"store": store} if store else {})))
        assert trail.protection.enabled
        for start in range(0, len(events), 250):
            trail.append(events[start:start + 250])
        trails.append(trail)
    yield trails
    for trail in trails:
        trail.close()


def trail_pages(trail, query: str, log: str | None, limit: int = 50) -> list[tuple[str, int, str]]:
    """Every page of search_trail (actors resolved through the vault, values revealed)."""
    found, cursor = [], None
    while True:
        page = search_trail(trail, query, log, limit, cursor)
        found.extend((e["log"], e["index"], e["time"]) for e in page.events)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(query=queries.filter(lambda q: not _sealed_glob(q)), log=st.sampled_from(["default", "audit"]))
def test_with_privacy_on_postgres_pages_equal_sqlite_pages(both_protected, query, log):
    """Sealed actor ids resolve through each store's vault and sealed addresses match by their vault value."""
    lite, pg = both_protected
    text = language.format(query)
    want = trail_pages(lite, text, log)
    event("no hits" if not want else "some hits")
    assert trail_pages(pg, text, log) == want, text


def test_the_two_stores_hold_the_same_entries(both):
    lite, pg, stored = both
    for log in ("default", "audit"):
        assert lite.store.tree_size(log) == pg.store.tree_size(log) > 0
        lite_events, pg_events = ([{k: v for k, v in trailseal_json(d).items() if k != "received"}
                                   for _, d in store.read_entries(log, 0, 50)] for store in (lite.store, pg.store))
        assert lite_events == pg_events


@pytest.mark.parametrize("query", [
    "actor:\"dave.o'brien\"", "actor:x;--", "actor:a\\*b", '"quick brown" -actor:alice', "source:k8s status:>=400",
    "attributes.db.name:ord* OR ip:2001:db8::/32", "since:7d until:1d", "login fa* OR 東*", "muller", "STRASSE",
    "ip:10.0.0.0/8", "-ip:10.0.0.0/8", "source.ip:fe80::/10", "ip:::ffff:0:0/96", "attributes.tags:5",
    "attributes.tags:pci", "attributes.latency_ms:<10", "attributes.flag:true", "attributes.count:>=0",
    "attributes.empty:*", "-attributes.nothing:*", "actor.roles:*", "reason:*ed", "50%", "pass_word", "o'hara",
    "session:s-1*", "trace:00000000000000000000000000000003", "time:>2026-11-01", "time:2026-10-1*", "id:ev-17",
    "action:auth.* -outcome:success", "(actor:alice OR actor:bob) status:500", "request.status:2.01e2",
    "attributes.db.name:audit", "target.id:50%", "target.id:*%*",
])
def test_fixed_queries_match_sqlite_and_brute_force(both, query):
    lite, pg, stored = both
    want = expected(stored, query)
    assert want, "fixed queries are chosen to match something"
    assert all_pages(lite.store, query, 13) == want
    assert all_pages(pg.store, query, 13) == pg_order(want, stored)


def test_timelines_match_sqlite(both):
    lite, pg, stored = both
    for key, value in (("session", "s-3"), ("trace", "00000000000000000000000000000007"), ("actor", "carol")):
        for log in (None, "audit"):
            got = [(e["log"], e["index"]) for e in timeline(pg.store, key, value, "2026-10-05", log=log, now=NOW)]
            want = [(e["log"], e["index"]) for e in timeline(lite.store, key, value, "2026-10-05", log=log, now=NOW)]
            assert got and got == (want if log else pg_order(want, stored)[::-1])


def test_long_words_match_exactly(tmp_path_factory, pg_database):  # noqa: F811
    """Words longer than a tsvector lexeme are cut in the word index; the phrase test keeps them exact."""
    long, twin = "w" * 150 + "x", "w" * 150 + "y"
    events = [make_event(i, attributes={"note": word}) for i, word in enumerate([long, twin, long + " tail"])]
    lite, pg = seal_both(tmp_path_factory, new_schema(pg_database), events)
    try:
        for query in (long, twin, "w" * 120 + "*", long + " tail", "w" * 100, f"{long} ta*"):
            want = [e["id"] for e in search(lite.store, query).events]
            assert [e["id"] for e in search(pg.store, query).events] == want, query
        assert count(pg.store, long) == 2 and count(pg.store, "w" * 100) == 0
    finally:
        lite.close()
        pg.close()


def test_a_cursor_belongs_to_its_query(both):
    _, pg, _ = both
    cursor = search(pg.store, "actor:*", limit=5, now=NOW).next_cursor
    with pytest.raises(QueryError, match="another query"):
        search(pg.store, "actor:alice", limit=5, cursor=cursor, now=NOW)
    with pytest.raises(QueryError, match="invalid cursor"):
        search(pg.store, "actor:*", limit=5, cursor="not a cursor!", now=NOW)


def test_values_are_bound_never_spliced(both):
    _, pg, _ = both
    where, params = search_pg.to_sql(search_pg.parse("actor:\"x'; DROP TABLE entries; --\" \"o'hara\""), NOW)
    assert "DROP" not in where and "hara" not in where and "x'; DROP TABLE entries; --" in params
    assert count(pg.store, "actor:\"x'; DROP TABLE entries; --\"") == 0


# -- plans -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyzed(tmp_path_factory, pg_database):  # noqa: F811
    """20,000 events on PostgreSQL, indexed and ANALYZEd."""
    root = tmp_path_factory.mktemp("plans") / "data"
    trail = trailseal.open(without_privacy(trailseal.init(root, origin="t.trailseal", store=new_schema(pg_database))))
    events = [make_event(i, attributes={"note": "wombat" if i == 4321 else "ok"}) for i in range(20_000)]
    for start in range(0, len(events), 5000):
        trail.append(events[start:start + 5000])
    index_pg.refresh(trail.store)
    trail.store._conn().execute("ANALYZE")
    yield trail
    trail.close()


@pytest.mark.parametrize(("query", "index_name"), [
    ("wombat", "search_text_words"),
    ("actor:user17", "log_actor_id_time_idx"),
    ("ip:10.3.4.0/24", "search_ips_pkey"),
    ("session:s-77", "search_keys_pkey"),
    ("trace:00000000000000000000000000000100", "search_keys_pkey"),
    ("id:evt-00000042", "entry_ids_pkey"),
    ("id:evt-0000004*", "entry_ids_pkey"),
    ("since:2026-11-01T00:01:00Z until:2026-11-01T00:01:05Z", "log_time_idx"),
])
def test_selective_queries_use_an_index(analyzed, query, index_name):
    steps = search_pg.explain(analyzed.store, query, now=NOW, analyze=True)
    plan = "\n".join(steps)
    assert index_name in plan, plan
    assert not any(f"Seq Scan on {name} " in plan for name in count_by_partition(analyzed.store._conn())), plan
    assert count(analyzed.store, query) >= 1


@pytest.mark.parametrize("query", ["wombat OR actor:user17", "outcome:failure (ip:10.3.4.0/24 OR session:s-77)",
                                   "trace:00000000000000000000000000000100 OR id:evt-00000042 OR wombat"])
def test_an_or_of_indexed_leaves_starts_from_their_indexes(analyzed, query):
    """Like SQLite's "or" plan: the union of each branch's index rows, not a walk of the whole log."""
    plan = "\n".join(search_pg.explain(analyzed.store, query, now=NOW, analyze=True))
    assert "log_time_idx" not in plan and "Append" in plan, plan
    assert 1 <= count(analyzed.store, query) < 100


def test_explain_of_a_common_query_stops_early(analyzed):
    """No selective leaf: the page walks the time index newest first and stops after a page."""
    plan = "\n".join(search_pg.explain(analyzed.store, "action:user.*", now=NOW, analyze=True))
    assert re.search(r"Index Scan Backward using entries_\S+_log_time_idx .* rows=101 loops=1", plan), plan
    assert len(search(analyzed.store, "action:user.*", limit=100).events) == 100


# -- privacy, erasure, the index tables ------------------------------------------------------------
@pytest.fixture
def protected(tmp_path, pg_url):  # noqa: F811
    trail = trailseal.open(trailseal.init(tmp_path / "data", origin="t.trailseal", store=pg_url))
    assert trail.protection.enabled
    yield trail
    trail.close()


def test_actor_search_goes_through_the_vault(protected):
    events = [make_event(i, actor={"id": "alice.liddell" if i % 3 == 0 else "bob", "type": "user",
                                   "ip": "10.9.8.7" if i % 3 == 0 else "192.168.1.1"}) for i in range(12)]
    protected.append(events)
    page = search_trail(protected, "actor:alice.liddell", "default")
    assert [e["id"] for e in page.events] == [f"evt-{i:08d}" for i in (9, 6, 3, 0)]
    assert {e["actor"]["id"] for e in page.events} == {"alice.liddell"}  # vault values joined back
    assert count(protected.store, "liddell") == 0 and count(protected.store, "actor:alice.liddell") == 0
    assert search_trail(protected, "actor:nobody", "default").events == []
    assert [e["id"] for e in timeline_trail(protected, "actor", "alice.liddell")] == [
        f"evt-{i:08d}" for i in (0, 3, 6, 9)]


def test_erased_addresses_no_longer_match(protected):
    protected.append([make_event(1, actor={"id": "alice.liddell", "type": "user", "ip": "10.9.8.7"}),
                      make_event(2, actor={"id": "bob", "type": "user", "ip": "10.9.8.7"})])
    assert count(protected.store, "ip:10.0.0.0/8") == 2 and count(protected.store, "10.9.8.7") == 0
    protected.erase("alice.liddell")
    assert count(protected.store, "ip:10.0.0.0/8") == 1
    rows = protected.store._conn().execute("SELECT count(*) FROM search_ips WHERE commitment IS NOT NULL").fetchone()
    assert rows[0] == 1  # the erased subject's address row is gone, bob's stays


def test_a_row_left_behind_by_a_racing_refresh_matches_nothing_and_tidy_drops_it(protected):
    protected.append([make_event(1, actor={"id": "alice.liddell", "type": "user", "ip": "10.9.8.7"})])
    index_pg.refresh(protected.store)
    conn = protected.store._conn()
    commitment = conn.execute("SELECT commitment FROM search_ips WHERE commitment IS NOT NULL").fetchone()[0]
    conn.execute("DELETE FROM vault WHERE commitment = %s", (commitment,))  # as if erased after the refresh read
    assert count(protected.store, "ip:10.0.0.0/8") == 0
    assert index_pg.tidy(protected.store) == 1
    assert conn.execute("SELECT count(*) FROM search_ips").fetchone()[0] == 0


def test_forget_takes_entries_out_of_every_search_table(protected):
    protected.append([make_event(i, attributes={"note": "wombat"}) for i in range(4)])
    index_pg.refresh(protected.store)
    conn = protected.store._conn()
    tables = ("search_text", "search_ips", "search_keys")
    before = [conn.execute(f"SELECT count(*) FROM {t} WHERE log = 'default'").fetchone()[0] for t in tables]
    with conn.transaction():
        index_pg.forget(conn, "default", [1, 2])
    after = [conn.execute(f"SELECT count(*) FROM {t} WHERE log = 'default'").fetchone()[0] for t in tables]
    assert before[0] == 4 and all(a < b for a, b in zip(after, before, strict=True))
    assert conn.execute("SELECT array_agg(idx ORDER BY idx) FROM search_text WHERE log = 'default'").fetchone()[0] == [
        0, 3]


def test_refresh_is_incremental_and_the_job_keeps_it_current(protected):
    protected.append([make_event(i, attributes={"note": "wombat"}) for i in range(3)])
    jobs = search_index_jobs(protected)
    assert [job.name for job in jobs] == ["search-index", "search-tidy"]
    jobs[0].run()
    assert index_pg.pending(protected.store) == 0
    protected.append([make_event(i, attributes={"note": "wombat"}) for i in range(3, 5)])
    assert index_pg.pending(protected.store) == 2
    assert search_backlog(protected.store) == 2  # what /metrics shows
    assert index_pg.refresh(protected.store) == 2 and index_pg.refresh(protected.store) == 0
    assert search_backlog(protected.store) == 0
    assert count(protected.store, "wombat") == 5
    conn = protected.store._conn()
    indexed = conn.execute("SELECT count(*) FROM search_text WHERE log = 'default'").fetchone()[0]
    assert indexed == protected.store.tree_size("default") == 5


def test_the_application_role_keeps_the_search_tables(protected, pg_url):  # noqa: F811
    """The writer role granted by trailseal_grant_writer can index and search; sealed rows stay immutable."""
    role = f"app_{random.randrange(1 << 30)}"
    conn = protected.store._conn()
    conn.execute(f"CREATE ROLE {role} LOGIN")
    conn.execute("SELECT trailseal_grant_writer(%s)", (role,))
    protected.append([make_event(i, attributes={"note": "wombat"}) for i in range(3)])
    from tests.postgres.fixtures import with_params
    from trailseal.store.postgres import PostgresStore

    store = PostgresStore(with_params(pg_url, user=role))
    try:
        assert count(store, "wombat") == 3
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            store._conn().execute("DELETE FROM entry_ids")
    finally:
        store.close()
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


# -- the API on PostgreSQL -------------------------------------------------------------------------
def test_api_q_search_on_postgres(protected):
    app = create_app(protected)
    tokens = app.state.service.tokens
    ingest, reader = tokens.create("ingest")[0], tokens.create("reader")[0]
    events = [make_event(i, outcome="failure" if i % 3 == 0 else "success") for i in range(12)]
    for i, sent in enumerate(events):
        sent["actor"]["id"] = "alice" if i % 2 == 0 else "bob"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/v1/events", json=events, headers=bearer(ingest)).status_code == 200
        h = bearer(reader)
        found = client.get("/v1/events", params={"q": "actor:alice outcome:failure", "log": "default"}, headers=h)
        assert found.status_code == 200, found.text
        assert sorted(e["index"] for e in found.json()["events"]) == [0, 6]
        assert {e["event"]["actor"]["id"] for e in found.json()["events"]} == {"alice"}
        page1 = client.get("/v1/events", params={"q": "actor:bob", "log": "default", "limit": 4}, headers=h).json()
        page2 = client.get("/v1/events", params={"q": "actor:bob", "log": "default", "limit": 4,
                                                 "cursor": page1["next_cursor"]}, headers=h).json()
        assert len(page1["events"]) == 4 and len(page2["events"]) == 2
        assert not {e["index"] for e in page1["events"]} & {e["index"] for e in page2["events"]}
        bad = client.get("/v1/events", params={"q": "actor:alice outcome:", "log": "default"}, headers=h)
        assert bad.status_code == 400 and "col" in bad.json()["error"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_q_search_on_an_api_node(tmp_path, pg_url, nats_url):  # noqa: F811
    """`serve --role api` on a PostgreSQL store answers `GET /v1/events?q=` (issue 9)."""
    path = cluster_data_dir(tmp_path, pg_url, nats_url)
    with trailseal.open(path) as trail:
        trail.append([make_event(i, outcome="failure" if i % 4 == 0 else "success",
                                 attributes={"note": "wombat" if i == 7 else "ok"}) for i in range(40)])
    server = Server(path, "--role", "api", "--node", "api-1")
    reader = server.token(role="reader")
    server.start(timeout=60)
    try:
        h = bearer(reader)
        found = httpx.get(server.url + "/v1/events", params={"q": "wombat OR (outcome:failure ip:10.0.0.0/16)",
                                                            "log": "default"}, headers=h, timeout=30)
        assert found.status_code == 200, found.text
        assert [e["index"] for e in found.json()["events"]] == [7, 0]  # event 0 alone has an address in 10.0/16
    finally:
        server.stop()
        delete_stream(nats_url, trailseal.config.load(path).bus.stream)


def test_cli_index_query_and_timeline_on_postgres(protected):
    from typer.testing import CliRunner

    from trailseal.cli import app as cli

    protected.append([make_event(i, attributes={"note": "wombat" if i == 2 else "ok"}) for i in range(5)])
    data = str(protected.directory)
    indexed = CliRunner().invoke(cli, ["index", "--data", data])
    assert indexed.exit_code == 0 and "indexed 6 new entries" in indexed.output, indexed.output
    found = CliRunner().invoke(cli, ["query", "wombat", "--data", data])
    assert found.exit_code == 0, found.output
    assert [json.loads(line)["index"] for line in found.stdout.splitlines()] == [2]
    trace = CliRunner().invoke(cli, ["timeline", f"trace:{2:032x}", "--data", data])
    assert trace.exit_code == 0 and len(trace.stdout.splitlines()) == 1, trace.output


def test_reset_then_refresh_rebuilds_every_search_table(protected):
    from trailseal.cli_index import catch_up_index, reset_index

    protected.append([make_event(i, attributes={"note": "wombat"}) for i in range(6)])
    index_pg.refresh(protected.store)
    conn = protected.store._conn()
    tables = ("search_text", "search_ips", "search_keys", "search_state")
    full = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
    conn.execute("DELETE FROM search_text WHERE idx % 2 = 0")
    conn.commit()
    assert count(protected.store, "wombat") < 6
    reset_index(protected)
    assert [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables] == [0, 0, 0, 0]
    assert catch_up_index(protected) == sum(protected.store.tree_size(log.name) for log in protected.store.logs())
    assert [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables] == full
    assert count(protected.store, "wombat") == 6

"""Differential test: our compiled rules against pySigma's SQLite backend as the oracle.

Hypothesis generates batches of flat events; each batch goes into an in-memory SQLite table
(one column per field, text columns NOCASE like Zircolite's, ``raw`` holding our keyword text)
and into the engine. Every rule must select exactly the same events; every correlation must
alert for exactly the groups whose windows the oracle finds, at the earliest such window.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection

from trailseal.detect import Engine, compile_rule
from trailseal.detect.correlate import format_epoch
from trailseal.detect.text import raw_text

TEXT_FIELDS = ("user", "path", "ua", "ip", "msg")
BASE = 1_767_225_600  # 2026-01-01T00:00:00Z

RULES = {
    "eq": "sel:\n  user: alice",
    "list": "sel:\n  user: [root, admin, '']",
    "contains_escapes": "sel:\n  user|contains: ['a%b', 'a_b', 'x*y']",
    "starts_ends": "sel:\n  - user|startswith: 'a_'\n  - user|endswith: ce",
    "wildcards": "sel:\n  user: 'a?i*'",
    "escaped_wildcard": "sel:\n  user: 'x\\*y'",
    "cased": "sel:\n  user|cased: Alice",
    "contains_all": "sel:\n  path|contains|all: ['/admin', '.php']",
    "cidr": "sel:\n  ip|cidr: ['10.0.0.0/8', '172.16.0.0/12']",
    "regex": "sel:\n  path|re: '^/api/v[0-9]+/'",
    "regex_i": "sel:\n  path|re|i: 'ADMIN\\.PHP$'",
    "numbers": "sel:\n  status|gte: 400\nfilter:\n  status: 404",
    "null": "sel:\n  ua: null",
    "exists": "sel:\n  ua|exists: true",
    "empty": "sel:\n  ua: ''",
    "fieldref": "sel:\n  user|fieldref: ua",
    "windash": "sel:\n  msg|windash|contains: ' -enc '",
    "base64offset": "sel:\n  msg|base64offset|contains: 'admin'",
    "keywords": "keywords:\n  - 'union select'\n  - 'a%b'\n  - '/admin'\n  - 'o*r'",
    "one_of": "sel_a:\n  user: root\nsel_b:\n  status: 500\nfilter_x:\n  ip: 8.8.8.8",
    "all_of": "sel_a:\n  user|startswith: a\nsel_b:\n  status|lt: 300",
    "nested": "sel_a:\n  user: bob\nsel_b:\n  path|contains: admin\nsel_c:\n  ua|contains: curl",
}
CONDITIONS = {
    "numbers": "sel and not filter",
    "one_of": "1 of sel_* and not filter_x",
    "all_of": "all of sel_*",
    "nested": "(sel_a or sel_b) and not sel_c",
    "keywords": "keywords",
}

CORRELATIONS = """
title: errors
name: errors
status: test
logsource: {product: oracle}
detection:
    sel:
        status|gte: 400
    condition: sel
---
title: error burst per ip
id: 11111111-2222-4333-8444-555555555555
name: burst
correlation:
    type: event_count
    rules: [errors]
    group-by: [ip]
    timespan: 60s
    condition: {gte: 3}
---
title: logins
name: logins
status: test
logsource: {product: oracle}
detection:
    sel:
        path|startswith: /login
    condition: sel
---
title: many users per ip
id: 66666666-7777-4888-8999-aaaaaaaaaaaa
name: spray
correlation:
    type: value_count
    rules: [logins]
    group-by: [ip]
    timespan: 120s
    condition: {gte: 3, field: user}
"""


def rule_text(name: str, body: str) -> str:
    condition = CONDITIONS.get(name, "sel")
    indented = "\n".join("    " + line for line in body.splitlines())
    return (
        f"title: rule {name}\nstatus: test\nlogsource:\n    product: oracle\n"
        f"detection:\n{indented}\n    condition: {condition}\n"
    )


SINGLE = {name: SigmaCollection.from_yaml(rule_text(name, body))[0] for name, body in RULES.items()}
BACKEND = sqliteBackend(fulltext_field="raw")
SQL = {
    name: BACKEND.convert(SigmaCollection.from_yaml(rule_text(name, body)))[0] for name, body in RULES.items()
}
CORRELATION_SQL = BACKEND.convert(SigmaCollection.from_yaml(CORRELATIONS))
OURS = {name: compile_rule(rule) for name, rule in SINGLE.items()}

B64 = [base64.b64encode(s.encode()).decode() for s in ("xadminx", "yy admin", "z admin!", "nothing")]
users = st.one_of(
    st.sampled_from(
        [
            "alice",
            "Alice",
            "ALICE",
            "bob",
            "root",
            "admin",
            "a_b",
            "a%b",
            "aXb",
            "x*y",
            "xzy",
            "a_c",
            "alice_",
            "grace",
            "",
            "curl",
        ]
    ),
    st.text(alphabet="abilcex*?%_\\ ", max_size=6),
)
paths = st.sampled_from(
    [
        "/",
        "/admin/index.php",
        "/ADMIN.PHP",
        "/api/v1/items",
        "/api/vx/items",
        "/login",
        "/login?next=/admin",
        "/search?q=union select",
        "/a%b",
        "/x.php",
    ]
)
agents = st.one_of(st.none(), st.sampled_from(["", "curl/8.0", "Mozilla/5.0", "alice", "Alice"]))
ips = st.one_of(
    st.none(),
    st.sampled_from(
        ["10.1.2.3", "10.255.0.1", "172.16.5.4", "172.32.0.1", "192.168.1.1", "8.8.8.8", "not-an-ip"]
    ),
)
statuses = st.one_of(st.none(), st.sampled_from([200, 201, 302, 399, 400, 401, 403, 404, 500]))
messages = st.one_of(
    st.none(),
    st.sampled_from(
        ["run -enc abc", "run /enc abc", "run \u2013enc abc", "run +enc abc", "or", "o--r", *B64]
    ),
)
rows = st.fixed_dictionaries(
    {
        "user": users,
        "path": paths,
        "ua": agents,
        "ip": ips,
        "status": statuses,
        "msg": messages,
        "gap": st.integers(0, 25),
    }
)


def as_events(batch: list[dict]) -> list[dict]:
    """Flat rows as sealed-event dicts (fields under attributes, absent when None)."""
    events, moment = [], BASE
    for index, row in enumerate(batch):
        moment += row["gap"]
        fields = {k: v for k, v in row.items() if k != "gap" and v is not None}
        events.append(
            {
                "time": format_epoch(moment),
                "log": "oracle",
                "index": index,
                "attributes": fields,
                "source": {"component": "web", "kind": "app", "format": "oracle"},
            }
        )
    return events


def load(events: list[dict]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, lambda p, v: v is not None and re.search(p, str(v)) is not None)
    text_columns = ", ".join(f"{f} TEXT COLLATE NOCASE" for f in TEXT_FIELDS)
    db.execute(f"CREATE TABLE logs (timestamp TEXT, {text_columns}, status INTEGER, raw TEXT)")
    db.executemany(
        "INSERT INTO logs (rowid, timestamp, user, path, ua, ip, msg, status, raw) VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (
                e["index"] + 1,
                e["time"],
                *(e["attributes"].get(f) for f in TEXT_FIELDS),
                e["attributes"].get("status"),
                raw_text(e).decode(),
            )
            for e in events
        ],
    )
    return db


def oracle_rows(db: sqlite3.Connection, sql: str) -> set[int]:
    assert sql.startswith("SELECT * FROM logs WHERE ")
    return {r[0] - 1 for r in db.execute("SELECT rowid" + sql[len("SELECT *") :])}


def oracle_first_windows(db: sqlite3.Connection) -> dict[tuple[str, str], tuple[float, list[int]]]:
    """Earliest qualifying window per (rule title, group) from the oracle's correlation SQL."""
    first: dict[tuple[str, str], tuple[float, list[int]]] = {}
    for sql, title in zip(CORRELATION_SQL, ("error burst per ip", "many users per ip"), strict=True):
        for row in db.execute(sql):
            group, end, ids = json.loads(row[1])["ip"], row[4], json.loads(row[8])
            key = (title, group)
            if key not in first or end < first[key][0]:
                first[key] = (end, sorted(int(i.split(":")[1]) - 1 for i in ids))
    return first


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(st.lists(rows, min_size=150, max_size=250))
def test_single_event_rules_agree_with_sqlite(batch: list[dict]):
    events = as_events(batch)
    db = load(events)
    for name, sql in SQL.items():
        ours = {e["index"] for e in events if OURS[name](e)}
        assert ours == oracle_rows(db, sql), f"rule {name!r}"


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(st.lists(rows, min_size=150, max_size=250))
def test_correlations_agree_with_sqlite(batch: list[dict]):
    events = as_events(batch)
    expected = oracle_first_windows(load(events))
    engine = Engine(SigmaCollection.from_yaml(CORRELATIONS), lateness=0)
    first: dict[tuple[str, str], tuple[str, list[int]]] = {}
    for event in events:
        for alert in engine.process(event):
            key = (alert.title, alert.group["ip"])
            first.setdefault(key, (alert.last_time, sorted(i for _, i in alert.events)))
    assert set(first) == set(expected)
    for key, (end, ids) in expected.items():
        assert first[key][0] == format_epoch(end), key
        # the oracle's window also holds events with the same timestamp that arrive after ours fired
        assert set(first[key][1]) <= set(ids), key
        assert all(events[i]["time"] == format_epoch(end) for i in set(ids) - set(first[key][1])), key


def test_oracle_sees_the_rules():
    """The generated data exercises every rule (guards against a vacuous comparison)."""
    events = as_events(
        [
            {"user": u, "path": p, "ua": a, "ip": "10.1.2.3", "status": s, "msg": m, "gap": 1}
            for u, p, a, s, m in [
                ("alice", "/admin/index.php", None, 404, B64[0]),
                ("root", "/api/v1/x", "", 500, "run /enc abc"),
                ("a_b", "/search?q=union select", "a_b", 200, "o--r"),
                ("Alice", "/x.php", "curl/8.0", 401, None),
                ("x*y", "/ADMIN.PHP", "Alice", 201, "run -enc abc"),
            ]
        ]
    )
    db = load(events)
    hits = {name: oracle_rows(db, sql) for name, sql in SQL.items()}
    assert all(
        hits[name]
        for name in (
            "eq",
            "list",
            "contains_escapes",
            "starts_ends",
            "wildcards",
            "cased",
            "contains_all",
            "cidr",
            "regex",
            "regex_i",
            "numbers",
            "null",
            "exists",
            "empty",
            "fieldref",
            "windash",
            "base64offset",
            "keywords",
            "one_of",
            "all_of",
            "nested",
            "escaped_wildcard",
        )
    )
    for name in SQL:
        assert {e["index"] for e in events if OURS[name](e)} == hits[name], name

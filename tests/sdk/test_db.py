"""Database hooks: sqlite3 through the DB-API wrapper and SQLAlchemy through engine events, each event
read back from a real server; the request's actor reaches queries run while serving it."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from trailseal.sdk import acting_as, dbapi, set_actor
from trailseal.sdk.asgi import TrailsealMiddleware
from trailseal.sdk.dbapi import describe
from trailseal.sdk.sqlalchemy import instrument


def test_sqlite3_statements_become_redacted_db_query_events(client, events):
    conn = dbapi.wrap(sqlite3.connect(":memory:"), client, database="shop")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, balance REAL)")
    conn.executemany("INSERT INTO users (email, balance) VALUES (?, ?)", [("a@x.io", 1.0), ("b@x.io", 2.0)])
    with acting_as("alice"):
        cur = conn.cursor()
        cur.execute("SELECT u.email FROM users u WHERE u.email = 'a@x.io' AND u.balance > 0.5")
        assert cur.fetchall() == [("a@x.io",)]
        conn.execute("UPDATE users SET balance = balance + 10 WHERE id IN (1, 2)")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM missing_table WHERE token = 'tok_live_123'")
    create, insert, select, update, failed = events(5)
    assert create["category"] == "config" and create["attributes"]["tables"] == ["users"]
    assert insert["attributes"]["rows"] == 2 and insert["category"] == "data_change"
    assert select["attributes"]["statement"] == "SELECT u.email FROM users u WHERE u.email = ? AND u.balance > ?"
    assert select["actor"]["id"] == "alice" and select["target"] == {"type": "table", "id": "users"}
    assert "rows" not in select["attributes"] and select["attributes"]["duration_ms"] >= 0
    assert update["attributes"]["rows"] == 2 and update["actor"]["id"] == "alice"
    assert update["attributes"]["statement"] == "UPDATE users SET balance = balance + ? WHERE id IN (?, ?)"
    assert failed["outcome"] == "error" and "no such table" in failed["reason"]
    assert "tok_live_123" not in str(failed) and failed["attributes"]["database"] == "shop"


def test_a_request_actor_reaches_queries_run_while_serving_it(client, events):
    conn = dbapi.wrap(sqlite3.connect(":memory:", check_same_thread=False), client)

    def orders(request):
        set_actor({"id": "bob", "session": "s1"})
        conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'orders'")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/orders", orders)])
    app.add_middleware(TrailsealMiddleware, client=client)
    with TestClient(app, client=("192.0.2.7", 1)) as web:
        web.get("/orders", headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    query, request = events(2)
    assert query["action"] == "db.query" and request["action"] == "http.request"
    session = query["actor"].pop("session")  # the server may pseudonymize it; it stays joinable
    assert query["actor"] == {"id": "bob", "ip": "192.0.2.7", "type": "user", "user_agent": "testclient"}
    assert session == request["actor"]["session"]
    assert query["request"]["trace_id"] == request["request"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert request["actor"]["id"] == "bob"


def test_sqlalchemy_engine_events(client, events):
    engine = sa.create_engine("sqlite://")
    remove = instrument(engine, client, actor_resolver=lambda: "svc-reports")
    meta = sa.MetaData()
    notes = sa.Table("notes", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(notes.insert(), [{"body": "secret one"}, {"body": "secret two"}])
        conn.execute(sa.text("UPDATE notes SET body = 'redacted?' WHERE id = 2"))
        assert conn.execute(sa.select(notes.c.body).where(notes.c.id == 1)).scalar() == "secret one"
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT * FROM nowhere WHERE x = 42"))
    remove()
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT 1"))
    create, insert, update, select, failed = events(5)
    assert insert["attributes"]["rows"] == 2 and insert["attributes"]["tables"] == ["notes"]
    assert update["attributes"]["statement"] == "UPDATE notes SET body = ? WHERE id = ?"
    assert update["attributes"]["rows"] == 1 and update["actor"]["id"] == "svc-reports"
    assert select["category"] == "data_access" and select["target"]["id"] == "notes"
    assert failed["outcome"] == "error" and failed["attributes"]["statement"] == "SELECT * FROM nowhere WHERE x = ?"
    assert "secret" not in str([create, insert, update, select, failed])
    assert len(events()) == 5  # nothing after remove()


@pytest.mark.parametrize("sql, statement, operation, tables", [
    ("SELECT * FROM a JOIN b ON a.id = b.id WHERE a.x = 'y' -- note 5", "SELECT * FROM a JOIN b ON a.id = b.id "
     "WHERE a.x = ?", "SELECT", ("a", "b")),
    ("INSERT INTO t (n) VALUES (-1.5e3), (0x1F), (N'ü')", "INSERT INTO t (n) VALUES (-?), (?), (?)", "INSERT",
     ("t",)),
    ('DELETE FROM "Audit Log" WHERE ts < $1 /* 2024 */', 'DELETE FROM "Audit Log" WHERE ts < $1', "DELETE",
     ("Audit Log",)),
    ("SELECT t1.c2 FROM s.t1, t2 AS x WHERE col3 = :p4", "SELECT t1.c2 FROM s.t1, t2 AS x WHERE col3 = :p4",
     "SELECT", ("s.t1", "t2")),
    ("SELECT $$a 'b' 1$$", "SELECT ?", "SELECT", ()),
    ("GRANT SELECT ON users TO bob", "GRANT SELECT ON users TO bob", "GRANT", ()),
])
def test_statement_redaction_and_tables(sql, statement, operation, tables):
    assert describe(sql)[0] == statement and describe(sql)[1] == operation and describe(sql)[3] == tables

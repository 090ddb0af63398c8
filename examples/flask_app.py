"""A small Flask shop audited by trailseal: every request, login and query is sealed.

    TRAILSEAL_URL=http://127.0.0.1:8080 TRAILSEAL_TOKEN=... flask --app examples.flask_app run

The lines marked ``# audit`` are all the instrumentation there is.
"""

from __future__ import annotations

import os
import sqlite3

from flask import Flask, abort, request

from trailseal.sdk import Client, dbapi, set_actor  # audit
from trailseal.sdk.wsgi import instrument_flask  # audit

audit = Client(os.environ["TRAILSEAL_URL"], os.environ["TRAILSEAL_TOKEN"], source="shop-web")  # audit
app = Flask(__name__)
instrument_flask(app, audit)  # audit
db = dbapi.wrap(sqlite3.connect(":memory:", check_same_thread=False), audit)  # audit
db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, owner TEXT, total REAL)")
db.executemany("INSERT INTO orders (owner, total) VALUES (?, ?)", [("alice", 12.5), ("bob", 99.0)])
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


@app.post("/login")
def login() -> dict:
    form = request.get_json()
    set_actor(form["user"])  # audit: who tried, also when it fails
    if PASSWORDS.get(form["user"]) != form["password"]:
        abort(401)
    return {"token": f"t-{form['user']}"}


@app.get("/orders/<int:order_id>")
def order(order_id: int) -> dict:
    user = request.headers.get("Authorization", "").removeprefix("Bearer t-")
    if user not in PASSWORDS:
        abort(401)
    set_actor(user)  # audit
    row = db.execute("SELECT owner, total FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        abort(404)
    if row[0] != user:
        abort(403)
    return {"id": order_id, "total": row[1]}


@app.get("/healthz")
def health() -> dict:
    return {"ok": True}

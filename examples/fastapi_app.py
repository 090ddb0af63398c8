"""A small FastAPI shop audited by trailseal: every request, login and query is sealed.

    TRAILSEAL_URL=http://127.0.0.1:8080 TRAILSEAL_TOKEN=... uvicorn examples.fastapi_app:app

The lines marked ``# audit`` are all the instrumentation there is.
"""

from __future__ import annotations

import os
import sqlite3

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

from trailseal.sdk import Client, dbapi, set_actor  # audit
from trailseal.sdk.asgi import TrailsealMiddleware  # audit

audit = Client(os.environ["TRAILSEAL_URL"], os.environ["TRAILSEAL_TOKEN"], source="shop-api")  # audit
app = FastAPI()
app.add_middleware(TrailsealMiddleware, client=audit)  # audit
db = dbapi.wrap(sqlite3.connect(":memory:", check_same_thread=False), audit)  # audit
db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, owner TEXT, total REAL)")
db.executemany("INSERT INTO orders (owner, total) VALUES (?, ?)", [("alice", 12.5), ("bob", 99.0)])
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


class Login(BaseModel):
    user: str
    password: str


@app.post("/login")
def login(form: Login) -> dict:
    set_actor(form.user)  # audit: who tried, also when it fails
    if PASSWORDS.get(form.user) != form.password:
        raise HTTPException(401, "wrong user or password")
    return {"token": f"t-{form.user}"}


@app.get("/orders/{order_id}")
def order(order_id: int, authorization: str = Header("")) -> dict:
    user = authorization.removeprefix("Bearer t-")
    if user not in PASSWORDS:
        raise HTTPException(401, "log in first")
    set_actor(user)  # audit
    row = db.execute("SELECT owner, total FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise HTTPException(404, "no such order")
    if row[0] != user:
        raise HTTPException(403, "not your order")
    return {"id": order_id, "total": row[1]}


@app.get("/healthz")
def health() -> dict:
    return {"ok": True}

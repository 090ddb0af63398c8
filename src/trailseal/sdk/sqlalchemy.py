"""SQLAlchemy hooks: engine event listeners that log one ``db.query`` event per statement executed.

    remove = instrument(engine, client)   # call remove() to stop

Same event as the DB-API wrapper (``trailseal.sdk.dbapi``): redacted statement, tables, rows affected,
duration, and the current request's actor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from trailseal.sdk.dbapi import query_event

STARTS = "trailseal_started"


def instrument(engine: Any, client: Any, actor_resolver: Callable[[], Any] | None = None,
               database: str | None = None) -> Callable[[], None]:
    """Listen on ``engine`` (an Engine or AsyncEngine); returns a function that removes the listeners."""
    target = getattr(engine, "sync_engine", engine)
    name = database or target.url.database
    emit = getattr(client, "emit", None) or (lambda fields: client.log(**fields))

    def log(statement: str, rows: int | None, seconds: float, error: BaseException | None) -> None:
        try:
            actor = actor_resolver() if actor_resolver else None
            emit(query_event(statement, rows, seconds, error, name, actor))
        except Exception:  # noqa: BLE001 - auditing must never break the query path
            pass

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info.setdefault(STARTS, []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        log(statement, getattr(cursor, "rowcount", None), elapsed(conn), None)

    def failed(context) -> None:
        conn = context.connection
        if conn is not None and context.statement is not None:
            log(context.statement, None, elapsed(conn), context.original_exception)

    listeners = [("before_cursor_execute", before), ("after_cursor_execute", after), ("handle_error", failed)]
    for hook, fn in listeners:
        event.listen(target, hook, fn)

    def remove() -> None:
        """Stop logging this engine's statements."""
        for hook, fn in listeners:
            event.remove(target, hook, fn)

    return remove


def elapsed(conn: Any) -> float:
    """Seconds since the matching before_cursor_execute on this connection."""
    starts = conn.info.get(STARTS)
    return time.perf_counter() - starts.pop() if starts else 0.0

"""DB-API 2 hooks: a connection wrapper that logs one ``db.query`` event per statement executed.

    conn = dbapi.wrap(sqlite3.connect("app.db"), client)

The event carries the statement with its literals redacted (strings and numbers become ``?``, comments
are dropped), the tables it names, the rows affected, the duration, and the actor of the current request
(from the middleware's context) unless an ``actor_resolver()`` says otherwise.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

MAX_STATEMENT = 4000
_LITERAL = re.compile(r"""
      (?P<string>(?<![\w$])[NnEeXxBb]?'(?:[^']|'')*'?)
    | (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
    | (?P<number>(?<![\w$.:])(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?![\w$]))
""", re.VERBOSE | re.DOTALL)
_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*))*'
_TABLE = re.compile(rf"\b(?:from|join|into|update|table(?:\s+if\s+(?:not\s+)?exists)?)\s+(?!select\b)({_IDENT})"
                    rf"((?:\s*(?:as\s+)?(?!where\b|join\b|on\b|set\b|values\b)[A-Za-z_]\w*)?(?:\s*,\s*{_IDENT}"
                    rf"(?:\s+(?:as\s+)?(?!where\b|join\b|on\b)[A-Za-z_]\w*)?)*)", re.IGNORECASE)
_LIST_ITEM = re.compile(rf",\s*({_IDENT})")
_VERB = re.compile(r"[\s(]*([A-Za-z]+)")
READS = frozenset({"SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "PRAGMA", "VALUES"})
CHANGES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "UPSERT", "COPY"})
SCHEMA = frozenset({"CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "COMMENT"})
GRANTS = frozenset({"GRANT", "REVOKE"})


def redact(sql: str) -> str:
    """The statement with string and number literals replaced by ``?`` and comments removed."""
    def replace(match: re.Match) -> str:
        if match.group("quoted"):
            return match.group(0)
        return " " if match.group("comment") else "?"

    return " ".join(_LITERAL.sub(replace, sql).split())


def tables_of(sql: str) -> list[str]:
    """Table names after FROM, JOIN, INTO, UPDATE and TABLE (a redacted statement), in order, once each."""
    found: list[str] = []
    for match in _TABLE.finditer(sql):
        names = [match.group(1)] + _LIST_ITEM.findall(match.group(2) or "")
        for name in names:
            clean = re.sub(r'["`\[\]]', "", name)
            if clean.lower() not in ("select", "lateral") and clean not in found:
                found.append(clean)
    return found


def category_of(verb: str, statement: str) -> str:
    """data_access for reads, data_change for writes, config for DDL, authorization for grants."""
    if verb == "WITH":
        return "data_change" if re.search(r"\b(insert|update|delete|merge)\b", statement, re.I) else "data_access"
    if verb in CHANGES:
        return "data_change"
    if verb in SCHEMA:
        return "config"
    return "authorization" if verb in GRANTS else "data_access"


@lru_cache(maxsize=2048)
def describe(sql: str) -> tuple[str, str, str, tuple[str, ...]]:
    """(redacted statement, operation, category, tables) of a statement; cached, statements repeat."""
    statement = redact(sql)[:MAX_STATEMENT]
    verb_match = _VERB.match(statement)
    verb = verb_match.group(1).upper() if verb_match else ""
    return statement, verb, category_of(verb, statement), tuple(tables_of(statement))


def query_event(sql: Any, rows: int | None, seconds: float, error: BaseException | None,
                database: str | None, actor: Any) -> dict[str, Any]:
    """The log() arguments of one executed statement."""
    statement, verb, category, tables = describe(sql if isinstance(sql, str) else str(sql))
    attributes: dict[str, Any] = {"statement": statement, "operation": verb, "tables": list(tables),
                                  "duration_ms": round(seconds * 1000, 3)}
    fields: dict[str, Any] = {"category": category, "action": "db.query",
                              "outcome": "error" if error is not None else "success", "attributes": attributes}
    if rows is not None and rows >= 0:
        attributes["rows"] = rows
    if database:
        attributes["database"] = database
    if tables:
        fields["target"] = {"type": "table", "id": tables[0]}
    if error is not None:
        fields["reason"] = f"{type(error).__name__}: {error}"[:1000]
    if actor is not None:
        fields["actor"] = actor
    return fields


class _Hooks:
    """What the wrappers need to log: the client, the database name, the actor resolver."""

    def __init__(self, client: Any, actor_resolver: Callable[[], Any] | None, database: str | None):
        self.client, self.actor_resolver, self.database = client, actor_resolver, database
        self.emit = getattr(client, "emit", None) or (lambda fields: client.log(**fields))

    def run(self, cursor: Any, method: str, sql: Any, *args: Any) -> None:
        """Call one of the cursor's execute methods, timing it, and log the statement (also when it raises)."""
        started = time.perf_counter()
        try:
            getattr(cursor, method)(sql, *args)
        except Exception as exc:
            self.record(sql, None, time.perf_counter() - started, exc)
            raise
        self.record(sql, getattr(cursor, "rowcount", None), time.perf_counter() - started, None)

    def record(self, sql: Any, rows: int | None, seconds: float, error: BaseException | None) -> None:
        try:
            actor = self.actor_resolver() if self.actor_resolver else None
            self.emit(query_event(sql, rows, seconds, error, self.database, actor))
        except Exception:  # noqa: BLE001 - auditing must never break the query path
            pass


class CursorProxy:
    """A DB-API cursor that logs what it executes; everything else passes through."""

    def __init__(self, cursor: Any, hooks: _Hooks):
        self._cursor, self._hooks = cursor, hooks

    def execute(self, sql: Any, *args: Any) -> CursorProxy:
        self._hooks.run(self._cursor, "execute", sql, *args)
        return self

    def executemany(self, sql: Any, *args: Any) -> CursorProxy:
        self._hooks.run(self._cursor, "executemany", sql, *args)
        return self

    def executescript(self, sql: str) -> CursorProxy:
        self._hooks.run(self._cursor, "executescript", sql)
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self):
        return iter(self._cursor)

    def __enter__(self) -> CursorProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.close()


class ConnectionProxy:
    """A DB-API connection whose cursors (and sqlite3-style ``execute`` shortcuts) log statements."""

    def __init__(self, connection: Any, hooks: _Hooks):
        self._connection, self._hooks = connection, hooks

    def cursor(self, *args: Any, **kwargs: Any) -> CursorProxy:
        return CursorProxy(self._connection.cursor(*args, **kwargs), self._hooks)

    def execute(self, sql: Any, *args: Any) -> CursorProxy:
        return self.cursor().execute(sql, *args)

    def executemany(self, sql: Any, *args: Any) -> CursorProxy:
        return self.cursor().executemany(sql, *args)

    def executescript(self, sql: str) -> CursorProxy:
        return self.cursor().executescript(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def __enter__(self) -> ConnectionProxy:
        self._connection.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._connection.__exit__(*exc)


def wrap(connection: Any, client: Any, actor_resolver: Callable[[], Any] | None = None,
         database: str | None = None) -> ConnectionProxy:
    """Wrap a DB-API 2 connection so every statement becomes a ``db.query`` event."""
    return ConnectionProxy(connection, _Hooks(client, actor_resolver, database))

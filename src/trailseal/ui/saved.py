"""Saved searches: a name and a query, per token, in a small SQLite file beside the store (ui.db)."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FILE = "ui.db"
MAX_NAME, MAX_QUERY, MAX_PER_OWNER = 80, 2000, 200


class SavedSearchError(ValueError):
    """A saved search was refused; the message says why."""


@dataclass(frozen=True)
class SavedSearch:
    id: int
    name: str
    query: str
    created: str


class SavedSearches:
    def __init__(self, directory: Path):
        path = directory / FILE
        new = not path.exists()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if new:
            path.chmod(0o600)
        self._db.execute("CREATE TABLE IF NOT EXISTS saved_searches (id INTEGER PRIMARY KEY, owner TEXT NOT NULL,"
                         " name TEXT NOT NULL, query TEXT NOT NULL, created TEXT NOT NULL, UNIQUE (owner, name))")
        self._lock = threading.Lock()

    def list(self, owner: str) -> list[SavedSearch]:
        with self._lock:
            rows = self._db.execute("SELECT id, name, query, created FROM saved_searches WHERE owner=? ORDER BY name",
                                    (owner,)).fetchall()
        return [SavedSearch(*row) for row in rows]

    def save(self, owner: str, name: str, query: str) -> None:
        name, query = name.strip(), query.strip()
        if not name or len(name) > MAX_NAME:
            raise SavedSearchError(f"give the search a name of 1 to {MAX_NAME} characters")
        if not query or len(query) > MAX_QUERY:
            raise SavedSearchError(f"the query must be 1 to {MAX_QUERY} characters")
        with self._lock:
            if len(self.list_unlocked(owner)) >= MAX_PER_OWNER:
                raise SavedSearchError(f"at most {MAX_PER_OWNER} saved searches per token: delete some first")
            self._db.execute("INSERT INTO saved_searches (owner, name, query, created) VALUES (?,?,?,?) "
                             "ON CONFLICT (owner, name) DO UPDATE SET query=excluded.query",
                             (owner, name, query, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))

    def list_unlocked(self, owner: str) -> list:
        return self._db.execute("SELECT id FROM saved_searches WHERE owner=?", (owner,)).fetchall()

    def delete(self, owner: str, search_id: int) -> bool:
        with self._lock:
            return bool(self._db.execute("DELETE FROM saved_searches WHERE owner=? AND id=?",
                                         (owner, search_id)).rowcount)


def saved_searches(svc) -> SavedSearches:
    found = svc.extras.get("ui_saved")
    if found is None:
        found = svc.extras.setdefault("ui_saved", SavedSearches(svc.trail.directory))
    return found

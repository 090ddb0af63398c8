"""Scheduled jobs inside `serve`: each runs on its own interval on one background thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from trailseal.store.base import on_postgres

log = logging.getLogger("trailseal.jobs")


@dataclass
class Job:
    """A named piece of periodic work; ``run`` gets nothing and returns nothing, errors are logged."""

    name: str
    interval_seconds: float
    run: Callable[[], None]
    last_run: float | None = None
    stop: Callable[[], None] | None = None  # called once when the scheduler stops (e.g. end a child process)
    last_error: str | None = None
    runs: int = 0
    failures: int = 0


@dataclass
class Scheduler:
    """Runs due jobs one at a time; a failing job is logged and retried next interval, never fatal."""

    jobs: list[Job]
    tick_seconds: float = 1.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Scheduler:
        if self.jobs:
            self._thread = threading.Thread(target=self._loop, name="trailseal-jobs", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for job in self.jobs:
            if job.stop is not None:
                job.stop()

    def run_due(self, now: float | None = None) -> list[str]:
        """Run every job whose interval has passed; the names of those run."""
        now = time.monotonic() if now is None else now
        ran = []
        for job in self.jobs:
            if job.last_run is None or now - job.last_run >= job.interval_seconds:
                self._run(job, now)
                ran.append(job.name)
        return ran

    def _run(self, job: Job, now: float) -> None:
        job.last_run = now
        job.runs += 1
        try:
            job.run()
            job.last_error = None
        except Exception as exc:  # a job must never take the server down
            job.failures += 1
            job.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("scheduled job %s failed", job.name)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.run_due()


def default_jobs(trail) -> list[Job]:
    """The jobs `serve` runs for this data dir (each module adds its own factory below)."""
    jobs: list[Job] = []
    jobs += retention_jobs(trail)
    jobs += validate_jobs(trail)
    jobs += search_index_jobs(trail)
    return jobs


def retention_jobs(trail) -> list[Job]:
    """`retention apply` every `[retention] apply_interval_seconds` (default 3600) when policies exist."""
    conf = trail.config.retention or {}
    if not conf.get("policies"):
        return []
    from trailseal.retention import scheduled_apply

    return [Job("retention", float(conf.get("apply_interval_seconds", 3600)), scheduled_apply(trail))]


def validate_jobs(trail) -> list[Job]:
    """`trailseal validate` every `[compliance] validate_interval_seconds` (0 = never); failures raise alerts."""
    interval = trail.config.compliance.validate_interval_seconds
    if interval <= 0:
        return []
    from trailseal.validate import last_validation

    # first run one interval after start, not at start (a fresh server has nothing to judge yet)
    return [Job("validate", interval, lambda: last_validation(trail).run(trail), last_run=time.monotonic())]


SEARCH_INDEX_BATCH = 5_000  # entries per write transaction: the sealer never waits long for the lock


def search_index_jobs(trail) -> list[Job]:
    """Keep the search indexes (query/index.py, index_pg.py) current every second, so the first search after
    a start or a burst has only the last commits to index; the first run catches up a whole backlog. On
    SQLite a child process does it (query/indexer.py); the job restarts it if it died.
    On PostgreSQL a slower job drops index rows of erased addresses and of entries retention dropped."""
    if on_postgres(trail.store):
        from trailseal.query import index_pg

        return [Job("search-index", 1.0, lambda: index_pg.refresh(trail.store, SEARCH_INDEX_BATCH)),
                Job("search-tidy", 300.0, lambda: index_pg.tidy(trail.store))]
    if type(trail.store).__name__ != "SQLiteStore":
        return []
    from trailseal.query.indexer import IndexerProcess

    indexer = IndexerProcess(trail.store.path)  # indexing runs on the other core, not under the server's GIL
    return [Job("search-index", 1.0, indexer.ensure_running, stop=indexer.stop)]


def start_jobs(trail) -> Scheduler:
    return Scheduler(default_jobs(trail)).start()

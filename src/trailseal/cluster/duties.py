"""Cluster-wide scheduled jobs: retention and validation run on exactly one node at a time.

Every sequencer and detector node runs a `ClusterJobs` thread; they compete for one PostgreSQL
advisory lock (key from the bus stream and "jobs"). The holder runs the same scheduler `serve
--role all` runs (jobs.default_jobs); when its session dies, another node takes the lock and the
jobs go on there. What the jobs seal (pruning, validation results) goes through the node's bus.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from trailseal.cluster.leader import LeaderLock, lock_key
from trailseal.jobs import Job, Scheduler, default_jobs

log = logging.getLogger("trailseal.jobs")
JOBS_SHARD = "jobs"
POLL_SECONDS = 2.0


def jobs_lock_name(node: str) -> str:
    """The lock session's application_name (pg_stat_activity shows who runs the jobs)."""
    return f"trailseal-jobs {node}"


class ClusterJobs:
    """Run the scheduled jobs here while this node holds the cluster's jobs lock."""

    def __init__(self, trail, node: str, jobs: Callable[[], list[Job]] | None = None,
                 poll_seconds: float = POLL_SECONDS, tick_seconds: float = 1.0):
        self.trail, self.node, self.poll_seconds, self.tick_seconds = trail, node, poll_seconds, tick_seconds
        self.make_jobs = jobs or (lambda: default_jobs(trail))
        self.terms = 0  # how often this node took over the jobs
        self.scheduler: Scheduler | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trailseal-cluster-jobs", daemon=True)

    def start(self) -> ClusterJobs:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    @property
    def leading(self) -> bool:
        return self.scheduler is not None

    def _run(self) -> None:
        key = lock_key(self.trail.config.bus.stream, JOBS_SHARD)
        lock = LeaderLock(self.trail.config.store, key, jobs_lock_name(self.node))
        try:
            while lock.wait(self.poll_seconds, self._stop):
                self._lead(lock)
        finally:
            lock.release()

    def _lead(self, lock: LeaderLock) -> None:
        """Run the jobs until the lock is lost or we are stopped."""
        self.terms += 1
        log.warning("%s: running the cluster's scheduled jobs (term %d)", self.node, self.terms)
        self.scheduler = Scheduler(self.make_jobs(), tick_seconds=self.tick_seconds).start()
        try:
            while not self._stop.wait(self.poll_seconds):
                if not lock.held():
                    log.warning("%s: lost the jobs lock; standing by", self.node)
                    break
        finally:
            self.scheduler.stop()
            self.scheduler = None
            lock.release()

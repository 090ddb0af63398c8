"""Prometheus metrics of one server: accepted/rejected events, commits, checkpoint age, queue depth,
search index backlog, vault rows not keyed yet."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """One registry per app, so tests and several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("trailseal_events_accepted", "Events sealed (new, not re-sent ids).",
                                ["log"], registry=self.registry)
        self.duplicates = Counter("trailseal_events_duplicate", "Re-sent ids answered with their receipt.",
                                  registry=self.registry)
        self.rejected = Counter("trailseal_events_rejected", "Records or requests refused, by reason.",
                                ["reason"], registry=self.registry)
        self.batch = Histogram("trailseal_commit_batch_events", "Events per group commit.",
                               buckets=(1, 10, 100, 500, 1000, 5000, 10000, 20000), registry=self.registry)
        self.latency = Histogram("trailseal_commit_seconds", "Time to seal and commit one group.",
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5),
                                 registry=self.registry)
        self.checkpoint_age = Gauge("trailseal_checkpoint_age_seconds", "Seconds since the newest checkpoint.",
                                    registry=self.registry)
        self.search_backlog = Gauge("trailseal_search_index_behind_events",
                                    "Sealed events the search indexes do not hold yet (searches index them"
                                    " first, so a large backlog makes searches slow).", registry=self.registry)
        self.queue_depth = Gauge("trailseal_queue_events", "Events waiting to be sealed.",
                                 registry=self.registry)
        self.vault_unkeyed = Gauge("trailseal_vault_unkeyed_rows",
                                   "Vault rows whose keys are not settled yet (SQLite: every vault lookup scans"
                                   " them; the search indexer settles them each second).", registry=self.registry)

    def observe_commit(self, events: int, seconds: float) -> None:
        self.batch.observe(events)
        self.latency.observe(seconds)

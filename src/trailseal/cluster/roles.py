"""What each `serve --role` runs. `all` is the embedded single process (cli.serve's own path);
the others split it over processes that share a PostgreSQL store and a NATS JetStream bus."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from trailseal.alerts.integrity import IntegrityWatch
from trailseal.bus.nats import NatsBus
from trailseal.cluster.duties import ClusterJobs
from trailseal.cluster.follower import StoreFollower
from trailseal.cluster.sequencer import Sequencer
from trailseal.datadir import Trail

ROLES = ("all", "ingest", "sequencer", "detector", "api")
HTTP_ROLES = ("ingest", "api")
log = logging.getLogger("trailseal.roles")


class RoleError(ValueError):
    """This role cannot run with this configuration; the message says what to change."""


def default_node() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def check_role(trail: Trail, role: str) -> None:
    """Scale-out roles need a store every node shares."""
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if role != "all" and not trail.config.store.startswith(("postgresql://", "postgres://")):
        raise RoleError(f"--role {role} needs a PostgreSQL store that every node shares: set store = "
                        "\"postgresql://...\" in trailseal.toml (or TRAILSEAL_STORE); the embedded SQLite "
                        "store only works with --role all")


def attach_bus(trail: Trail, node: str) -> NatsBus:
    """Make the NATS bus this node's `trail.sealer`: whatever it seals goes through JetStream."""
    bus = NatsBus(trail.config.bus, max_queue_events=trail.config.server.max_queue_events,
                  name=f"trailseal {node}")
    trail.use_sealer(bus)
    return bus


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    return stop


def run_sequencers(trail: Trail, shards: list[str], node: str, stop: threading.Event) -> list[Sequencer]:
    """One Sequencer per shard (a log name, or "*" for every log), each electing itself, plus a bid for
    the cluster's scheduled jobs; block until stop."""
    attach_bus(trail, node)  # what the scheduled jobs seal goes through the bus like any event
    jobs = ClusterJobs(trail, node).start()
    sequencers = [Sequencer(trail, shard, node) for shard in shards]
    threads = [threading.Thread(target=s.run, name=f"sequencer-{s.status.shard}", daemon=True) for s in sequencers]
    for thread in threads:
        thread.start()
    stop.wait()
    jobs.stop()
    for sequencer in sequencers:
        sequencer.stop()
    for thread in threads:
        thread.join(timeout=30)
    return sequencers


def run_detector(trail: Trail, node: str, stop: threading.Event) -> None:
    """Sigma detection on everything newly sealed in the shared store; findings go out on the bus."""
    from trailseal.api.app import start_detection

    bus = attach_bus(trail, node)
    detection = start_detection(trail)
    follower = StoreFollower(trail, bus.on_commit).start()
    alerts = trail.config.alerts
    integrity = IntegrityWatch(trail, alerts.integrity_interval_seconds, alerts.integrity_full_every).start()
    jobs = ClusterJobs(trail, node).start()
    log.warning("%s: detecting on %s", node, trail.config.store.split("@")[-1])
    stop.wait()
    jobs.stop()
    integrity.stop()
    follower.stop()
    detection.stop()

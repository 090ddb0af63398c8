"""Scale-out nodes share the duties `serve --role all` does alone: the cluster's scheduled jobs run on
exactly one sequencer/detector node (a PostgreSQL advisory lock), move when that node dies, and seal
through the bus; syslog listeners and tails start on ingest nodes, not on api nodes."""

from __future__ import annotations

import socket
import time

import psycopg

import trailseal
from tests.api.server import Server, free_port
from tests.cluster.checks import log_size
from tests.cluster.nodes import Sequencer, wait_for_leader
from tests.conftest import wait_for
from trailseal import config
from trailseal.cluster.duties import ClusterJobs, jobs_lock_name
from trailseal.jobs import Job


def recording_jobs(ran: list[str], node: str):
    return lambda: [Job("probe", 0.1, lambda: ran.append(node))]


def test_one_node_runs_the_jobs_and_another_takes_over(cluster_dir):
    ran: list[str] = []
    trails = [trailseal.open(cluster_dir), trailseal.open(cluster_dir)]
    first = ClusterJobs(trails[0], "node-a", recording_jobs(ran, "a"), poll_seconds=0.2, tick_seconds=0.05).start()
    second = None
    try:
        assert wait_for(lambda: first.leading and "a" in ran, 10), "the only node never ran the jobs"
        second = ClusterJobs(trails[1], "node-b", recording_jobs(ran, "b"), poll_seconds=0.2,
                             tick_seconds=0.05).start()
        time.sleep(1.5)
        assert "b" not in ran and not second.leading, "two nodes ran the cluster's jobs at once"
        first.stop()
        runs_of_a = ran.count("a")
        assert wait_for(lambda: "b" in ran, 10), "the standby never took the jobs over"
        assert ran.count("a") == runs_of_a, "the stopped node kept running jobs"
        assert second.terms == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()
        for trail in trails:
            trail.close()


def test_a_node_whose_lock_session_dies_stops_its_jobs(cluster_dir):
    ran: list[str] = []
    with trailseal.open(cluster_dir) as trail:
        jobs = ClusterJobs(trail, "node-c", recording_jobs(ran, "c"), poll_seconds=0.2, tick_seconds=0.05).start()
        try:
            assert wait_for(lambda: jobs.leading, 10)
            with psycopg.connect(config.load(cluster_dir).store, autocommit=True) as conn:
                killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                      " WHERE application_name = %s", (jobs_lock_name("node-c"),)).fetchone()[0]
            assert killed == 1
            assert wait_for(lambda: jobs.terms == 2, 10), "the node did not notice the lost lock and bid again"
        finally:
            jobs.stop()
    assert not jobs.leading


def validations(data_dir) -> int:
    with trailseal.open(data_dir) as reader:
        size = reader.store.tree_size("trailseal")
        return sum(b'"trailseal.validate"' in reader.entry(i, "trailseal") for i in range(size))


def test_a_sequencer_node_runs_the_scheduled_validation_and_seals_it_through_the_bus(cluster_dir):
    path = cluster_dir / "trailseal.toml"
    path.write_text(path.read_text() + "\n[compliance]\nvalidate_interval_seconds = 1.0\n")
    assert config.load(cluster_dir).compliance.validate_interval_seconds == 1.0
    node = Sequencer(cluster_dir, "seq-jobs").start()
    try:
        wait_for_leader(cluster_dir, 20)
        assert wait_for(lambda: log_size(cluster_dir, "trailseal") > 0 and validations(cluster_dir) >= 2, 60), \
            node.output()[-2000:]
    finally:
        node.stop()
    assert "running the cluster's scheduled jobs" in node.output()


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_syslog_listeners_start_on_ingest_nodes_not_on_api_nodes(cluster_dir):
    port = free_port()
    path = cluster_dir / "trailseal.toml"
    path.write_text(path.read_text() + f'\n[receivers.syslog]\ntcp = "127.0.0.1:{port}"\n')
    api = Server(cluster_dir, "--role", "api").start()
    try:
        time.sleep(0.5)
        assert not listening(port), "an api node opened the syslog listener"
    finally:
        api.stop()
    ingest = Server(cluster_dir, "--role", "ingest").start()
    try:
        assert wait_for(lambda: listening(port), 10), "the ingest node did not open the syslog listener"
    finally:
        ingest.stop()

"""Scale-out (issue 9) on this machine: the sequencer alone draining JetStream into PostgreSQL, the
Sealer alone on PostgreSQL (no bus) for reference, HTTP ingest through 1 and 2 ingest nodes with one
sequencer, and the 200k-event failover run (sequencer SIGKILLed twice, an ingest node once).

Peers are published single-node figures, not runs on this machine (they are Go services needing
MySQL/Spanner): Trillian ~1.2k entries/s, Tessera ~2.9k entries/s (sources in docs/SCALING.md)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bench.bench_server import body_without_ids, lua, wrk
from bench.common import QUICK, Result, report
from bench.events import events

TRILLIAN = 1_200.0  # entries/s, published single-node figure (docs/SCALING.md)
TESSERA = 2_900.0
GOAL = 20_000.0
PG = os.environ.get("TRAILSEAL_TEST_PG") or "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def cluster(root: Path) -> Iterator[Path]:
    """A data dir on a fresh PostgreSQL schema with its own JetStream stream; both removed afterwards."""
    from tests.cluster.conftest import cluster_data_dir, delete_stream
    from tests.cluster.natsd import NatsServer, listening, machine_url
    from tests.postgres.fixtures import new_schema

    from trailseal import config

    own = None if listening(machine_url()) else NatsServer().start()
    url = new_schema(PG)
    data = cluster_data_dir(root, url, own.url if own else machine_url())
    try:
        yield data
    finally:
        delete_stream(own.url if own else machine_url(), config.load(data).bus.stream)
        schema = url.rsplit("search_path%3D", 1)[-1]
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if own:
            own.remove()


def publish(data: Path, count: int) -> None:
    """Fill the stream with ``count`` protected events (not timed)."""
    import trailseal
    from trailseal.cluster import roles

    with trailseal.open(data) as trail:
        roles.attach_bus(trail, "bench-publisher").wait_connected(10)
        source = list(events(count))
        for start in range(0, count, 5_000):
            trail.sealer.seal(trail.prepare(source[start:start + 5_000]), timeout=120)


def backend_cpu(data: Path) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving trailseal's store connections."""
    from trailseal import config

    with psycopg.connect(config.load(data).store) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'trailseal' AND datname = current_database()")]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def drain_rate(data: Path, count: int) -> tuple[float, float, float]:
    """One sequencer sealing a full stream into PostgreSQL: (events/s wall clock from first commit to
    last, sequencer CPU µs per event, PostgreSQL backend CPU µs per event)."""
    import resource

    from tests.cluster.checks import wait_sealed

    import trailseal
    from trailseal.cluster.sequencer import Sequencer

    trail = trailseal.open(data)
    sequencer = Sequencer(trail, "*", "bench")
    thread = threading.Thread(target=sequencer.run, daemon=True)
    thread.start()
    try:
        first = wait_sealed(data, 1, 60)
        started, cpu, db = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), backend_cpu(data)
        done = wait_sealed(data, count, 600)
        elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
        ours = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
        sealed = done - first
        return sealed / elapsed, ours / sealed * 1e6, (backend_cpu(data) - db) / sealed * 1e6
    finally:
        sequencer.stop()
        thread.join(30)
        trail.close()


def sealer_rate(data: Path, count: int) -> float:
    """Events/s of the embedded Sealer on the same PostgreSQL, batches of 5,000 (no bus)."""
    import trailseal

    with trailseal.open(data) as trail:
        prepared = trail.prepare(list(events(count, start=10_000_000)))
        started = time.perf_counter()
        futures = [trail.sealer.submit(prepared[i:i + 5_000]) for i in range(0, count, 5_000)]
        for future in futures:
            future.result()
        return count / (time.perf_counter() - started)


def settled(data: Path) -> tuple[int, float]:
    """Wait until the sequencer has drained the stream (size still for 1.5 s): (size, when it got there)."""
    from tests.cluster.checks import log_size

    size, since = log_size(data), time.perf_counter()
    while time.perf_counter() - since < 1.5:
        time.sleep(0.1)
        now = log_size(data)
        if now != size:
            size, since = now, time.perf_counter()
    return size, since


def http_rate(data: Path, root: Path, nodes: int, seconds: int) -> tuple[float, float]:
    """(acked ev/s over HTTP, ev/s from the first request until all of them were sealed) with ``nodes``
    ingest nodes and one sequencer."""
    from tests.cluster.checks import log_size
    from tests.cluster.nodes import Sequencer, ingest_node, wait_for_leader

    sequencer = Sequencer(data, f"bench-seq-{nodes}").start()
    servers = [ingest_node(data).start() for _ in range(nodes)]
    try:
        wait_for_leader(data, 20)
        before = log_size(data)
        script = lua(root / "batch.lua", servers[0].admin, body_without_ids(500, root / "batch.ndjson"))
        rates: list[float] = []
        runners = [threading.Thread(target=lambda s=s: rates.append(wrk(s.url + "/v1/events", script, 4,
                                                                          seconds)[0])) for s in servers]
        started = time.perf_counter()
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
        acked = sum(rates) * 500
        sealed, drained = settled(data)
        return acked, (sealed - before) / (drained - started)
    finally:
        for server in servers:
            server.stop()
        sequencer.stop()


def failover(data: Path, count: int) -> None:
    from tests.cluster.checks import check_consistent, verify_cli
    from tests.cluster.scenario import run_failover

    run = run_failover(data, count)
    verified = verify_cli(data).returncode == 0
    consistent = check_consistent(data, run.checkpoints) == len(run.checkpoints)
    once = run.size == count and set(run.sealed) == run.acked and len(run.sealed) == count
    print(f"failover run: {count:,} events in {run.seconds:.0f} s, {run.retries} client retries, takeovers "
          f"{', '.join(f'{t:.2f} s' for t in run.takeovers)}, {len(run.checkpoints)} checkpoints sampled; "
          f"sealed exactly once: {once}; verify: {verified}; checkpoints consistent: {consistent}")
    report(Result(f"failover: slowest standby takeover ({count:,} events)", max(run.takeovers), None, "s",
                  goal="<=5 s, all checks true", passed=max(run.takeovers) <= 5 and once and verified and consistent))


def main() -> None:
    print(f"load average before the run: {os.getloadavg()[0]:.1f} (the machine is shared; figures move with it)")
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); skipping the HTTP figures")
    drained = 20_000 if QUICK else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with cluster(root / "drain") as data:
            publish(data, drained)
            rate, ours, db = drain_rate(data, drained)
            report(Result(f"sequencer alone: JetStream -> sealed in PostgreSQL ({drained:,})", rate, TESSERA,
                          "ev/s", "Tessera ~2.9k/s published", ">=20k ev/s", rate >= GOAL))
            report(Result("  same, beside Trillian's published figure", rate, TRILLIAN, "ev/s",
                          "Trillian ~1.2k/s published", ">=20k ev/s", rate >= GOAL))
            implied = 1e6 / max(ours, db)
            print(f"  CPU per sealed event: sequencer {ours:.1f} µs, PostgreSQL backend {db:.1f} µs -> "
                  f"{implied:,.0f} ev/s when each has a core of its own")
            report(Result("  estimate: capacity implied by that CPU cost", implied, TESSERA, "ev/s",
                          "Tessera ~2.9k/s published", "(estimate, no verdict)"))
            rate = sealer_rate(data, drained // 2)
            report(Result("Sealer alone on PostgreSQL, no bus (reference)", rate, None, "ev/s"))
        if shutil.which("wrk") is not None:
            seconds = 4 if QUICK else 10
            for nodes in (1, 2):
                with cluster(root / f"http{nodes}") as data:
                    acked, sealed = http_rate(data, root, nodes, seconds)
                report(Result(f"cluster HTTP ingest, {nodes} ingest node(s), batches of 500", acked, None,
                              "ev/s acked"))
                report(Result(f"  end to end: acked and sealed ({nodes} node(s))", sealed, None, "ev/s"))
        count = 30_000 if QUICK else 200_000
        with cluster(root / "failover") as data:
            failover(data, count)

"""Receiver throughput: events per second sealed and durable, end to end over real sockets.

- syslog over TCP: a separate process sends RFC 5424 frames (octet counting) as fast as the socket
  takes them to a SyslogThread listener; the clock stops when the last event is committed.
- OTLP/HTTP: the API (with the receiver routes) runs under uvicorn in a subprocess; 4 client threads
  post protobuf ExportLogsServiceRequests of 500 records each; every answer comes after the commit.

The floor beside each is ``json.loads`` over as many JSON lines — the sealed events of that same run
— so the ratio says how a receiver compares to merely decoding its own output. Three more lines break
the cost down: parse + validate alone for syslog and OTLP (no I/O, per CPU second of the thread, so
other load on the shared machine stays out) and the sealer alone (pre-validated events).
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import QUICK, Result, report

GOAL = 30_000
EVENTS = 10_000 if QUICK else 60_000
OTLP_BATCH = 500


def syslog_messages(n: int) -> list[bytes]:
    """n RFC 5424 messages with structured data, like a busy rsyslog relay forwards."""
    return [
        (
            f"<86>1 2026-03-01T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z "
            f"web-{i % 8} sshd "
            f'{1000 + i % 50} AUTH [origin ip="10.0.{i % 256}.{i // 256 % 256}"] session opened for user '
            f"u{i % 997}"
        ).encode()
        for i in range(n)
    ]


def syslog_frames(n: int) -> bytes:
    """The messages, octet-counted (RFC 6587) as one TCP stream."""
    return b"".join(str(len(m)).encode() + b" " + m for m in syslog_messages(n))


def _send(address: tuple[str, int], data: bytes) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(data)


def new_trail():
    """A fresh data dir, removed when the bench exits."""
    import trailseal

    root = Path(tempfile.mkdtemp(prefix="bench-receivers-"))
    atexit.register(shutil.rmtree, root, True)
    directory = trailseal.init(root / "data", origin="bench.trailseal")
    return directory, trailseal.open(directory)


def floor(entries: list[bytes]) -> float:
    """json.loads lines per second over the given JSON lines."""
    start = time.perf_counter()
    for entry in entries:
        json.loads(entry)
    return len(entries) / (time.perf_counter() - start)


def sealed_entries(trail, log: str = "default") -> list[bytes]:
    return [data for _, data in trail.store.read_entries(log, 0, trail.store.tree_size(log))]


def bench_syslog_tcp() -> Result:
    from trailseal.receivers.syslog import SyslogThread

    _, trail = new_trail()
    data = syslog_frames(EVENTS)
    with SyslogThread(trail, tcp=("127.0.0.1", 0)) as server:
        trail.pool.start()  # the listener starts the prepare workers; a long-running one has them up
        sender = multiprocessing.get_context("spawn").Process(
            target=_send, args=(server.addresses["tcp"], data)
        )
        start = time.perf_counter()
        sender.start()
        seen, moved = 0, time.monotonic()
        while (done := server.stats.sealed + server.stats.rejected) < EVENTS:  # counted after each commit
            if done > seen:
                seen, moved = done, time.monotonic()
            elif time.monotonic() - moved > 60:
                raise RuntimeError(f"syslog bench stalled at {done:,} of {EVENTS:,} events"
                                   f" (sender exit code {sender.exitcode})")
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        sender.join()
        server.drain()
        assert server.stats.rejected == 0
    entries = sealed_entries(trail)
    trail.close()
    rate = EVENTS / elapsed
    return Result(
        "syslog TCP -> sealed (events/s)",
        rate,
        floor(entries),
        "events/s",
        "json.loads same events",
        f">= {GOAL:,}/s",
        rate >= GOAL,
    )


def otlp_bodies(n: int) -> list[bytes]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

    def attribute(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    bodies = []
    for start in range(0, n, OTLP_BATCH):
        records = [
            LogRecord(
                time_unix_nano=1_772_359_200_000_000_000 + i * 1000,
                severity_number=9,
                event_name="user.login",
                body=AnyValue(string_value=f"login {i}"),
                attributes=[
                    attribute("user.id", f"u{i % 997}"),
                    attribute("event.outcome", "success"),
                    attribute("client.address", f"10.0.{i % 256}.{i // 256 % 256}"),
                ],
            )
            for i in range(start, min(n, start + OTLP_BATCH))
        ]
        resource = ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])
        resource.resource.attributes.append(attribute("service.name", "checkout"))
        bodies.append(ExportLogsServiceRequest(resource_logs=[resource]).SerializeToString())
    return bodies


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(directory: Path, port: int) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_receivers", "serve", str(directory), str(port)],
        cwd=Path(__file__).resolve().parents[1],
        stderr=subprocess.PIPE,
    )
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"bench server did not start: {proc.stderr.read().decode()[-2000:]}")


def bench_otlp_http() -> Result:
    import httpx

    from trailseal.api.auth import TokenStore

    directory, trail = new_trail()
    trail.close()
    tokens = TokenStore(directory)
    token = tokens.create("ingest")[0]
    tokens.close()
    bodies = otlp_bodies(EVENTS)
    port = free_port()
    proc = start_server(directory, port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}
    failures: list[int] = []

    def worker(mine: list[bytes]) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
            for body in mine:
                status = client.post("/v1/logs", content=body).status_code
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=worker, args=(bodies[k::4],)) for k in range(4)]
    try:
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(20)
    import trailseal

    with trailseal.open(directory) as reader:
        entries = sealed_entries(reader)
    assert not failures and len(entries) == EVENTS, (failures[:5], len(entries))
    rate = EVENTS / elapsed
    return Result(
        "OTLP/HTTP protobuf -> sealed (events/s)",
        rate,
        floor(entries),
        "events/s",
        "json.loads same events",
        f">= {GOAL:,}/s",
        rate >= GOAL,
    )


def bench_breakdown() -> list[Result]:
    """Where the time goes: parse + validate on one thread, and the sealer alone."""
    from trailseal.event import from_dict, utc_now
    from trailseal.formats import syslog

    messages = syslog_messages(EVENTS // 2)
    received = utc_now()
    start = time.thread_time()
    items = [from_dict(e, received) for message in messages for e in syslog.parse(message)]
    parse_rate = len(items) / (time.thread_time() - start)
    otlp_rate = otlp_parse_rate(received)
    _, trail = new_trail()
    start = time.perf_counter()
    futures = [trail.sealer.submit(items[i : i + 2000]) for i in range(0, len(items), 2000)]
    for future in futures:
        future.result()
    seal_rate = len(items) / (time.perf_counter() - start)
    trail.close()
    return [
        Result("  syslog parse + validate only (per CPU-s)", parse_rate, None, "events/CPU-s"),
        Result("  OTLP protobuf parse + validate only (per CPU-s)", otlp_rate, None, "events/CPU-s"),
        Result("  sealer alone (validated events)", seal_rate, None, "events/s"),
    ]


def otlp_parse_rate(received: str) -> float:
    """OTLP protobuf bodies to validated events, per CPU second of this thread (no I/O, no sealing)."""
    from trailseal.event import from_dict
    from trailseal.formats import otlp

    bodies = otlp_bodies(EVENTS // 2)
    start = time.thread_time()
    count = 0
    for body in bodies:
        events, _ = otlp.parse_request(body, "application/x-protobuf")
        count += len([from_dict(event, received) for event in events])
    return count / (time.thread_time() - start)


def serve(directory: str, port: int) -> None:
    """The API with the receiver routes (used by the OTLP benchmark's server process)."""
    import uvicorn

    import trailseal
    from trailseal.api import create_app, receivers

    app = create_app(trailseal.open(directory))
    if not any(getattr(r, "path", None) == "/v1/k8s/audit" for r in app.router.routes):
        app.router.routes.extend(receivers.routes)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main() -> list[Result]:
    results = [report(bench_syslog_tcp()), report(bench_otlp_http())]
    return results + [report(r) for r in bench_breakdown()]


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()

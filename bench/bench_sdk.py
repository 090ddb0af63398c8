"""The SDK: what auditing costs the application.

1. A minimal Starlette app (one route) under uvicorn, loaded by `wrk` (a separate C process) on loopback,
   with and without TrailsealMiddleware, and with a do-nothing middleware (wraps ``send``, records nothing:
   the floor for any ASGI middleware), alternating in the same run; the audited app ships its events to a
   stub ingest endpoint (so the figure is the app's cost, not the server's). Also its CPU per request,
   split into the event loop's thread (the request path) and the client's writer and sender threads.
2. The same app called in-process (a direct ASGI driver, no sockets): the CPU the middleware adds on the
   request's thread, and in the whole process (the client's threads run meanwhile); likewise a minimal
   Flask app through `instrument_flask` (a direct WSGI driver).
3. `client.log()` on the caller's thread (thread CPU time) beside stdlib `logging.info` to a do-nothing
   handler.
4. What the machine adds: the plain app pinned to core 0 and wrk to core 1, with and without half a core
   of unrelated Python work beside wrk. The audited app's forwarder is such work, so part of the req/s
   gap in 1 is the other core's work slowing the app's core (shared caches), not the middleware's code.

The two drivers differ in what they count: in-process, a request costs ~8 µs, so the request-path figure
is the middleware alone; under uvicorn a request costs ~100 µs of parsing and socket work, and the app is
one CPU-bound process, so every µs the client's threads spend on an event (build, validate, spool,
gzip, POST) is a µs the event loop does not get: the req/s ratio is the whole cost of auditing.

With the middleware's default transport the events are built, spooled and sent by a forwarder
subprocess; its CPU is reported on its own (it runs on another core when there is one), and the app is
also measured with `transport="thread"` (events built on the client's threads in the app) in the same
rounds. The spread of the baseline's requests/s over the rounds says how far the machine let the figures be
trusted. The CPU per request of everything on the machine (app, forwarder, wrk, the stub) is added up too:
when every core is busy (2 cores: wrk and the app already fill them) req/s can be at most the baseline's
total over the audited one's, whatever the event loop's own share.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bench.common import QUICK, Result, report

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


# -- the apps (uvicorn imports them from here) ---------------------------------------------------------
async def item(request):
    return PlainTextResponse("ok")


def plain_app() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", item), Route("/healthz", item)])


def audited_app(transport: str = "process") -> Starlette:
    from trailseal.sdk import Client
    from trailseal.sdk.asgi import TrailsealMiddleware

    app = plain_app()
    client = Client(os.environ["BENCH_SINK_URL"], "bench", source="bench", spool_dir=os.environ["BENCH_SPOOL"])
    app.add_middleware(TrailsealMiddleware, client=client, transport=transport)
    return app


class PassThrough:
    """The least any request-audit middleware must do: wrap ``send`` to see the response status, take
    the time, and record nothing. Its cost is the floor of what a middleware can cost."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, seen = time.perf_counter(), []

        async def noting(message):
            if message["type"] == "http.response.start":
                seen.append(message["status"])
            await send(message)

        await self.app(scope, receive, noting)
        seen.append(time.perf_counter() - started)


def passthrough_app() -> Starlette:
    app = plain_app()
    app.add_middleware(PassThrough)
    return app


def thread_audited_app() -> Starlette:
    """The middleware building events on the client's threads in the app (``transport="thread"``)."""
    return audited_app("thread")


async def sink_app(scope, receive, send) -> None:
    """A stand-in ingest endpoint: one receipt per NDJSON line, and GET /count of lines received."""
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    if scope["method"] == "GET":
        payload = str(sink_app.count).encode()
    else:
        gzipped = (b"content-encoding", b"gzip") in scope["headers"]
        lines = (gzip.decompress(body) if gzipped else body).count(b"\n")
        sink_app.count += lines
        payload = b'{"accepted":%d,"errors":[],"receipts":[%s]}' % (lines, b",".join([b"{}"] * lines))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


sink_app.count = 0


# -- running them -------------------------------------------------------------------------------------
def serve(target: str, port: int, env: dict[str, str], factory: bool = True) -> subprocess.Popen:
    """uvicorn serving ``target`` on 127.0.0.1:port, once it answers."""
    args = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning", *(["--factory"] if factory else [])]
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"uvicorn {target} did not start")


def cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU time of each thread of a process so far."""
    used = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        used[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return used


def wrk(url: str, seconds: int, connections: int = 32) -> tuple[float, int]:
    """(requests/s, requests completed) from one wrk run."""
    done = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", url],
                          capture_output=True, text=True, check=True)
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw errors:\n{done.stdout}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    return rate, int(re.search(r"(\d+) requests in", done.stdout).group(1))


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu(pid: int) -> dict[int, float]:
    """User + system CPU time so far of each child process of ``pid`` (the forwarder)."""
    used = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[int(child)] = (int(fields[11]) + int(fields[12])) / TICKS
    return used


def measure(target: str, env: dict[str, str], seconds: int, sink_pid: int) -> tuple[float, ...]:
    """(requests/s, CPU µs per request of the event loop's thread, of the other threads, requests, of the
    app's child processes — the forwarder —, of wrk, of the stub ingest endpoint) of one app under wrk."""
    from tests.api.server import free_port

    port = free_port()
    proc = serve(target, port, env)
    try:
        url = f"http://127.0.0.1:{port}/items/42"
        _, warm_up = wrk(url, 1)
        before, children_before = cpu_seconds(proc.pid), children_cpu(proc.pid)
        sink_before, wrk_before = process_cpu(sink_pid), finished_children_cpu()
        rate, requests = wrk(url, seconds)
        used = {tid: cpu - before.get(tid, 0.0) for tid, cpu in cpu_seconds(proc.pid).items()}
        children = sum(cpu - children_before.get(pid, 0.0) for pid, cpu in children_cpu(proc.pid).items())
        wrk_used = finished_children_cpu() - wrk_before
        time.sleep(0.5)  # the sink gets the last batch the forwarder sent
        sink_used = process_cpu(sink_pid) - sink_before
    finally:
        proc.terminate()  # the audited app flushes at exit
        proc.wait(15)
    loop = used.pop(proc.pid)
    per_request = [cpu / requests * 1e6 for cpu in (loop, sum(used.values()), children, wrk_used, sink_used)]
    return rate, per_request[0], per_request[1], warm_up + requests, *per_request[2:]


def finished_children_cpu() -> float:
    """User + system CPU seconds of this process's children that have finished (wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def box_cpu(run: tuple[float, ...]) -> float:
    """CPU µs per request on the whole machine: the app (all threads), its forwarder, wrk and the stub."""
    return run[1] + run[2] + run[4] + run[5] + run[6]


def http_overhead(seconds: int, rounds: int) -> None:
    """Plain vs audited app under wrk, alternating; the best round of each."""
    from tests.api.server import free_port

    from trailseal.sdk.spool import Spool

    with tempfile.TemporaryDirectory() as tmp:
        sink_port = free_port()
        sink = serve("bench.bench_sdk:sink_app", sink_port, {}, factory=False)
        env = {"BENCH_SINK_URL": f"http://127.0.0.1:{sink_port}", "BENCH_SPOOL": str(Path(tmp) / "spool")}
        try:
            plain, audited, threaded, floor = [], [], [], []
            for _ in range(rounds):
                plain.append(measure("bench.bench_sdk:plain_app", env, seconds, sink.pid))
                floor.append(measure("bench.bench_sdk:passthrough_app", env, seconds, sink.pid))
                audited.append(measure("bench.bench_sdk:audited_app", env, seconds, sink.pid))
                threaded.append(measure("bench.bench_sdk:thread_audited_app", env, seconds, sink.pid))
                time.sleep(1)  # the last app's forwarder finishes sending
            delivered = int(httpx.get(f"http://127.0.0.1:{sink_port}/count").text)
            spooled = Spool(env["BENCH_SPOOL"]).pending  # left on disk by the last run's exit, if any
        finally:
            sink.terminate()
            sink.wait(10)
    served = sum(run[3] for run in audited + threaded)
    baseline = [run[0] for run in plain]
    report(Result("  baseline req/s run-to-run spread (no middleware)", (max(baseline) / min(baseline) - 1) * 100, None, "%",
                  "", f"info ({min(baseline):,.0f}-{max(baseline):,.0f} req/s over {len(plain)} rounds)"))
    floor_ratio = statistics.median(ours[0] / peer[0] for ours, peer in zip(floor, plain, strict=True))
    floor_loop = min(run[1] for run in floor) - min(run[1] for run in plain)
    report(Result("  a do-nothing middleware (wraps send, records nothing): req/s", max(floor)[0], max(plain)[0],
                  "req/s", "same app, no middleware", f"info (paired rounds: median {floor_ratio:.2f}x; "
                  f"+{floor_loop:.1f} µs on the event loop: the floor for any ASGI middleware)"))
    thread_ratio = statistics.median(ours[0] / peer[0] for ours, peer in zip(threaded, plain, strict=True))
    report(Result('  transport="thread" (events built in the app): req/s', max(threaded)[0], max(plain)[0],
                  "req/s", "same app, no middleware", f"info (paired rounds: median {thread_ratio:.2f}x; "
                  f"CPU/req loop {min(r[1] for r in threaded):.0f} µs + threads {min(r[2] for r in threaded):.0f} µs)"))
    forwarder = min(run[4] for run in audited)
    report(Result("  the forwarder subprocess's CPU per request (best round)", forwarder, None, "µs", "",
                  "info (off the app's process: another core's work)"))
    ratio = statistics.median(ours[0] / peer[0] for ours, peer in zip(audited, plain, strict=True))
    ours_loop = min(run[1] for run in audited)
    ours_threads, peer_loop = min(run[2] for run in audited), min(run[1] for run in plain)
    cpu_overhead = (ours_loop + ours_threads) / peer_loop - 1
    report(Result("ASGI middleware: req/s, Starlette+uvicorn, wrk -c32", max(audited)[0], max(plain)[0], "req/s",
                  "same app, no middleware", f"<=5% overhead (paired rounds: median {ratio:.2f}x; CPU +{cpu_overhead:.0%})",
                  ratio >= 0.95 and cpu_overhead <= 0.05))
    report(Result("ASGI middleware: app CPU per request (best round)", ours_loop + ours_threads, peer_loop, "µs",
                  "same app, no middleware", f"info (+{cpu_overhead:.0%}: on a shared machine the steadier figure)"))
    report(Result("  of which the event loop's thread", ours_loop, peer_loop, "µs", "same app, no middleware",
                  f"info (+{ours_loop - peer_loop:.1f} µs on the request path)"))
    report(Result("  of which the app's other threads (client, hand-over)", ours_threads, None, "µs", "", "info"))
    ours_box, peer_box = min(box_cpu(run) for run in audited), min(box_cpu(run) for run in plain)
    report(Result("  the whole machine's CPU per request (best round)", ours_box, peer_box, "µs",
                  "same app, no middleware",
                  f"info (app + forwarder + wrk {min(r[5] for r in audited):.0f} + stub ingest "
                  f"{min(r[6] for r in audited):.1f}: with every core busy, req/s can be at most "
                  f"{peer_box / ours_box:.2f}x the baseline's)"))
    report(Result(f"  events delivered + still spooled, of {served:,} requests", delivered + spooled, None,
                  "events", goal="none lost (resends are deduplicated by id)", passed=delivered + spooled >= served))


# -- what the other core's work costs the app -----------------------------------------------------------
BUSY_OTHER_CORE = """
import hashlib, json, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
events = [{"id": f"e{i}", "actor": {"id": f"user{i}", "ip": "10.0.0.1"}, "request": {"path": f"/items/{i}"}}
          for i in range(100)]
while True:  # half of a core, in 4 ms bursts: about what the forwarder and the stub ingest take at 20k req/s
    started = time.perf_counter()
    while time.perf_counter() - started < 0.004:
        for event in events:
            hashlib.sha256(json.dumps(event).encode()).hexdigest()
    time.sleep(0.004)
"""


def pinned_loop_cpu(env: dict[str, str], seconds: int, busy: bool) -> float:
    """The plain app's event-loop CPU µs per request, the app on core 0 and wrk on core 1, with or without
    half a core of unrelated Python work beside wrk on core 1 (nothing shared with the app but the machine)."""
    from tests.api.server import free_port

    port = free_port()
    proc = serve("bench.bench_sdk:plain_app", port, env)
    load = None
    try:
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), {0})
        url = f"http://127.0.0.1:{port}/items/42"
        wrk(url, 1)
        if busy:
            load = subprocess.Popen([sys.executable, "-c", BUSY_OTHER_CORE, "1"])
            time.sleep(0.3)
        before = cpu_seconds(proc.pid)[proc.pid]
        _, requests = wrk(url, seconds)
        return (cpu_seconds(proc.pid)[proc.pid] - before) / requests * 1e6
    finally:
        if load is not None:
            load.kill()
            load.wait()
        proc.terminate()
        proc.wait(15)


def other_core_cost(seconds: int, rounds: int) -> None:
    """How much the app's own CPU per request grows when the other core works (the audited app's
    forwarder does, on 2 cores): the same plain app, alternating quiet and busy rounds. On the 2-vCPU VMs
    this bench ran on, half a core of Python beside wrk cost the app +14% per request (session 25)."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        print("  (needs 2 cores and sched_setaffinity; skipping the other-core figure)")
        return
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})  # wrk (a child) runs on core 1 too
    try:
        quiet, busy = [], []
        for _ in range(rounds):
            quiet.append(pinned_loop_cpu({}, seconds, False))
            busy.append(pinned_loop_cpu({}, seconds, True))
    finally:
        os.sched_setaffinity(0, mine)
    q, b = statistics.median(quiet), statistics.median(busy)
    report(Result("  plain app, loop CPU/request with the other core half busy (no middleware)", b, q, "µs",
                  "other core quiet", f"info (+{b - q:.1f} µs, +{b / q - 1:.0%}: the machine's share of an "
                  "audited app's overhead when its forwarder works on the other core)"))


# -- in-process ---------------------------------------------------------------------------------------
async def call_app(app, count: int, settle=None) -> tuple[float, float]:
    """CPU seconds per request of ``count`` direct ASGI calls: (on this thread, in the whole process until
    ``settle()`` — the client's flush — returns)."""
    scope = {"type": "http", "method": "GET", "path": "/items/42", "raw_path": b"/items/42", "root_path": "",
             "query_string": b"", "headers": [(b"host", b"x"), (b"user-agent", b"bench")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "scheme": "http", "http_version": "1.1"}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    started, started_process = time.thread_time(), time.process_time()
    for _ in range(count):
        await app(dict(scope), receive, send)
    on_thread = time.thread_time() - started
    if settle is not None:
        settle()
    return on_thread / count, (time.process_time() - started_process) / count


def inprocess_overhead(count: int) -> None:
    """The app called directly, auditing to a stub ingest endpoint (so the sender's work counts too)."""
    from tests.api.server import free_port

    from trailseal.sdk import Client
    from trailseal.sdk.asgi import TrailsealMiddleware

    sink_port = free_port()
    sink = serve("bench.bench_sdk:sink_app", sink_port, {}, factory=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            client = Client(f"http://127.0.0.1:{sink_port}", "bench", spool_dir=tmp, max_queue=10 * count)
            audited = plain_app()
            audited.add_middleware(TrailsealMiddleware, client=client)
            plain = plain_app()
            asyncio.run(call_app(plain, 200))
            asyncio.run(call_app(audited, 200, client.flush))
            started = process_cpu(client.forwarder().proc.pid)  # past its start-up (imports)
            runs = [(asyncio.run(call_app(plain, count)), asyncio.run(call_app(audited, count, client.flush)))
                    for _ in range(3)]
            forwarder = (process_cpu(client.forwarder().proc.pid) - started) / (3 * count)
            client.close(timeout=5)
    finally:
        sink.terminate()
        sink.wait(10)
    (peer, _), (ours, ours_process) = min(run[0] for run in runs), min(run[1] for run in runs)
    report(Result("ASGI in-process: request's thread CPU/request", ours * 1e6, peer * 1e6, "µs",
                  "same app, no middleware", f"info (+{(ours - peer) * 1e6:.1f} µs)"))
    report(Result("ASGI in-process: whole app process CPU/request", ours_process * 1e6, peer * 1e6, "µs",
                  "same app, no middleware", f"info (+{(ours_process - peer) * 1e6:.1f} µs)"))
    report(Result("  the forwarder subprocess, CPU/request (mean)", forwarder * 1e6, None, "µs", "",
                  "info (builds, validates, spools and sends the events)"))


def flask_app(client=None):
    """A minimal Flask app (one route), audited when a client is given."""
    from flask import Flask

    app = Flask("bench")
    app.add_url_rule("/items/<int:item_id>", "item", lambda item_id: "ok")
    if client is not None:
        from trailseal.sdk.wsgi import instrument_flask

        instrument_flask(app, client)
    return app


def call_wsgi(app, count: int, settle=None) -> tuple[float, float]:
    """CPU seconds per request of ``count`` direct WSGI calls, body read and closed as a server would:
    (on this thread, in the whole process until ``settle()`` returns)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/items/42", "SERVER_NAME": "x", "SERVER_PORT": "80",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "bench", "wsgi.url_scheme": "http",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": None}

    def start_response(status, headers, exc_info=None):
        return None

    started, started_process = time.thread_time(), time.process_time()
    for _ in range(count):
        body = app(dict(environ), start_response)
        for _chunk in body:
            pass
        body.close()
    on_thread = time.thread_time() - started
    if settle is not None:
        settle()
    return on_thread / count, (time.process_time() - started_process) / count


def wsgi_inprocess_overhead(count: int) -> None:
    """A minimal Flask app called directly, with and without instrument_flask (events to a stub)."""
    from tests.api.server import free_port

    from trailseal.sdk import Client

    sink_port = free_port()
    sink = serve("bench.bench_sdk:sink_app", sink_port, {}, factory=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            client = Client(f"http://127.0.0.1:{sink_port}", "bench", spool_dir=tmp, max_queue=10 * count)
            plain, audited = flask_app(), flask_app(client)
            call_wsgi(plain, 200)
            call_wsgi(audited, 200)
            runs = [(call_wsgi(plain, count), call_wsgi(audited, count, client.flush)) for _ in range(3)]
            client.close(timeout=5)
    finally:
        sink.terminate()
        sink.wait(10)
    (peer, _), (ours, ours_process) = min(run[0] for run in runs), min(run[1] for run in runs)
    report(Result("Flask (WSGI) in-process: request's thread CPU/req", ours * 1e6, peer * 1e6, "µs",
                  "same app, no middleware", f"info (+{(ours - peer) * 1e6:.1f} µs)"))
    report(Result("Flask (WSGI) in-process: whole process CPU/req", ours_process * 1e6, peer * 1e6, "µs",
                  "same app, no middleware", f"info (+{(ours_process - peer) * 1e6:.1f} µs)"))


# -- client.log() -------------------------------------------------------------------------------------
class DoNothing(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


def per_call(fn, count: int) -> float:
    """Thread CPU µs per call (time spent on the caller's thread only)."""
    started = time.thread_time_ns()
    for i in range(count):
        fn(i)
    return (time.thread_time_ns() - started) / count / 1000


def log_call_cost(count: int) -> None:
    from trailseal.sdk import Client

    peer_logger = logging.getLogger("bench.peer")
    peer_logger.addHandler(DoNothing())
    peer_logger.propagate = False
    peer_logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        client = Client("http://127.0.0.1:9", "bench", spool_dir=tmp, max_queue=10 * count, max_backoff=5)
        ours = min(per_call(lambda i: client.log(category="data_access", action="report.export", actor="alice",
                                                 target="report-7", rows=i), count) for _ in range(3))
        client.close(timeout=0.1)
    peer = min(per_call(lambda i: peer_logger.info("report %s exported by %s", i, "alice"), count)
               for _ in range(3))
    report(Result("client.log() on the caller's thread", ours, peer, "µs", "logging.info, do-nothing handler",
                  "<=10 µs", ours <= 10))


def main() -> None:
    logging.getLogger("trailseal.sdk").setLevel(logging.ERROR)  # the no-server clients' retry notices
    log_call_cost(20_000 if QUICK else 100_000)
    inprocess_overhead(5_000 if QUICK else 20_000)
    wsgi_inprocess_overhead(5_000 if QUICK else 20_000)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); skipping the HTTP figures")
        return
    http_overhead(3 if QUICK else 8, 2 if QUICK else 3)
    other_core_cost(3 if QUICK else 6, 2 if QUICK else 3)


if __name__ == "__main__":
    main()

"""The forwarder subprocess (the middleware's default transport): events arrive sealed and in order; a
killed forwarder is restarted (or replaced by the app's own client); close, SIGKILL and fork lose nothing
that was handed over."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.sdk.conftest import sealed
from trailseal.frames import F_SETPIPE_SZ
from trailseal.sdk import set_actor
from trailseal.sdk.asgi import TrailsealMiddleware
from trailseal.sdk.client import Client

REPO = Path(__file__).resolve().parents[2]
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VOLATILE = ("id", "time", "received")


async def item(request: Request):
    return PlainTextResponse("item")


async def status(request: Request):
    return PlainTextResponse("x", int(request.path_params["code"]))


async def boom(request: Request):
    raise RuntimeError("kaboom")


async def login(request: Request):
    set_actor((await request.json())["user"])
    return PlainTextResponse("no", 401)


def app(client, transport: str = "process") -> Starlette:
    web = Starlette(routes=[Route("/items/{item_id}", item), Route("/status/{code}", status),
                            Route("/boom", boom), Route("/login", login, methods=["POST"])])
    web.add_middleware(TrailsealMiddleware, client=client, transport=transport, trusted_proxies=["10.0.0.0/8"],
                       actor_resolver=lambda r: r.headers.get("x-user"))
    return web


def get_items(web: TestClient, users) -> None:
    for user in users:
        assert web.get("/items/1", headers={"x-user": user}).status_code == 200


def comparable(event: dict) -> dict:
    """An event without what differs between two renderings of the same request (id, times, latency)."""
    event = {k: v for k, v in event.items() if k not in VOLATILE}
    event["attributes"] = {k: v for k, v in event["attributes"].items() if k != "latency_ms"}
    return event


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL a forwarder and wait until it is gone with all its threads (and so its end of the pipe)."""
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL


def test_requests_are_sealed_in_order_by_a_forwarder_subprocess(client, events):
    with TestClient(app(client)) as web:
        get_items(web, [f"u{i}" for i in range(60)])
        got = events(60)
    assert [e["actor"]["id"] for e in got] == [f"u{i}" for i in range(60)]
    assert {e["request"]["path"] for e in got} == {"/items/{item_id}"}
    forwarder = client._forwarder.proc
    assert forwarder is not None and forwarder.pid != os.getpid() and forwarder.poll() is None
    assert client.stats.forwarded == 60 and client.stats.logged == 0  # none built in the app process


def test_the_forwarder_renders_what_the_app_would_have(client, events):
    """The same requests through transport="thread" (events built in the app) and the forwarder."""
    def requests(web: TestClient) -> None:
        web.get("/items/7", headers={"traceparent": TRACE, "user-agent": "pytest/1", "x-user": "carol",
                                     "x-forwarded-for": "203.0.113.9, 10.0.0.7"})
        web.get("/status/403")
        web.get("/nope/3")
        with pytest.raises(RuntimeError):
            web.get("/boom")
        web.post("/login", json={"user": "mallory"})
        web.get("/items/8", headers={"traceparent": TRACE, "user-agent": 'odd "agent" \\ {x}',
                                     "x-forwarded-for": "203.0.113.9, 10.0.0.7"})  # no actor: by shape

    for transport in ("thread", "process"):
        with TestClient(app(client, transport), client=("10.0.0.5", 4711)) as web:
            requests(web)
            assert client.flush(10)
    got = [comparable(e) for e in events(12)]
    assert got[:6] == got[6:]
    assert got[0]["actor"]["ip"] == "203.0.113.9" and got[0]["request"]["trace_id"] == TRACE[3:35]
    assert [e["outcome"] for e in got[:6]] == ["success", "failure", "failure", "error", "failure", "success"]
    assert got[4]["action"] == "user.login" and got[4]["actor"]["id"] == "mallory"
    assert got[5]["actor"] == {"id": "anonymous", "type": "anonymous", "ip": "203.0.113.9",
                               "user_agent": 'odd "agent" \\ {x}'}


def test_a_killed_forwarder_is_restarted_and_later_requests_arrive(client, events):
    with TestClient(app(client)) as web:
        get_items(web, ["before"] * 5)
        assert client.flush(10)
        first = client._forwarder.proc.pid
        kill(client._forwarder.proc)
        get_items(web, [f"after{i}" for i in range(20)])
        got = events(25)
    assert [e["actor"]["id"] for e in got] == ["before"] * 5 + [f"after{i}" for i in range(20)]
    assert client.stats.forwarder_restarts == 1 and client._forwarder.proc.pid != first


def test_past_max_restarts_the_app_builds_the_events_itself(client, events):
    forwarder = client.forwarder()
    forwarder.max_restarts = 0
    with TestClient(app(client)) as web:
        get_items(web, ["one"])
        assert client.flush(10)
        kill(forwarder.proc)
        get_items(web, [f"late{i}" for i in range(5)])
        got = events(6)
    assert [e["actor"]["id"] for e in got] == ["one"] + [f"late{i}" for i in range(5)]
    assert forwarder.in_process and forwarder.proc is None and client.stats.forwarder_restarts == 1
    assert client.stats.logged == 5  # built and spooled by the app's own client


def test_close_hands_everything_over(live, log_name, tmp_path):
    client = Client(live.url, live.admin, log=log_name, source="tests", spool_dir=tmp_path / "spool")
    with TestClient(app(client)) as web:
        get_items(web, [f"c{i}" for i in range(300)])
    forwarder = client._forwarder.proc
    assert client.close(timeout=10)
    assert forwarder.returncode == 0  # it sealed everything, then exited
    got = sealed(live, log_name, at_least=300)
    assert [e["actor"]["id"] for e in got] == [f"c{i}" for i in range(300)]


def run_child(mode: str, live, log_name: str, tmp_path: Path, count: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.sdk.forwarder_child", mode, live.url, live.admin, log_name,
                           str(tmp_path / "spool"), str(count)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_a_sigkilled_app_loses_nothing_it_handed_over(live, log_name, tmp_path):
    child = run_child("kill", live, log_name, tmp_path, 500)
    assert child.returncode == -9 and "forwarded 500" in child.stdout, child.stderr
    got = sealed(live, log_name, at_least=500, timeout=20)  # the orphaned forwarder drains its pipe
    assert [e["request"]["path"] for e in got] == [f"/kill/{i}" for i in range(500)]


def test_after_fork_the_child_starts_its_own_forwarder(live, log_name, tmp_path):
    child = run_child("fork", live, log_name, tmp_path, 4)
    assert child.returncode == 0, child.stderr
    pids = dict(line.split() for line in child.stdout.split("\n") if line)
    assert pids.keys() == {"parent", "child"} and pids["parent"] != pids["child"]
    paths = [e["request"]["path"] for e in sealed(live, log_name, at_least=9)]
    assert sorted(paths) == sorted(["/before/0"] + [f"/{who}/{i}" for who in ("parent", "child") for i in range(4)])
    for who in ("parent", "child"):
        assert [p for p in paths if p.startswith(f"/{who}/")] == [f"/{who}/{i}" for i in range(4)]


def record(auditor_index: int, n: int) -> tuple:
    """A request record as the ASGI middleware makes one."""
    return (auditor_index, time.time_ns(), 0.001, "GET", f"/stall/{n}", None, 200, 2, None, None, "10.2.2.2",
            None, None, None)


def test_a_stalled_forwarder_costs_requests_their_event_never_their_time(live, log_name, tmp_path):
    client = Client(live.url, live.admin, log=log_name, source="tests", spool_dir=tmp_path / "spool", max_queue=100)
    index = TrailsealMiddleware(None, client).auditor.index
    forwarder = client.forwarder()
    forwarder.put(record(index, 0))
    assert client.flush(10)
    fcntl.fcntl(forwarder.fd, F_SETPIPE_SZ, 4096)  # a pipe that fills after a few dozen records
    os.kill(forwarder.proc.pid, signal.SIGSTOP)
    slowest = 0.0
    try:
        for n in range(1, 1001):
            started = time.perf_counter()
            forwarder.put(record(index, n))
            slowest = max(slowest, time.perf_counter() - started)
            if n % 20 == 0:
                time.sleep(0.002)  # the hand-over thread gets its turns
    finally:
        os.kill(forwarder.proc.pid, signal.SIGCONT)
    dropped = client.stats.dropped
    assert slowest < 0.05 and 0 < dropped < 1000
    assert client.close(timeout=20)
    paths = [e["request"]["path"] for e in sealed(live, log_name, at_least=1001 - dropped, timeout=20)]
    numbers = [int(p.rsplit("/", 1)[1]) for p in paths]
    assert len(numbers) == 1001 - dropped and numbers == sorted(numbers) and numbers[0] == 0


def test_a_record_put_after_close_is_counted_as_dropped(live, log_name, tmp_path):
    client = Client(live.url, live.admin, log=log_name, source="tests", spool_dir=tmp_path / "spool")
    index = TrailsealMiddleware(None, client).auditor.index
    forwarder = client.forwarder()
    forwarder.put(record(index, 0))
    assert client.close(timeout=10)
    forwarder.put(record(index, 1))
    forwarder.put(record(index, 2))
    assert client.stats.dropped == 2 and forwarder.buffer == []
    assert [e["request"]["path"] for e in sealed(live, log_name, at_least=1)] == ["/stall/0"]

"""Console page load times on a big log, and JavaScript weight per page.

Builds N events (1,000,000; TRAILSEAL_BENCH_QUICK=1: 100,000) with bench.build_log (cached under
bench/out/ui-<N>/), starts the real server on it, logs in, waits until the console's live counters
have read the last 24 hours, then times each page (median and p95 of RUNS loads, the full HTML
response over HTTP on loopback). The goal from issue 8 is printed beside each figure: <= 300 ms per
page and <= 200 KB of JavaScript per page. `python -m bench.bench_ui [N]` runs it alone.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.build_log import build
from bench.common import QUICK, Result, percentile, report
from trailseal.api.auth import TokenStore

OUT = Path(__file__).resolve().parent / "out"
RUNS = 15
GOAL_MS, GOAL_JS = 300.0, 200 * 1024
QUERY = "action:user.login outcome:failure"
PAGES = ["/ui/stream", f"/ui/search?q={QUERY}", "/ui/events/default/{middle}",
         "/ui/timeline?key=actor&value=user42&since=30d", "/ui/sources", "/ui/alerts", "/ui/integrity",
         "/ui/charts", "/ui/validate", "/ui/stream/rows?after=default:{size}"]
# the JSON API call each page wraps, timed the same way (the console's overhead is the difference)
API = {"/ui/stream": "/v1/events?limit=50&log=default", "/ui/search": f"/v1/events?q={QUERY}&limit=50&log=default",
       "/ui/events/default/N": "/v1/events/default/{middle}?proof=1", "/ui/alerts": "/v1/alerts?limit=100"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(directory: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TRAILSEAL_COMPLIANCE__VALIDATE_INTERVAL_SECONDS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "trailseal.cli", "serve", "--data", str(directory), "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def warm(client: httpx.Client) -> float:
    """Seconds until the live counters have read the last 24 h (the first console request starts them)."""
    started = time.perf_counter()
    while "Counting recent events" in client.get("/ui/sources").text:
        time.sleep(0.5)
    return time.perf_counter() - started


def js_weight(client: httpx.Client, html: str) -> int:
    sources = re.findall(r'<script[^>]*src="([^"]+)"', html)
    inline = sum(len(body) for body in re.findall(r"<script(?![^>]*src)[^>]*>(.*?)</script>", html, re.S))
    return inline + sum(len(client.get(src).content) for src in sources)


def timed(client: httpx.Client, path: str) -> tuple[list[float], str]:
    """Milliseconds of RUNS loads of one page, and its last body."""
    times, body = [], ""
    for _ in range(RUNS):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        body = response.text
    return times, body


def main(argv: list[str] | None = None) -> None:
    count = int((argv or [None])[0] or (100_000 if QUICK else 1_000_000))
    directory = OUT / f"ui-{count}"
    build(directory, count)
    store = TokenStore(directory)
    token = store.create("auditor", "bench-ui")[0]
    store.close()
    proc, url = start(directory)
    try:
        client = httpx.Client(base_url=url, timeout=60)
        client.post("/ui/login", data={"token": token})
        print(f"  {count:,} events; live counters warm after {warm(client):.1f} s (once per server start)")
        first = time.perf_counter()
        client.get(f"/ui/search?q={QUERY}")
        print(f"  first search after start: {time.perf_counter() - first:.1f} s (query/ catches up its search index)")
        api = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"})
        for path in PAGES:
            page = path.format(middle=count // 2, size=count)
            times, html = timed(client, page)
            name = page.split("?")[0].replace(str(count // 2), "N")
            peer = API.get(name)
            peer_p95 = percentile(timed(api, peer.format(middle=count // 2))[0], 95) if peer else None
            median, p95 = percentile(times, 50), percentile(times, 95)
            report(Result(f"ui {name} p95 (median {median:.0f} ms)", p95, peer_p95, "ms",
                          peer_name="JSON API, same data" if peer else "", goal=f"<= {GOAL_MS:g} ms",
                          passed=p95 <= GOAL_MS))
            if not page.startswith("/ui/stream/rows"):
                weight = js_weight(client, html)
                report(Result(f"ui {name} JavaScript", weight / 1024, None, "KB", goal="<= 200 KB",
                              passed=weight <= GOAL_JS))
    finally:
        proc.terminate()
        proc.wait(20)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The server (issue 3): HTTP ingest in batches of 500, single-event latency at an offered 2,000 req/s,
and the time from an ack to a signed checkpoint that includes the event. Load comes from `wrk` and
`h2load` (separate C processes) on loopback; the library figure from the same run stands beside it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import QUICK, Result, percentile, report
from bench.events import events

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.body = io.open("%(body)s", "rb"):read("*a")
%(extra)s
"""


def body_without_ids(count: int, path: Path) -> Path:
    """NDJSON with no ids, so every request seals new events (the server assigns UUIDv7s). Events are
    stamped now, as a live producer's are: the bench data's fixed November date would make the built-in
    clock-skew rule raise (and seal) an alert for every event, timing an alert storm, not ingest."""
    lines = []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for event in events(count):
        del event["id"]
        event["time"] = now
        lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(url: str, script: Path, connections: int, seconds: int) -> tuple[float, dict[str, float]]:
    """Requests/s and latency percentiles (ms) from one wrk run."""
    done = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                           "-s", str(script), url], capture_output=True, text=True, check=True)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)$", done.stdout, re.M):
        latency[pct] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} failed requests:\n{done.stdout}")
    return rate, latency


def paced(url: str, token: str, body: Path, rate: int, seconds: int, tmp: Path,
          clients: int = 20) -> tuple[float, float]:
    """Offer ``rate`` single requests/s for ``seconds`` with h2load (HTTP/1.1, ``clients`` connections,
    each sending at rate/clients req/s, a C client like wrk): (requests/s served, p99 latency in ms),
    the latency from h2load's per-request log. wrk's `delay()` is think time after each answer, so it
    cannot hold a rate; h2load's --rps does."""
    log = tmp / "h2load.log"
    started = time.perf_counter()
    done = subprocess.run(["h2load", "--h1", "-c", str(clients), "--rps", str(rate // clients),
                           "-n", str(rate * seconds), "-d", str(body), "-H", f"authorization: Bearer {token}",
                           "-H", "content-type: application/x-ndjson", "--log-file", str(log), url],
                          capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    failed = [row for row in rows if not row[1].startswith("2")]
    if failed or "succeeded" not in done.stdout:
        raise RuntimeError(f"h2load saw {len(failed)} failed requests:\n{done.stdout}")
    span = (max(int(r[0]) + int(r[2]) for r in rows) - min(int(r[0]) for r in rows)) / 1e6
    latencies = sorted(int(row[2]) / 1000 for row in rows)
    return len(rows) / min(span, elapsed), percentile(latencies, 99)


def lua(path: Path, token: str, body: Path, extra: str = "") -> Path:
    path.write_text(POST_LUA % {"token": token, "body": body, "extra": extra})
    return path


def ack_to_checkpoint(url: str, token: str, samples: int) -> list[float]:
    """Seconds from each single-event ack until /tlog/.../checkpoint covers the event."""
    waits = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for event in events(samples, start=50_000_000):
            receipt = client.post("/v1/events", json=[event]).json()["receipts"][0]
            acked = time.perf_counter()
            while int(client.get("/tlog/default/checkpoint").text.split("\n")[1]) <= receipt["index"]:
                time.sleep(0.001)
            waits.append(time.perf_counter() - acked)
    return waits


def settle(data_dir: Path, limit: float) -> float:
    """Seconds until serve's background indexer has indexed every entry (at most ``limit``): the
    single-event figure is the steady state, not a server still catching up a saturating burst."""
    import sqlite3

    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{data_dir / 'trailseal.db'}?mode=ro", uri=True)
    try:
        while time.perf_counter() - started < limit:
            latest = conn.execute("SELECT max(seq) FROM entries").fetchone()[0] or 0
            row = conn.execute("SELECT value FROM query_state WHERE key='indexed_seq'").fetchone()
            if row is not None and row[0] >= latest:
                break
            time.sleep(0.5)
    finally:
        conn.close()
    return time.perf_counter() - started


def main() -> None:
    from tests.api.server import Server

    from bench.bench_core import ingest_ours

    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); skipping the HTTP figures")
        return
    seconds = 5 if QUICK else 15
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        library = ingest_ours(events(20_000 if QUICK else 100_000), tmp / "lib", 1)
        import trailseal

        server = Server(trailseal.init(tmp / "srv", origin="bench.trailseal")).start()
        try:
            batch = lua(tmp / "batch.lua", server.admin, body_without_ids(500, tmp / "batch.ndjson"))
            rate, _ = wrk(server.url + "/v1/events", batch, 4, seconds)
            report(Result("HTTP ingest, batches of 500, 4 connections", rate * 500, library, "ev/s",
                          "library append() same run", ">=30k ev/s", rate * 500 >= 30_000))
            settled = settle(tmp / "srv", 300)
            print(f"  (the search index caught up the batch phase's backlog {settled:.1f} s after it ended;"
                  " single events are timed from then on)")
            single = body_without_ids(1, tmp / "single.ndjson")
            if shutil.which("h2load"):
                rate, p99 = paced(server.url + "/v1/events", server.admin, single, 2_000, seconds, tmp)
                report(Result(f"single-event requests offered at 2,000 req/s (served {rate:,.0f}/s)", p99, None,
                              "ms p99", goal="<=20 ms at 2,000 req/s", passed=p99 <= 20 and rate >= 1_900))
            else:
                print("h2load is not installed (apt-get install nghttp2-client); skipping the paced figure")
            waits = ack_to_checkpoint(server.url, server.admin, 100 if QUICK else 300)
            p99 = percentile(waits, 99) * 1000
            report(Result("ack -> signed checkpoint covering it, p99", p99, None, "ms", goal="<=1000 ms",
                          passed=p99 <= 1000))
        finally:
            server.stop()

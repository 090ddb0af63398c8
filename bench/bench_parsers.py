"""Parser throughput: lines (records) per second for each format, beside stdlib json.loads.

Each parser runs over its ../shared/testdata/logs records (or a small realistic sample where the
test data has none) repeated to about 100k records. The peer is json.loads over as many JSON lines,
namely the events that same run produced, so the ratio says how a parser compares to merely
decoding its own output. ``profile("syslog")`` prints a cProfile of one parser.

Both are timed in CPU seconds of the measuring thread (``time.thread_time``), best of 3: on a quiet
machine that equals wall time for this single-threaded loop, and on the shared 2-core machine it
keeps other people's load out of the figure.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import QUICK, Result, report
from trailseal import formats

LOGS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "logs"
TARGET = 10_000 if QUICK else 100_000
GOAL = 200_000
FILES = {
    "access_log": ["apache_access.log", "nginx_access_combined.log"],
    "auth_log": ["linux_auth_sshd_sudo.log"],
    "syslog": [
        "syslog_rfc5424_examples.log",
        "syslog_rfc3164_examples.log",
        "syslog_bsd_darwin_multiline.log",
    ],
    "pgaudit": ["pgaudit_postgresql_csvlog.csv"],
    "cloudtrail": ["cloudtrail_records_awsdocs.json"],
    "k8s_audit": ["k8s_audit_falco_fixtures.jsonl"],
    "otlp": ["otlp_logs_request_example.json"],
}
CONTEXT: dict[str, dict[str, Any]] = {"auth_log": {"year": 2016}, "syslog": {"year": 2016}}
MAPPING = """
[source]
component = "billing-api"
kind = "app"
[fields]
time = "ts"
action = "type"
outcome = "result"
"actor.id" = "user.email"
"request.status" = "http.status"
[constants]
category = "data_access"
[values.outcome]
ok = "success"
[time]
format = "unix_ms"
[attributes]
rest = true
"""


def synthetic(fmt: str) -> list[bytes]:
    """Small realistic records for formats the shared test data does not cover."""
    if fmt == "ndjson":
        return [
            json.dumps(
                {
                    "id": f"e-{i}",
                    "time": "2024-05-01T10:00:00.123456Z",
                    "category": "data_access",
                    "action": "http.request",
                    "outcome": "success",
                    "actor": {"id": f"user{i}", "ip": "192.0.2.7"},
                    "source": {"component": "api", "kind": "app"},
                    "request": {"method": "GET", "path": f"/orders/{i}", "status": 200},
                    "attributes": {"latency_ms": i},
                }
            ).encode()
            for i in range(10)
        ]
    if fmt == "mapping":
        return [
            json.dumps(
                {
                    "ts": 1714557600000 + i,
                    "type": "invoice.read",
                    "result": "ok",
                    "user": {"email": f"u{i}@example.com"},
                    "http": {"status": 200},
                    "plan": "pro",
                }
            ).encode()
            for i in range(10)
        ]
    if fmt == "sarif":
        results = [
            {
                "ruleId": "py.sqli",
                "level": "error",
                "message": {"text": f"tainted SQL {i}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f"app/m{i}.py"},
                            "region": {"startLine": i + 1},
                        }
                    }
                ],
                "properties": {"trace_id": f"{i:032x}"},
            }
            for i in range(20)
        ]
        return [
            json.dumps(
                {
                    "version": "2.1.0",
                    "runs": [
                        {
                            "tool": {"driver": {"name": "semgrep"}},
                            "invocations": [{"endTimeUtc": "2024-05-01T10:00:00Z"}],
                            "results": results,
                        }
                    ],
                }
            ).encode()
        ]
    if fmt == "iast":
        return [
            json.dumps(
                {
                    "id": f"f-{i}",
                    "time": "2024-05-01T10:00:00Z",
                    "agent": "acme-iast",
                    "rule": "sql-injection",
                    "severity": "high",
                    "request": {"method": "POST", "path": "/login", "trace_id": f"{i:032x}"},
                    "location": {"file": "app/db.py", "line": 42},
                }
            ).encode()
            for i in range(10)
        ]
    raise KeyError(fmt)


def samples(fmt: str) -> list[bytes]:
    """The records one run of a parser goes over, before repetition."""
    if fmt not in FILES:
        return synthetic(fmt)
    module = formats.get(fmt)
    return [record for name in FILES[fmt] for record in module.split((LOGS / name).read_bytes())]


def workload(fmt: str) -> tuple[list[bytes], int]:
    """(records repeated to about TARGET events, events per pass over one copy of the samples)."""
    records = samples(fmt)
    per_pass = sum(len(parse(fmt, record)) for record in records)
    copies = max(1, TARGET // max(per_pass, 1))
    return records * copies, per_pass * copies


def parse(fmt: str, record: bytes) -> list[dict[str, Any]]:
    module = formats.get(fmt)
    ctx = {"mapping": MAPPING} if fmt == "mapping" else CONTEXT.get(fmt, {})
    if hasattr(module, "parse_batch"):
        return module.parse_batch(record, **ctx)[0]
    return module.parse(record, **ctx)


def rate(run: Callable[[], object], count: int, repeat: int = 3) -> float:
    """Items per CPU second of this thread, best of repeat runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        run()
        best = min(best, time.thread_time() - start)
    return count / best


def measure(fmt: str) -> Result:
    """Lines/s for one parser, and json.loads over the same number of JSON lines from this run."""
    records, count = workload(fmt)
    module = formats.get(fmt)
    ctx = (
        {"mapping": formats.get("mapping").load_mapping(MAPPING)}
        if fmt == "mapping"
        else CONTEXT.get(fmt, {})
    )
    if hasattr(module, "parse_batch"):

        def run() -> None:
            for record in records:
                module.parse_batch(record, **ctx)
    else:

        def run() -> None:
            for record in records:
                module.parse(record, **ctx)

    ours = rate(run, count)
    produced = [json.dumps(e) for record in records[: max(1, len(records) // 10)] for e in parse(fmt, record)]
    lines = (produced * (count // max(len(produced), 1) + 1))[:count]
    peer = rate(lambda: [json.loads(line) for line in lines], count)
    return Result(
        name=f"parse {fmt} ({count:,} records)",
        ours=ours,
        peer=peer,
        unit="lines/CPU-s",
        peer_name="json.loads",
        goal=f">= {GOAL // 1000}k lines/CPU-s",
        passed=ours >= GOAL,
    )


def profile(fmt: str, top: int = 15) -> None:
    """Print the top functions by own time for one parser's workload."""
    records, _ = workload(fmt)
    profiler = cProfile.Profile()
    profiler.enable()
    for record in records:
        parse(fmt, record)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> list[Result]:
    if not LOGS.is_dir():
        raise SystemExit(f"shared test data not found at {LOGS}")
    return [report(measure(fmt)) for fmt in formats.NAMES]


if __name__ == "__main__":
    main()

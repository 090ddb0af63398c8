"""Detection throughput: 100 Sigma rules (single + correlation) over a realistic sealed stream.

Rules: the built-in pack, the SigmaHQ sample (../shared/testdata/sigma) and generated variants of
both (same shapes, different values) up to 100. Events: web access (benign and attacks), logins
(with bursts of failures), Kubernetes audit, CloudTrail, Okta, admin and system events, in time
order. Peer: azuma (a Python Sigma matcher) evaluating the same single-event rules on the same
events, given them already flattened to the rules' field names (the mapping is our work, not its).
Rates are events per CPU second (time.process_time: the 2-core machine is shared with other
work); the pre-built streams are frozen out of the cyclic GC so that holding 100k events in a list,
which a streaming service never does, does not tax the detection loop. The main stream and the one
received late are built before either is measured and run in alternating chunks, each by its own
engine: measured one after the other, the second ran on events allocated among the first one's
freed memory and came out several per cent slower whichever stream it was.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import random
import time
import uuid
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection

from bench.common import QUICK, Result, report
from trailseal.detect import Engine
from trailseal.detect.correlate import format_epoch
from trailseal.detect.engine import BUILTIN_DIR
from trailseal.detect.fields import profile_for
from trailseal.detect.paths import MISSING
from trailseal.event import from_dict, to_dict

SIGMA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "sigma"
PLACEHOLDERS = {"Legitimate_Countries": ["DE", "FR"], "Legitimate_IP_Ranges": ["10.0.0.0/8"]}
GOAL = 100_000
EVENTS = 20_000 if QUICK else 100_000
NAMESPACE = uuid.UUID("6f1f3a9e-0c1b-4d7e-9d43-5a1e2b3c4d5e")


# -- rules ----------------------------------------------------------------------------------------


def sample_docs() -> list[dict]:
    return [d for p in sorted(SIGMA_DIR.glob("rules*/**/*.yml")) for d in yaml.safe_load_all(p.read_text())]


def builtin_docs() -> list[dict]:
    return [d for p in sorted(BUILTIN_DIR.glob("*.yml")) for d in yaml.safe_load_all(p.read_text())]


def _vary(value: object, tag: str) -> object:
    if isinstance(value, str) and not value.startswith("%"):
        return value + tag
    if isinstance(value, list):
        return [_vary(v, tag) for v in value]
    if isinstance(value, dict):
        return {k: v if k == "condition" or "|cidr" in k else _vary(v, tag) for k, v in value.items()}
    return value


def variant(doc: dict, n: int) -> dict:
    """Same rule shape, different values and identity."""
    copy = dict(doc, title=f"{doc['title']} (variant {n})", id=str(uuid.uuid5(NAMESPACE, f"{doc['id']}{n}")))
    copy["detection"] = _vary(doc["detection"], f"-v{n}")
    return copy


def correlation_variants(count: int) -> list[dict]:
    """Scanner-style correlations over web events: many 4xx, many distinct paths per client."""
    docs = []
    for n in range(count):
        base = f"bench_web_errors_{n}"
        docs.append(
            {
                "title": f"web client errors {n}",
                "name": base,
                "status": "test",
                "author": "bench",
                "logsource": {"category": "webserver"},
                "detection": {"sel": {"sc-status|gte": 400 + n}, "condition": "sel"},
            }
        )
        kind = "value_count" if n % 2 else "event_count"
        condition = {"gte": 20 + n, **({"field": "cs-uri-stem"} if kind == "value_count" else {})}
        docs.append(
            {
                "title": f"web scanner {n}",
                "id": str(uuid.uuid5(NAMESPACE, base)),
                "author": "bench",
                "correlation": {
                    "type": kind,
                    "rules": [base],
                    "group-by": ["c-ip"],
                    "timespan": "5m",
                    "condition": condition,
                },
                "level": "medium",
            }
        )
    return docs


def rule_docs(total: int = 100) -> list[dict]:
    docs = builtin_docs() + sample_docs()
    single = [d for d in sample_docs() if "expand" not in str(d["detection"])]
    docs += correlation_variants(5)
    n = 0
    while len(docs) < total:
        docs.append(variant(single[n % len(single)], n))
        n += 1
    return docs


# -- events ---------------------------------------------------------------------------------------

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "okhttp/4.12.0",
]
ATTACKS = [
    "/index.php?id=1%20UNION%20SELECT%20password%20FROM%20users",
    "/.git/config",
    "/download?file=../../../etc/passwd",
    "/search?q=<script>alert(1)</script>",
]
PATHS = [
    "/",
    "/index.html",
    "/static/app.js",
    "/static/style.css",
    "/api/v1/orders",
    "/api/v1/orders/{n}",
    "/api/v1/products?page={n}",
    "/login",
    "/account/settings",
    "/images/logo.png",
]


def web_event(rng: random.Random, n: int) -> dict:
    attack = rng.random() < 0.01
    path = rng.choice(ATTACKS) if attack else rng.choice(PATHS).format(n=n % 997)
    status = rng.choice([200] * 12 + [304, 404, 301, 500])
    agent = "sqlmap/1.8#stable" if attack and rng.random() < 0.5 else rng.choice(AGENTS)
    return {
        "category": "data_access",
        "action": "http.request",
        "outcome": "success",
        "actor": {
            "id": "-",
            "type": "anonymous",
            "ip": f"203.0.{n % 7}.{rng.randrange(256)}",
            "user_agent": agent,
        },
        "source": {
            "component": rng.choice(["nginx-edge", "apache-intranet"]),
            "kind": "gateway",
            "format": "access_log",
            "host": "web-1",
        },
        "request": {
            "method": rng.choice(["GET"] * 8 + ["POST", "HEAD"]),
            "path": path,
            "status": status,
            "bytes": rng.randrange(100, 90000),
        },
        "attributes": {
            "http.request_line": f"GET {path} HTTP/1.1",
            "server.address": "shop.example.com",
            "http.request.header.referer": "https://shop.example.com/",
        },
    }


def login_event(rng: random.Random, n: int) -> dict:
    burst = (n // 50) % 40 == 0
    user = "admin" if burst else f"user{rng.randrange(500)}"
    return {
        "category": "authentication",
        "action": "user.login",
        "outcome": "failure" if burst or rng.random() < 0.1 else "success",
        "actor": {
            "id": user,
            "ip": "198.51.100.66" if burst else f"10.2.{rng.randrange(64)}.{rng.randrange(256)}",
        },
        "source": {"component": "sshd", "kind": "infra", "format": "auth_log", "host": "bastion"},
        "attributes": {"process.name": "sshd", "ssh.method": "password"},
    }


def k8s_event(rng: random.Random, n: int) -> dict:
    resource, verb = rng.choice(
        [
            ("pods", "list"),
            ("pods", "get"),
            ("configmaps", "get"),
            ("secrets", "get"),
            ("deployments", "patch"),
            ("events", "create"),
            ("pods", "create"),
        ]
    )
    return {
        "category": "data_access",
        "action": f"k8s.{resource}.{verb}",
        "outcome": "success",
        "actor": {
            "id": rng.choice(
                [
                    "system:serviceaccount:kube-system:deployment-controller",
                    "system:node:node-1",
                    "alice@example.com",
                ]
            ),
            "ip": "10.0.0.12",
        },
        "source": {"component": "kube-apiserver", "kind": "kubernetes", "format": "k8s_audit"},
        "request": {"path": f"/api/v1/namespaces/default/{resource}", "status": 200},
        "target": {"type": resource, "name": f"default/{resource}-{n % 50}"},
        "attributes": {
            "k8s.verb": verb,
            "k8s.stage": "ResponseComplete",
            "k8s.object_ref": {"resource": resource, "namespace": "default"},
            "k8s.response_status": {"code": 200},
        },
    }


def cloud_event(rng: random.Random, n: int) -> dict:
    name, source = rng.choice(
        [
            ("DescribeInstances", "ec2.amazonaws.com"),
            ("GetObject", "s3.amazonaws.com"),
            ("ListBuckets", "s3.amazonaws.com"),
            ("ConsoleLogin", "signin.amazonaws.com"),
            ("AssumeRole", "sts.amazonaws.com"),
        ]
    )
    return {
        "category": "data_access",
        "action": f"aws.{source.split('.')[0]}.{name.lower()}",
        "outcome": "success",
        "actor": {"id": "AIDAEXAMPLE", "name": "ops", "ip": "192.0.2.10"},
        "source": {"component": source, "kind": "cloud", "format": "cloudtrail"},
        "attributes": {
            "aws.event_name": name,
            "aws.event_source": source,
            "aws.region": "eu-west-1",
            "aws.user_identity": {
                "type": rng.choice(["IAMUser", "AssumedRole"]),
                "arn": "arn:aws:iam::111122223333:user/ops",
            },
            **(
                {
                    "aws.response_elements": {"ConsoleLogin": "Success"},
                    "aws.additional_event_data": {"MFAUsed": "Yes"},
                }
                if name == "ConsoleLogin"
                else {}
            ),
        },
    }


def other_event(rng: random.Random, n: int) -> dict:
    category, action = rng.choice(
        [
            ("admin", "config.update"),
            ("data_access", "report.export"),
            ("account", "user.role.grant"),
            ("system", "trailseal.ingest.rejected"),
        ]
    )
    kind = "trailseal" if action.startswith("trailseal") else "app"
    return {
        "category": category,
        "action": action,
        "outcome": "success",
        "actor": {"id": f"user{n % 40}", "ip": "10.9.9.9"},
        "source": {"component": "shop-api", "kind": kind, "format": "json"},
        "attributes": {"okta.event_type": "none"},
    }


MIX = [(web_event, 60), (login_event, 15), (k8s_event, 10), (cloud_event, 10), (other_event, 5)]


def make_events(count: int, seed: int = 7, lag: bool = False) -> list[tuple[dict, bytes]]:
    """(sealed event dict, its sealed bytes) in time order (~20 events per second).

    `lag`: trailseal receives each event 1-800 ms after its `time` (as in a live stream), instead
    of at the same instant; the same events otherwise.
    """
    rng = random.Random(seed)
    delays = random.Random(seed + 1)
    builders = [b for b, weight in MIX for _ in range(weight)]
    start = 1_780_000_000.0
    events = []
    for n in range(count):
        record = rng.choice(builders)(rng, n)
        stamp = format_epoch(start + n * 0.05)
        record["time"] = stamp
        record["log"] = "default"
        received = format_epoch(start + n * 0.05 + delays.uniform(0.001, 0.8)) if lag else stamp
        sealed = from_dict(record, received)
        events.append(({**to_dict(sealed.event), "index": n}, sealed.canonical))
    return events


# -- peer -----------------------------------------------------------------------------------------


def azuma_rules(docs: list[dict]):
    """(azuma Rule objects, their docs, their field names) for the single-event rules it parses."""
    from azuma import Rule

    rules, accepted, fields = [], [], []
    for doc in docs:
        if "correlation" in doc:
            continue
        try:
            rules.append(Rule.model_validate_yaml(yaml.safe_dump(doc)))
        except Exception:  # noqa: BLE001 - azuma rejects some valid Sigma (e.g. |expand)
            continue
        accepted.append(dict(doc, name=None))  # standalone: no correlation disables its output
        (rule,) = SigmaCollection.from_dicts([doc])
        fields.append((profile_for(rule.logsource), _field_names(doc["detection"])))
    return rules, accepted, fields


def _field_names(detection: dict) -> set[str]:
    """Sigma field names used by a detection block."""
    names: set[str] = set()
    for block in detection.values():
        for item in block if isinstance(block, list) else [block]:
            if isinstance(item, dict):
                names |= {name.split("|")[0] for name in item if not name.startswith("|")}
    return names


def flatten_for(engine: Engine, fields: list, events: list[dict]) -> list[dict]:
    """Each event as one flat dict keyed by every Sigma field name the rules use."""
    pipeline = engine.context.pipeline
    getters = {(p, n): pipeline.accessor(n, p) for p, names in fields for n in names}
    flat = []
    for event in events:
        row = {}
        for (_, name), get in getters.items():
            value = get(event)
            if value is not MISSING and name not in row:
                row[name] = value
        flat.append(row)
    return flat


# -- run ------------------------------------------------------------------------------------------


def run_ours(engine: Engine, stream: list[tuple[dict, bytes]]) -> tuple[float, int]:
    """CPU seconds to process the stream (CPU time: the 2-core box is shared), and alert count."""
    alerts = 0
    start = time.process_time()
    for event, canonical in stream:
        alerts += len(engine.process(event, canonical))
    return time.process_time() - start, alerts


def run_paired(docs: list[dict], streams: dict[str, list]) -> dict[str, tuple[float, int]]:
    """Per stream: CPU seconds and alerts of its own engine, the streams processed in alternating
    chunks (the order flipped each time) so that load and memory state weigh on each alike."""
    engines = {name: Engine(SigmaCollection.from_dicts(docs), placeholders=PLACEHOLDERS) for name in streams}
    totals = {name: [0.0, 0] for name in streams}
    size = max(1, EVENTS // 10)
    order = list(streams)
    gc.collect()
    gc.freeze()  # the streams are the harness's and the rules long-lived: keep both out of GC scans
    for start in range(0, EVENTS, size):
        for name in order:
            seconds, alerts = run_ours(engines[name], streams[name][start : start + size])
            totals[name][0] += seconds
            totals[name][1] += alerts
        order.reverse()
    gc.unfreeze()
    return {name: (seconds, alerts) for name, (seconds, alerts) in totals.items()}


def profile(engine: Engine, stream: list[tuple[dict, bytes]]) -> str:
    """The top of a cProfile of the engine over part of the stream."""
    profiler = cProfile.Profile()
    profiler.enable()
    for event, canonical in stream:
        engine.process(event, canonical)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(8)
    return out.getvalue()


def main() -> list[Result]:
    docs = rule_docs(100)
    engine = Engine(SigmaCollection.from_dicts(docs), placeholders=PLACEHOLDERS)
    correlations = sum(1 for r in engine.rules if r.correlator is not None)
    print(
        f"rules: {len(engine.rules)} ({len(engine.rules) - correlations} single, {correlations} correlation); "
        f"events: {EVENTS:,}",
        flush=True,
    )
    events = make_events(EVENTS)
    late = make_events(EVENTS, lag=True)
    measured = run_paired(docs, {"main": events, "late": late})
    seconds, alerts = measured["main"]
    print(f"alerts: {alerts:,}", flush=True)
    late_seconds, late_alerts = measured["late"]
    print(f"alerts (received late; lateness well under every rule's bound): {late_alerts:,}", flush=True)
    gc.collect()
    gc.freeze()

    peer_rules, peer_docs, fields = azuma_rules(docs)
    sample = [event for event, _ in events[: 1000 if QUICK else 2000]]  # azuma is slow
    peer_events = flatten_for(engine, fields, sample)
    start = time.process_time()
    peer_matches = sum(rule.match(row) for row in peer_events for rule in peer_rules)
    peer_rate = len(peer_events) / (time.process_time() - start)

    single = Engine(SigmaCollection.from_dicts(peer_docs), placeholders=PLACEHOLDERS)
    single_seconds, _ = run_ours(single, events)
    check = Engine(SigmaCollection.from_dicts(peer_docs), placeholders=PLACEHOLDERS)
    ours_matches = sum(len(check.process(event)) for event in sample)
    print(
        f"matches on the {len(sample):,}-event peer sample: ours {ours_matches:,}, azuma {peer_matches:,}",
        flush=True,
    )
    results = [
        report(
            Result(
                f"detect: {len(engine.rules)} rules, events/s",
                EVENTS / seconds,
                None,
                "events/s",
                goal=f">= {GOAL:,}",
                passed=EVENTS / seconds >= GOAL,
            )
        ),
        report(
            Result(
                f"detect: {len(peer_rules)} single-event rules, events/s",
                EVENTS / single_seconds,
                peer_rate,
                "events/s",
                peer_name="azuma 0.7.3, pre-flattened input",
            )
        ),
    ]
    fresh = Engine(SigmaCollection.from_dicts(docs), placeholders=PLACEHOLDERS)
    print(profile(fresh, events[: EVENTS // 5]), flush=True)
    gc.unfreeze()
    results.append(report(lagged(len(docs), late_seconds)))
    return results


def lagged(rules: int, seconds: float) -> Result:
    """The same rules over the same events received 1-800 ms late: every event then has its own
    clock skew to check (the main stream has `received == time`)."""
    rate = EVENTS / seconds
    return Result(f"detect: {rules} rules, received 1-800 ms late", rate, None, "events/s",
                  goal=f">= {GOAL:,}", passed=rate >= GOAL)


if __name__ == "__main__":
    main()

"""Privacy: protect() throughput, ingest with privacy on vs off, and our scan() beside Presidio's
AnalyzerEngine (regex recognizers only, no model).

protect() runs on the realistic events of bench/events.py (`from_dict(d).event`, default policy) and
on events carrying the labelled corpus lines (heavy free text). Ingest is `trailseal.open(dir).append()`
in batches of 1000, with the data dir's [privacy] on and off; the goal is on >= 0.7x off.
Scan speed is lines per second over the corpus in tests/privacy/corpus/; accuracy is precision and
recall per entity type both support, a prediction counting when it has the right type and overlaps
an expected span (lenient, so neither tool loses on span conventions).
Presidio runs with its NoOpNlpEngine (no spaCy model to download) and tldextract's bundled suffix list.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgspec

import trailseal
from bench.common import QUICK, Result, cli_ingest, cpu_seconds, report
from bench.events import events as realistic_events
from trailseal.event import Event, encode_event, from_dict
from trailseal.privacy import DEFAULT_POLICY, Keys, protect
from trailseal.privacy.detectors import scan

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "privacy" / "corpus" / "corpus.jsonl"
SHARED = {
    "email": "EMAIL_ADDRESS",
    "card": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "ssn": "US_SSN",
    "phone": "PHONE_NUMBER",
    "ip": "IP_ADDRESS",
}
OURS_BY_PRESIDIO = {entity: kind for kind, entity in SHARED.items()}
Span = tuple[str, int, int]
Detect = Callable[[str], list[Span]]


def load_corpus() -> list[dict]:
    """Corpus lines with each label turned into a (kind, start, end) span."""
    lines = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        line["spans"] = label_spans(line["text"], line["labels"])
    return lines


def label_spans(text: str, labels: list[list[str]]) -> list[Span]:
    """Where each labelled substring sits, repeated substrings taking successive occurrences."""
    spans, after = [], Counter()
    for kind, sub in labels:
        start = text.index(sub, after[sub])
        after[sub] = start + 1
        spans.append((kind, start, start + len(sub)))
    return spans


def ours(text: str) -> list[Span]:
    return [(f.kind, f.start, f.end) for f in scan(text)]


def presidio_engine():
    """Presidio's AnalyzerEngine with every predefined pattern recognizer and no NLP model, or None."""
    try:
        import tldextract.tldextract as tld
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
    except ImportError:
        return None
    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=())  # offline: the bundled public suffix list
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
    nlp.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])


def presidio_detect(engine, entities: list[str] | None) -> Detect:
    """Presidio as a detector: results mapped to our kind names (others kept under their own name)."""

    def detect(text: str) -> list[Span]:
        results = engine.analyze(text, language="en", entities=entities)
        return [(OURS_BY_PRESIDIO.get(r.entity_type, r.entity_type), r.start, r.end) for r in results]

    return detect


def lines_per_second(detect: Detect, texts: list[str], min_seconds: float) -> float:
    """Throughput over whole passes of texts (after a warm-up), repeated until min_seconds have gone by."""
    for text in texts[:20]:
        detect(text)
    passes, start = 0, time.perf_counter()
    while True:
        for text in texts:
            detect(text)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return passes * len(texts) / elapsed


def accuracy(detect: Detect, corpus: list[dict]) -> dict[str, Counter]:
    """Per shared kind: tp, fp, fn, matching same-kind overlapping spans one to one."""
    counts = {kind: Counter() for kind in SHARED}
    for line in corpus:
        expected = [s for s in line["spans"] if s[0] in SHARED]
        for kind, start, end in (p for p in detect(line["text"]) if p[0] in SHARED):
            hit = next((e for e in expected if e[0] == kind and e[1] < end and start < e[2]), None)
            if hit:
                expected.remove(hit)
                counts[kind]["tp"] += 1
            else:
                counts[kind]["fp"] += 1
        for kind, _, _ in expected:
            counts[kind]["fn"] += 1
    return counts


def protect_events_per_second(corpus: list[dict], min_seconds: float) -> float:
    """protect() under the default policy, on events carrying each corpus line in reason and attributes."""
    keys = Keys(b"\x07" * 32)
    events = [
        msgspec.convert(
            {
                "time": "2026-11-27T10:00:00Z",
                "category": "data_access",
                "action": "http.request",
                "outcome": "success",
                "actor": {"id": f"user{i}@example.com", "ip": "203.0.113.7", "user_agent": "curl/8.5.0"},
                "source": {"component": "api", "kind": "app"},
                "reason": line["text"][:200],
                "attributes": {"message": line["text"], "http": {"status": 200, "path": "/api/v1/orders"}},
            },
            Event,
        )
        for i, line in enumerate(corpus)
    ]
    passes, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        for event in events:
            protect(event, DEFAULT_POLICY, keys)
        passes += 1
    return passes * len(events) / (time.perf_counter() - start)


def protect_realistic_per_second(count: int, min_seconds: float) -> float:
    """protect() under the default policy on bench/events.py events, as from_dict() hands them over."""
    keys = Keys(b"\x07" * 32)
    batch = [from_dict(data).event for data in realistic_events(count)]
    for event in batch[:1000]:
        protect(event, DEFAULT_POLICY, keys)
    passes, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        for event in batch:
            protect(event, DEFAULT_POLICY, keys)
        passes += 1
    return passes * len(batch) / (time.perf_counter() - start)


def privacy_off(config: str) -> str:
    """trailseal.toml with the [privacy] table turned off."""
    return re.sub(r"(\[privacy\][^\[]*?)enabled = true", r"\1enabled = false", config)


def ingest_per_second(batch: list[dict], directory: Path, privacy: bool) -> tuple[float, float, bool]:
    """trailseal.open(dir).append() in batches of 1000 with [privacy] on or off: events per second of
    wall clock, CPU microseconds per event (this process: caller and writer thread, and its prepare
    workers), and whether the
    data dir applied protect() itself (False if off, or if the privacy stage is not wired in)."""
    trailseal.init(directory, origin="bench.trailseal")
    if not privacy:
        config = directory / "trailseal.toml"
        config.write_text(privacy_off(config.read_text()))
    with trailseal.open(directory) as log:
        wired = bool(getattr(getattr(log, "protection", None), "enabled", False))
        assert wired <= privacy, "the [privacy] table did not turn protection off"
        log.pool.start()  # the prepare workers, up before the first batch (as in a long-running appender)
        workers = log.pool.pids
        started, cpu = time.perf_counter(), cpu_seconds(workers)
        for start in range(0, len(batch), 1000):
            log.append(batch[start : start + 1000])
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(workers) - cpu
        return len(batch) / elapsed, 1e6 * cpu / len(batch), wired


def vault_rows_per_event(directory: Path, count: int) -> float:
    """Vault rows an ingest wrote per event: each costs a commitment, a search token and three random-key
    index inserts in the sealer's transaction, so QUICK (10k events, ~1 new value per event) pays more
    per event than the full run (50k events, values of the same 5,000 actors recur)."""
    with sqlite3.connect(directory / "trailseal.db") as conn:
        return conn.execute("SELECT count(*) FROM vault").fetchone()[0] / count


def protect_and_encode_seconds(batch: list[dict]) -> float:
    """What privacy adds to ingest when the data dir does not apply it: protect() + encode_event()."""
    keys = Keys(b"\x07" * 32)
    prepared = [from_dict(data).event for data in batch]
    start = time.perf_counter()
    for event in prepared:
        encode_event(protect(event, DEFAULT_POLICY, keys).event)
    return time.perf_counter() - start


def bench_ingest(count: int, rounds: int = 1 if QUICK else 3) -> list[Result]:
    """Ingest with privacy on vs off (the issue's goal: on >= 0.7x off), by wall clock and by CPU
    (the CPU figure holds on a busy machine, where wall clock also measures other processes). Off and on
    alternate for ``rounds`` rounds, each into a new data dir, and each side keeps its best round: on a
    shared VM a single pair of runs swings by 10-20% either way."""
    batch = realistic_events(count)
    off = on = command_off = command_on = 0.0
    off_cpu = on_cpu = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            rate, cpu, _ = ingest_per_second(batch, Path(tmp) / f"off{round_}", False)
            off, off_cpu = max(off, rate), min(off_cpu, cpu)
            rate, cpu, wired = ingest_per_second(batch, Path(tmp) / f"on{round_}", True)
            on, on_cpu = max(on, rate), min(on_cpu, cpu)
            command_off = max(command_off, cli_ingest(batch, Path(tmp) / f"cli-off{round_}", privacy_off))
            command_on = max(command_on, cli_ingest(batch, Path(tmp) / f"cli-on{round_}"))
        rows = vault_rows_per_event(Path(tmp) / "on0", count) if wired else None
    label = f"ingest {count:,} events, privacy on vs off" + (f" (best of {rounds})" if rounds > 1 else "")
    if not wired:  # approximate: ingest without privacy, plus protect() + encode_event() per event
        added = protect_and_encode_seconds(batch)
        on = count / (count / off + added)
        on_cpu = off_cpu + 1e6 * added / count
        label += " (est.)"
    results = [
        report(Result(label, on, off, "ev/s", "privacy off", ">= 0.7x", on >= 0.7 * off)),
        report(Result(f"trailseal ingest FILE, {count:,} NDJSON lines, privacy on vs off"
                      + (f" (best of {rounds})" if rounds > 1 else ""), command_on, command_off,
                      "ev/s", "privacy off", ">= 0.7x", command_on >= 0.7 * command_off)),
        report(Result(f"{label}, CPU per event", on_cpu, off_cpu, "us", "privacy off",
                      "<= 1.43x (0.7x rate)", on_cpu <= off_cpu / 0.7)),
    ]
    if rows is not None:
        results.append(report(Result(f"{label}, vault rows per event", rows, None, "rows")))
    return results


def precision(c: Counter) -> float:
    return c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0


def recall(c: Counter) -> float:
    return c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0


def main() -> list[Result]:
    corpus = load_corpus()
    texts = [line["text"] for line in corpus]
    peer_texts = texts[::6] if QUICK else texts
    results = []
    realistic = protect_realistic_per_second(5_000 if QUICK else 20_000, 0.5 if QUICK else 2.0)
    results.append(report(Result("protect() default policy, events/s", realistic, None, "events/s")))
    results.append(report(Result("protect() default policy, us/event", 1e6 / realistic, None, "us")))
    results.extend(bench_ingest(10_000 if QUICK else 50_000))
    our_speed = lines_per_second(ours, texts, 0.5 if QUICK else 3.0)
    results.append(
        report(
            Result(
                "protect() default policy, corpus events/s",
                protect_events_per_second(corpus, 0.5 if QUICK else 2.0),
                None,
                "events/s",
            )
        )
    )
    engine = presidio_engine()
    if engine is None:
        print("presidio-analyzer is not installed: `pip install presidio-analyzer` to compare")
        return [*results, report(Result("privacy scan (all detectors)", our_speed, None, "lines/s"))]
    name = "presidio regex-only"
    shared = presidio_detect(engine, list(SHARED.values()))
    everything = presidio_detect(engine, None)
    for label, peer in ((f"{name}, 6 shared types", shared), (f"{name}, all recognizers", everything)):
        peer_speed = lines_per_second(peer, peer_texts, 0.0)
        results.append(
            report(
                Result(
                    f"privacy scan lines/s vs {label.split(', ')[1]}",
                    our_speed,
                    peer_speed,
                    "lines/s",
                    label,
                    ">= 10x",
                    our_speed >= 10 * peer_speed,
                )
            )
        )
    mine, theirs = accuracy(ours, corpus), accuracy(shared, corpus)
    for kind in SHARED:
        for metric in (precision, recall):
            ours_value, peer_value = 100 * metric(mine[kind]), 100 * metric(theirs[kind])
            n = mine[kind]["tp"] + mine[kind]["fn"]
            results.append(
                report(
                    Result(
                        f"privacy {metric.__name__} {kind} ({n} labelled)",
                        ours_value,
                        peer_value,
                        "%",
                        name,
                        ">= peer",
                        ours_value >= peer_value,
                    )
                )
            )
    return results


if __name__ == "__main__":
    main()

"""Precision and recall of the detectors over the labelled corpus (labels come from the generator)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.privacy import make_corpus
from trailseal.privacy.detectors import KINDS, scan

CORPUS = Path(__file__).parent / "corpus" / "corpus.jsonl"


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


def score(corpus: list[dict]) -> dict[str, Counter]:
    """Per kind: true positives, false positives, false negatives (exact kind and substring)."""
    counts = {kind: Counter() for kind in KINDS}
    for line in corpus:
        text = line["text"]
        predicted = Counter((f.kind, text[f.start : f.end]) for f in scan(text))
        expected = Counter(tuple(label) for label in line["labels"])
        for outcome, diff in (
            ("tp", predicted & expected),
            ("fp", predicted - expected),
            ("fn", expected - predicted),
        ):
            for (kind, _), n in diff.items():
                counts[kind][outcome] += n
    return counts


def ratio(num: int, den: int) -> float:
    return num / den if den else 1.0


def table(counts: dict[str, Counter]) -> str:
    rows = [f"{'kind':<14} {'tp':>5} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}"]
    total = Counter()
    for kind, c in counts.items():
        total.update(c)
        rows.append(
            f"{kind:<14} {c['tp']:>5} {c['fp']:>4} {c['fn']:>4} {ratio(c['tp'], c['tp'] + c['fp']):>9.3f} "
            f"{ratio(c['tp'], c['tp'] + c['fn']):>7.3f}"
        )
    rows.append(
        f"{'overall':<14} {total['tp']:>5} {total['fp']:>4} {total['fn']:>4} "
        f"{ratio(total['tp'], total['tp'] + total['fp']):>9.3f} "
        f"{ratio(total['tp'], total['tp'] + total['fn']):>7.3f}"
    )
    return "\n".join(rows)


def test_corpus_is_the_frozen_output_of_its_generator(corpus):
    assert corpus == json.loads(json.dumps(make_corpus.make_lines(), ensure_ascii=False))


def test_corpus_shape(corpus):
    assert len(corpus) >= 500
    groups = Counter(line["group"] for line in corpus)
    assert groups["positive"] == groups["negative"] == len(corpus) // 2
    assert all(line["labels"] for line in corpus if line["group"] == "positive")
    assert not any(line["labels"] for line in corpus if line["group"] == "negative")
    assert all(sub in line["text"] for line in corpus for _, sub in line["labels"])
    per_kind = Counter(kind for line in corpus for kind, _ in line["labels"])
    assert set(per_kind) == set(KINDS)
    assert min(per_kind.values()) >= 10, per_kind


def test_precision_and_recall(corpus):
    counts = score(corpus)
    report = table(counts)
    print("\n" + report)
    total = sum(counts.values(), Counter())
    assert ratio(total["tp"], total["tp"] + total["fn"]) >= 0.99, report
    assert ratio(total["tp"], total["tp"] + total["fp"]) >= 0.97, report
    for kind, c in counts.items():
        assert ratio(c["tp"], c["tp"] + c["fn"]) >= 0.9, f"{kind} recall\n{report}"
        assert ratio(c["tp"], c["tp"] + c["fp"]) >= 0.9, f"{kind} precision\n{report}"

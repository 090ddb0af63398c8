"""The fast protect() against the reference walk, and the pieces it relies on.

protect() walks Structs directly, skips strings `might_match` proves clean, remembers clean strings
and computes HMACs from prepared key pads. Each of those must change nothing: with the same salts,
protect() and `_protect_reference` (builtins -> walk -> convert) must seal the same bytes and send
the same vault rows, or raise the same error.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
import random
from pathlib import Path

import msgspec
import pytest
from bench.events import events as bench_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.privacy.test_protect import PLANTED, make_event
from trailseal.event import Event, EventError, from_dict
from trailseal.privacy import DEFAULT_POLICY, Keys, Policy, pseudonym, search_token, tokens, verify_commitment
from trailseal.privacy.detectors import (
    DEFAULT_SCANNER,
    KINDS,
    Finding,
    Scanner,
    ascii_lower,
    ascii_shape,
    might_match,
    resolve_overlaps,
)
from trailseal.privacy.keyring import LogMac
from trailseal.privacy.protect import _UNSUPPORTED, _protect_reference, protect

protect_module = importlib.import_module("trailseal.privacy.protect")
policy_module = importlib.import_module("trailseal.privacy.policy")

KEYS = Keys(bytes(range(32)))
CORPUS = Path(__file__).parent / "corpus" / "corpus.jsonl"
SALTS = [hashlib.sha256(str(i).encode()).digest() for i in range(512)]
encode = msgspec.json.Encoder().encode

POLICIES = {
    "default": DEFAULT_POLICY,
    **{
        action: Policy(
            {
                "kinds": dict.fromkeys(KINDS, action),
                "fields": {f"actor.{name}": action for name in ("id", "name", "ip", "user_agent", "session")},
            }
        )
        for action in ("mask", "drop", "pseudonymize", "erasable", "keep")
    },
    # field rules under attributes: no single plan for every attribute
    "fields": Policy(
        {
            "national_ids": ["ssn"],
            "kinds": {"email": "erasable", "ip": "pseudonymize"},
            "fields": {
                "attributes.**": {"phone": "drop"},
                "attributes.customer.*": "erasable",
                "attributes.note": "keep",
                "attributes.tags": "mask",
                "request.path": "pseudonymize",
                "actor.roles": "erasable",
                "source.component": "drop",
                "reason": {"card": "erasable"},
            },
            "sources": {"web": {"fields": {"target.id": "erasable", "attributes.*": "scan"}}},
            "logs": {"payments": {"kinds": {"card": "drop"}}},
        }
    ),
}


def run(fn, event: Event, policy: Policy):
    """fn's result as plain data with each commitment named by its row number, or its EventError.

    Salts come from a fixed list, but the fast walk may draw some before it hands an event over
    to the reference walk; so salts and commitments are checked to open, then numbered.
    """
    tokens._salts.clear()
    tokens._salts.extend(SALTS)
    try:
        result = fn(event, policy, KEYS)
    except EventError as exc:
        return ("error", str(exc))
    finally:
        tokens._salts.clear()
    numbers = {}
    rows = []
    for row in result.vault_rows:
        assert verify_commitment(row.commitment, row.salt, row.value)
        numbers[row.commitment] = f"pd:#{len(numbers)}"
        rows.append(msgspec.structs.replace(row, commitment=numbers[row.commitment], salt=b""))
    sealed = encode(result.event).decode()
    for commitment, number in numbers.items():
        sealed = sealed.replace(commitment, number)
    return json.loads(sealed), rows


def assert_same(event: Event, policy: Policy) -> None:
    before = msgspec.to_builtins(event)
    fast, reference = run(protect, event, policy), run(_protect_reference, event, policy)
    assert fast == reference
    assert msgspec.to_builtins(event) == before  # the input is left alone


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_same_as_reference_on_realistic_events(name):
    for data in bench_events(300):
        assert_same(from_dict(data).event, POLICIES[name])


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("log", ["default", "payments"])
@pytest.mark.parametrize("component", ["accounts-api", "web"])
def test_same_as_reference_on_the_planted_event(name, log, component):
    assert_same(make_event(log, component), POLICIES[name])


def test_same_as_reference_on_corpus_lines_everywhere():
    lines = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    for i, text in enumerate(lines):
        short = text[:1024]
        event = msgspec.convert(
            {
                "time": "2026-11-27T10:00:00Z",
                "category": "data_access",
                "action": "http.request",
                "outcome": "success",
                "actor": {"id": short, "name": short, "roles": [short, "admin"], "session": short},
                "source": {"component": "web" if i % 2 else "api", "kind": "app", "host": short},
                "target": {"id": text, "name": text},
                "request": {"path": text, "trace_id": short},
                "reason": text,
                "attributes": {"message": text, short[:40]: [text, {"password": text}], "n": i},
            },
            Event,
        )
        for policy in POLICIES.values():
            assert_same(event, policy)


def test_values_json_does_not_have_are_refused_by_either_walk_naming_the_field():
    """Not turned into text (to_builtins would make these bytes base64): refused, as with privacy off."""
    event = make_event()
    event.attributes = {"ok": "fine", "raw": b"bob@example.com", "when": (1, "x")}
    assert_same(event, DEFAULT_POLICY)
    assert run(protect, event, DEFAULT_POLICY) == ("error", "attributes.raw: unsupported type bytes")


def test_a_value_grown_past_its_field_limit_fails_as_the_reference_does():
    event = make_event()
    event.actor.name = None
    event.target.type = "a@b.co " * 140  # 980 characters, 1,120 once each email is `[email]`
    fast, reference = run(protect, event, DEFAULT_POLICY), run(_protect_reference, event, DEFAULT_POLICY)
    assert fast == reference and fast[0] == "error" and "target.type" in fast[1]


def test_every_event_field_has_a_fast_block():
    assert _UNSUPPORTED == []  # a new field type? teach protect._generate about it, or events slow down


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.floats(allow_nan=False)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=20), inner, max_size=3)
    ),
    max_leaves=6,
)
LOOKALIKE = st.text(
    alphabet="0123456789 -.:+()/@=_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefxyzeJ\"'\n\t٣ſK", max_size=80
)
TEXT = st.one_of(st.text(max_size=60), LOOKALIKE, st.sampled_from(["web", "ok", "pw", "[email]", "a@b.co"]))
SECRETISH = st.sampled_from(
    ["password", "api_key", "phone", "email", "signing_key", "note", "[email]", "a@b.co"]
)
ATTRIBUTES = st.dictionaries(
    st.one_of(TEXT, SECRETISH),
    st.recursive(
        st.one_of(JSON, TEXT),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.one_of(TEXT, SECRETISH), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=5,
)
OPTIONAL = st.one_of(st.none(), TEXT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ATTRIBUTES,
    st.fixed_dictionaries(
        {
            "id": TEXT.filter(lambda s: 0 < len(s)),
            "name": OPTIONAL,
            "session": OPTIONAL,
            "ip": OPTIONAL,
            "user_agent": OPTIONAL,
            "roles": st.one_of(st.none(), st.lists(TEXT, max_size=3)),
        }
    ),
    st.fixed_dictionaries({"host": OPTIONAL, "ip": OPTIONAL, "endpoint": OPTIONAL}),
    st.fixed_dictionaries(
        {"path": OPTIONAL, "trace_id": OPTIONAL, "status": st.one_of(st.none(), st.integers(0, 999))}
    ),
    OPTIONAL,
    st.sampled_from(sorted(POLICIES)),
    st.sampled_from(["web", "api"]),
)
def test_same_as_reference_on_random_events(attributes, actor, source, request, reason, policy, component):
    clean = lambda d: {k: v for k, v in d.items() if v is not None}  # noqa: E731
    event = msgspec.convert(
        {
            "time": "2026-11-27T10:00:00Z",
            "category": "system",
            "action": "fuzz.run",
            "outcome": "unknown",
            "actor": clean(actor),
            "source": {"component": component, "kind": "app", **clean(source)},
            "request": clean(request),
            "reason": reason,
            "attributes": attributes,
        },
        Event,
    )
    assert_same(event, POLICIES[policy])


# -- might_match and each detector's gate: never False where a detector finds something ------------


def raw_findings(text: str, scanner: Scanner = DEFAULT_SCANNER) -> list:
    """What every detector finds in text, without might_match and before overlaps are resolved."""
    lower = ascii_lower(text)
    return [f for d in scanner.detectors if d.wanted(text, lower) for f in d.find(text, lower)]


def assert_gates_admit(text: str, scanner: Scanner = DEFAULT_SCANNER) -> None:
    """Where a detector finds something in text, might_match and (ASCII text) that detector's gate say so;
    and the scan (gated) finds what every detector finds (ungated)."""
    assert scanner.scan(text) == resolve_overlaps(raw_findings(text, scanner)), text
    lower = ascii_lower(text)
    finders = [d for d in scanner.detectors if d.wanted(text, lower) and next(d.find(text, lower), None)]
    if not finders:
        return
    assert might_match(text), text
    if text.isascii():
        shape = ascii_shape(text)
        for detector in finders:
            assert detector.possible(shape, shape.count(b"9")), (detector.kind, text)


def test_might_match_on_the_corpus_and_slices_of_it():
    rng = random.Random(7)
    lines = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    for text in lines:
        slices = [
            text,
            *(text[i:j] for i, j in (sorted(rng.sample(range(len(text) + 1), 2)) for _ in range(15))),
        ]
        for piece in slices:
            assert_gates_admit(piece)


def test_might_match_on_mutated_positives():
    rng = random.Random(11)
    alphabet = "0123456789 -.:+()/@=_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\t\n٣ſKİé"
    lines = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    positives = [text for text in lines if raw_findings(text)]
    for _ in range(20_000):
        chars = list(rng.choice(positives))
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(chars) + 1)
            op = rng.randrange(3)
            if op == 0 and i < len(chars):
                chars[i] = rng.choice(alphabet)
            elif op == 1:
                chars.insert(i, rng.choice(alphabet))
            elif i < len(chars):
                del chars[i]
        text = "".join(chars)
        i, j = sorted(rng.sample(range(len(text) + 1), 2))
        for piece in (text, text[i:j]):
            assert_gates_admit(piece)


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(st.text(max_size=60), LOOKALIKE, st.text(alphabet="0123456789 -./+()", min_size=8, max_size=30))
)
def test_might_match_on_random_text(text):
    assert_gates_admit(text)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789ABCDEGHJKLMNPRSTWXYZ -.+()", min_size=6, max_size=40))
def test_detector_gates_on_random_digits_and_capitals(text):
    """Cards, IBANs, phones, NINOs, INSEE numbers and their near misses: each gate admits what its detector finds."""
    assert_gates_admit(text)


@pytest.mark.parametrize(
    "text",
    [
        "web",
        "node-1",
        "orders_3",
        "latency_ms",
        "/api/v1/orders/123456",
        "000000000000000000000000000004d2",
        "7f3e2a10-9c1b-4d5e-8f6a-0b1c2d3e4f50",
        "ip-10-0-3-17.eu-west-1.compute.internal",
        "Jürgen Müller",
    ],
)
def test_might_match_clears_everyday_strings(text):
    assert not might_match(text) and not raw_findings(text)


def test_digit_runs_count_only_between_non_word_characters():
    for text in ("4111111111111111", "/v1/4111111111111111/", "card 4111111111111111."):
        assert might_match(text) and [f.kind for f in DEFAULT_SCANNER.scan(text)] == ["card"]
    for text in ("x4111111111111111", "4111111111111111x", "4111111111111111-", "41111111111111111111"):
        assert not might_match(text) and not raw_findings(text)


# -- the clean cache, salts and HMACs -----------------------------------------------------------


def test_values_masked_for_their_name_are_not_remembered_as_clean():
    event = make_event()
    event.attributes = {"customer": {"phone": "555 0132", "email": "bob at example dot org"}, "pin": "4921"}
    out = protect(event, DEFAULT_POLICY, KEYS).event.attributes
    assert out == {"customer": {"phone": "[phone]", "email": "[email]"}, "pin": "[secret]"}
    for value in ("555 0132", "bob at example dot org", "4921"):
        assert value not in DEFAULT_POLICY.scanner.clean
    assert "customer" in DEFAULT_POLICY.scanner.clean  # a name that says nothing is


def test_remembered_clean_strings_stay_clean():
    policy = Policy({"national_ids": ["ssn"]})
    event = make_event()
    event.attributes = {"a": "node-1", "b": "node-1"}
    protect(event, policy, KEYS)
    assert "node-1" in policy.scanner.clean and policy.scanner.clean is not DEFAULT_POLICY.scanner.clean


def test_prepared_hmac_is_hmac_sha256():
    rng = random.Random(3)
    for key_length in (1, 32, 64, 65, 200):
        key = rng.randbytes(key_length)
        for data in (b"", b"x", rng.randbytes(63), rng.randbytes(64), rng.randbytes(300)):
            assert LogMac(key).hexdigest(data) == hmac.new(key, data, hashlib.sha256).hexdigest()
    value = "bob@example.org\udcff"
    expected = hmac.new(KEYS.for_log("a"), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    assert search_token(value, "a", KEYS) == expected and pseudonym(value, "a", KEYS) == "ps:" + expected[:32]


def test_salts_are_distinct_and_fresh_after_a_fork():
    tokens._salts.clear()
    salts = [tokens.fresh_salt() for _ in range(3 * tokens.SALTS_PER_READ + 1)]
    assert len(set(salts)) == len(salts) and all(len(s) == 32 for s in salts)
    assert tokens._salts  # some left in the pool
    pid = os.fork()
    if pid == 0:  # the child must not hand out the salts its parent holds
        os._exit(0 if not tokens._salts else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_no_cache_keeps_a_personal_value():
    """Only strings sealed as they are get remembered: never a value, or a name, that was protected."""
    policy = Policy({})
    protect(make_event(), policy, KEYS)
    assert policy.scanner.clean and policy.scanner.clean_names
    for value in PLANTED.values():
        assert value not in policy.scanner.clean and value not in policy.scanner.clean_names
    module_caches = [
        v for k, v in vars(protect_module).items() if isinstance(v, dict | set) and not k.startswith("__")
    ]
    assert module_caches == []


def test_plan_caches_stay_bounded(monkeypatch):
    monkeypatch.setattr(policy_module, "MAX_PLANS", 10)
    policy = Policy({"fields": {"attributes.**": {"phone": "drop"}}})
    for i in range(100):
        assert policy.plan("default", f"c{i % 3}", f"attributes.k{i}").kinds["phone"] == "drop"
    assert sum(len(scope._plans) for scope in policy._scopes.values()) <= 10


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789 -./+()@:=_%?&#,;[]{}\t'\"\\", min_size=3, max_size=40))
def test_detectors_said_to_need_a_letter_find_nothing_without_one(text):
    """Text with every needle's punctuation and no ASCII letter: each gate (a detector that always needs
    a letter is not run on it) admits what its detector finds."""
    assert_gates_admit(text)


def test_remembered_findings_are_what_a_fresh_scan_finds_and_stay_bounded(monkeypatch):
    from trailseal.privacy import detectors

    lines = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    texts = [*lines, *(f"10.0.{n % 256}.{n // 256}" for n in range(300)), "127.0.0.1", "127.0.0.1"]
    monkeypatch.setattr(detectors, "FOUND_MAX_ENTRIES", 100)
    remembering = Scanner()
    for text in texts + texts:  # the second pass answers from memory where the first remembered
        findings = remembering.scan(text)
        assert findings == Scanner()._scan(text), text
        findings.clear()  # a caller's list is its own: what is remembered stays whole
        assert len(remembering.found) <= 100
    assert remembering.scan("127.0.0.1") == [Finding("ip", 0, 9)] and "127.0.0.1" in remembering.found

"""Random input never crashes scan or protect, and what they return stays well-formed."""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailseal.event import Event, finalize
from trailseal.privacy import DEFAULT_POLICY, Keys, Policy, protect, verify_commitment
from trailseal.privacy.detectors import KINDS, scan

KEYS = Keys(b"k" * 32)
LOOKALIKE = st.text(alphabet="0123456789 -.:+()/@=_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefxyzeJ\"'\n", max_size=300)
TEXT = st.one_of(st.text(max_size=300), LOOKALIKE)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(TEXT)
def test_scan_returns_sorted_disjoint_findings_inside_the_text(text):
    findings = scan(text)
    for finding in findings:
        assert finding.kind in KINDS
        assert 0 <= finding.start < finding.end <= len(text)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))


@SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=4).map(lambda parts: "password=".join(parts)))
def test_scan_survives_secret_names_anywhere(text):
    assert all(0 <= f.start < f.end <= len(text) for f in scan(text))


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), TEXT)
ATTRIBUTES = st.dictionaries(
    TEXT,
    st.recursive(
        JSON_LEAF,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
        max_leaves=8,
    ),
    max_size=5,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ATTRIBUTES,
    TEXT.filter(lambda s: 0 < len(s) <= 1024),
    st.sampled_from(["mask", "erasable", "pseudonymize", "drop"]),
)
def test_protect_survives_random_events(attributes, actor_id, action):
    event = msgspec.convert(
        {
            "time": "2026-11-27T10:00:00Z",
            "category": "system",
            "action": "fuzz.run",
            "outcome": "unknown",
            "actor": {"id": actor_id},
            "source": {"component": "fuzz", "kind": "app"},
            "attributes": attributes,
        },
        Event,
    )
    policy = DEFAULT_POLICY if action == "mask" else Policy({"kinds": dict.fromkeys(KINDS, action)})
    result = protect(event, policy, KEYS)
    assert all(verify_commitment(r.commitment, r.salt, r.value) for r in result.vault_rows)
    assert all(r.subject == actor_id for r in result.vault_rows)
    assert finalize(result.event, received="2026-11-27T10:00:01Z").canonical

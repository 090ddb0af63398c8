"""Policy resolution: defaults, per log / source / field precedence, globs, validation, fingerprint."""

from __future__ import annotations

import pytest

from trailseal.privacy.detectors import KINDS, SECRET_KINDS
from trailseal.privacy.policy import DEFAULT_POLICY, Policy, PolicyError, glob_regex

LAYERED = """
national_ids = ["ssn"]

[kinds]
email = "pseudonymize"

[fields]
"attributes.**" = { phone = "keep" }
"attributes.customer.*" = "erasable"
"attributes.customer.note" = { email = "erasable" }
"actor.ip" = "keep"

[sources.billing.kinds]
email = "drop"
card = "keep"

[sources.billing.fields]
"attributes.customer.*" = "mask"

[logs.payments.kinds]
card = "drop"
email = "mask"
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.from_toml(LAYERED)


def test_builtin_defaults():
    plan = DEFAULT_POLICY.plan
    for field in ("actor.id", "actor.name", "actor.ip", "actor.user_agent"):
        assert plan("default", "api", field).whole == "erasable"
    assert plan("default", "api", "actor.session").whole == "pseudonymize"
    free_text = plan("default", "api", "reason")
    assert free_text.whole == "scan"
    assert {free_text.action(k) for k in SECRET_KINDS} == {"mask"}
    assert [free_text.action(k) for k in ("card", "email", "phone", "ssn", "nino", "insee", "iban")] == [
        "mask"
    ] * 7
    assert free_text.action("ip") == "keep"


def test_kind_rule_of_the_policy_beats_builtin(policy):
    assert policy.action("default", "api", "reason", "email") == "pseudonymize"
    assert policy.action("default", "api", "reason", "jwt") == "mask"


def test_source_beats_policy_and_log_beats_source(policy):
    assert policy.action("default", "billing", "reason", "email") == "drop"
    assert policy.action("default", "billing", "reason", "card") == "keep"
    assert policy.action("payments", "billing", "reason", "email") == "mask"
    assert policy.action("payments", "billing", "reason", "card") == "drop"


def test_field_rule_beats_kind_rule_at_any_layer(policy):
    assert policy.action("payments", "billing", "attributes.x.y", "phone") == "keep"
    assert policy.action("payments", "api", "attributes.customer.note", "email") == "erasable"


def test_whole_value_rules_most_specific_layer_then_glob(policy):
    assert policy.plan("default", "api", "attributes.customer.name").whole == "erasable"
    assert policy.plan("default", "billing", "attributes.customer.name").whole == "mask"
    assert policy.plan("default", "api", "attributes.customer.deep.name").whole == "scan"
    assert policy.plan("default", "api", "actor.ip").whole == "keep"
    assert policy.plan("default", "api", "actor.id").whole == "erasable"  # built-in still applies


def test_table_rule_does_not_cancel_a_whole_value_rule():
    policy = Policy({"fields": {"actor.*": {"email": "pseudonymize"}}})
    assert policy.plan("default", "api", "actor.id").whole == "erasable"
    assert policy.action("default", "api", "actor.id", "email") == "pseudonymize"


def test_scan_action_turns_a_default_field_rule_off():
    policy = Policy({"fields": {"actor.id": "scan"}})
    assert policy.plan("default", "api", "actor.id").whole == "scan"


def test_globs():
    assert glob_regex("attributes.*.email").fullmatch("attributes.user.email")
    assert not glob_regex("attributes.*.email").fullmatch("attributes.a.b.email")
    assert glob_regex("attributes.**.email").fullmatch("attributes.a.b.email")
    assert glob_regex("request.p*").fullmatch("request.path")
    assert not glob_regex("request.path").fullmatch("request.pathx")


def test_national_ids_configure_the_scanner(policy):
    assert policy.national_ids == ("ssn",)
    assert [f.kind for f in policy.scanner.scan("536-22-1789 AB123456C")] == ["ssn"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kinds": {"email": "encrypt"}}, "action must be one of"),
        ({"kinds": {"emails": "mask"}}, "unknown kind"),
        ({"kinds": {"email": "scan"}}, "action must be one of"),
        ({"fields": {"actor.id": "hide"}}, "action must be one of"),
        ({"fields": {"actor.id": {"mail": "mask"}}}, "unknown kind"),
        ({"logs": {"x": {"kind": {}}}}, "unknown keys"),
        ({"sources": ["x"]}, "expected a table"),
        ({"national_ids": ["ssn", "xx"]}, "unknown national id"),
        ({"colour": "blue"}, "unknown keys"),
    ],
)
def test_invalid_policies_are_rejected(data, message):
    with pytest.raises(PolicyError, match=message):
        Policy(data)


def test_invalid_toml_is_a_policy_error():
    with pytest.raises(PolicyError, match="invalid TOML"):
        Policy.from_toml("[kinds\nemail = mask")


def test_load_from_file(tmp_path):
    path = tmp_path / "privacy.toml"
    path.write_text(LAYERED, encoding="utf-8")
    assert Policy.load(path).fingerprint() == Policy.from_toml(LAYERED).fingerprint()


def test_fingerprint_is_stable_and_sensitive(policy):
    assert Policy.from_toml(LAYERED).fingerprint() == policy.fingerprint()
    reordered = Policy({"kinds": {"phone": "drop", "email": "keep"}})
    assert reordered.fingerprint() == Policy({"kinds": {"email": "keep", "phone": "drop"}}).fingerprint()
    assert reordered.fingerprint() != Policy({"kinds": {"email": "keep", "phone": "mask"}}).fingerprint()
    assert len(policy.fingerprint()) == 64 and policy.fingerprint() != DEFAULT_POLICY.fingerprint()


def test_describe(policy):
    text = policy.describe()
    assert text.splitlines()[0] == f"privacy policy {policy.fingerprint()}"
    assert "[logs.payments]" in text and "[sources.billing]" in text and "[built-in]" in text
    assert "field actor.id" in text and "erasable" in text
    assert "national ids detected: ssn" in text
    assert all(kind in DEFAULT_POLICY.describe() or kind in SECRET_KINDS for kind in KINDS)

"""protect() on real events: what gets sealed, what goes to the vault, and how reads join it back."""

from __future__ import annotations

import copy
import hashlib
import re

import msgspec
import pytest

from tests.privacy.fake_vault import FakeVault
from trailseal.event import Event, decode_sealed, finalize, to_dict
from trailseal.privacy import (
    DEFAULT_POLICY,
    Keys,
    Policy,
    Vault,
    commitments_in,
    protect,
    pseudonym,
    reveal,
    search_token,
    verify_commitment,
)
from trailseal.privacy.detectors import KINDS
from trailseal.privacy.tokens import commitment_of

KEYS = Keys(bytes(range(32)))
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

# Every personal value planted below, as it appears in the input.
PLANTED = {
    "actor.id": "alice.martin@example.com",
    "actor.name": "Alice Martin",
    "actor.ip": "203.0.113.77",
    "actor.user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
    "actor.session": "sess-9f8e7d6c",
    "email": "bob.jones@example.org",
    "phone": "+44 20 7946 0123",
    "card": "4111 1111 1111 1111",
    "iban": "GB82WEST12345698765432",
    "ssn": "536-22-1789",
    "jwt": JWT,
    "password": "Hunter2-correct-horse",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "key_email": "carol@example.net",
    "pin": "4921",
}


def make_event(log: str = "default", component: str = "accounts-api") -> Event:
    data = {
        "id": "evt-1",
        "time": "2026-11-27T10:00:00Z",
        "log": log,
        "category": "account",
        "action": "user.update",
        "outcome": "success",
        "actor": {
            "id": PLANTED["actor.id"],
            "name": PLANTED["actor.name"],
            "ip": PLANTED["actor.ip"],
            "user_agent": PLANTED["actor.user_agent"],
            "session": PLANTED["actor.session"],
            "roles": ["admin"],
        },
        "source": {"component": component, "kind": "app", "ip": "10.0.0.5", "host": "node-1"},
        "target": {"type": "user", "id": "u-1234567", "name": f"contact {PLANTED['email']}"},
        "request": {"method": "PATCH", "path": f"/users?phone={PLANTED['phone']}", "status": 200},
        "reason": f"card {PLANTED['card']} replaced by {PLANTED['iban']}",
        "attributes": {
            "profile": {"ssn": f"SSN {PLANTED['ssn']}", "tags": ["vip", f"mail:{PLANTED['email']}"]},
            "headers": {"Authorization": f"Bearer {PLANTED['jwt']}", "X-Request-Id": "req-42"},
            "form": {"password": PLANTED["password"], "pin": int(PLANTED["pin"]), "remember": True},
            "env": [f"AWS_ACCESS_KEY_ID={PLANTED['aws']}"],
            PLANTED["key_email"]: {"visits": 3},
            "upstream": "10.1.2.3:8080",
            "token_count": 812,
        },
    }
    return msgspec.convert(data, Event)


def sealed_bytes(event: Event, policy: Policy = DEFAULT_POLICY) -> tuple[bytes, list]:
    result = protect(event, policy, KEYS)
    return finalize(result.event, received="2026-11-27T10:00:01Z").canonical, result.vault_rows


def every_kind(action: str) -> Policy:
    """A policy that applies one action to every kind and to the actor fields."""
    fields = {f"actor.{name}": action for name in ("id", "name", "ip", "user_agent", "session")}
    return Policy({"kinds": dict.fromkeys(KINDS, action), "fields": fields})


def test_default_policy_on_a_nested_event():
    result = protect(make_event(), DEFAULT_POLICY, KEYS)
    out = to_dict(result.event)
    for field in ("id", "name", "ip", "user_agent"):
        assert out["actor"][field].startswith("pd:") and len(out["actor"][field]) == 67
    assert out["actor"]["session"] == pseudonym(PLANTED["actor.session"], "default", KEYS)
    assert out["actor"]["roles"] == ["admin"]
    assert out["reason"] == "card ****1111 replaced by [iban]"
    assert out["target"]["name"] == "contact [email]"
    assert out["request"]["path"] == "/users?phone=[phone]"
    attributes = out["attributes"]
    assert attributes["profile"] == {"ssn": "SSN [ssn]", "tags": ["vip", "mail:[email]"]}
    assert attributes["headers"] == {"Authorization": "[secret]", "X-Request-Id": "req-42"}
    assert attributes["form"] == {"password": "[password]", "pin": "[secret]", "remember": True}
    assert attributes["env"] == ["AWS_ACCESS_KEY_ID=[aws_key]"]
    assert attributes["[email]"] == {"visits": 3}
    assert attributes["upstream"] == "10.1.2.3:8080"  # IPs outside actor.ip are kept by default
    assert attributes["token_count"] == 812
    assert out["source"]["ip"] == "10.0.0.5"
    assert (out["id"], out["time"], out["action"]) == ("evt-1", "2026-11-27T10:00:00Z", "user.update")


@pytest.mark.parametrize("action", ["mask", "drop", "pseudonymize", "erasable"])
def test_no_plaintext_survives_in_the_sealed_bytes(action):
    data, _ = sealed_bytes(make_event(), every_kind(action))
    # a commitment is 64 random-salted hex digits: a short planted value ("4921") may occur in one by chance
    data = re.sub(rb"pd:[0-9a-f]{64}", b"pd:", data)
    for name, value in PLANTED.items():
        assert value.encode() not in data, (action, name)
    assert b"4111111111111111" not in data and b"Hunter2" not in data
    assert b"536-22-1789" not in data and b"alice" not in data


def test_commitments_verify_and_sit_in_the_sealed_bytes():
    data, rows = sealed_bytes(make_event())
    assert {row.field for row in rows} == {"actor.id", "actor.name", "actor.ip", "actor.user_agent"}
    for row in rows:
        assert verify_commitment(row.commitment, row.salt, row.value)
        assert row.commitment.encode() in data
        assert not verify_commitment(row.commitment, row.salt, row.value + " ")
        assert not verify_commitment(row.commitment, bytes(32), row.value)
        assert (row.subject, row.log) == (PLANTED["actor.id"], "default")
        assert row.token == search_token(row.value, "default", KEYS)
    assert {row.value for row in rows} == {PLANTED[f"actor.{f}"] for f in ("id", "name", "ip", "user_agent")}


def test_commitment_is_sha256_of_salt_then_value():
    salt = bytes.fromhex("00" * 31 + "01")
    assert commitment_of(salt, "é") == "pd:" + hashlib.sha256(salt + "é".encode()).hexdigest()


def test_salts_are_fresh_so_equal_values_do_not_link():
    _, first = sealed_bytes(make_event())
    _, second = sealed_bytes(make_event())
    assert {r.commitment for r in first}.isdisjoint({r.commitment for r in second})
    assert len({r.salt for r in first + second}) == len(first) + len(second)


def test_erasable_spans_inside_free_text():
    policy = Policy({"kinds": {"email": "erasable"}})
    data, rows = sealed_bytes(make_event(), policy)
    by_field = {row.field: row for row in rows}
    assert by_field["target.name"].value == PLANTED["email"]
    assert by_field["attributes.profile.tags"].value == PLANTED["email"]
    assert PLANTED["email"].encode() not in data


def test_reveal_joins_values_back_and_erasure_removes_them():
    data, rows = sealed_bytes(make_event())
    vault = FakeVault()
    assert isinstance(vault, Vault)
    vault.put(rows)
    sealed = to_dict(decode_sealed(data))
    wanted = commitments_in(sealed)
    assert wanted == {row.commitment for row in rows}
    shown = reveal(sealed, vault.get(wanted))
    assert shown["actor"]["id"] == PLANTED["actor.id"] and shown["actor"]["ip"] == PLANTED["actor.ip"]
    assert vault.erase(PLANTED["actor.id"], log="other") == 0
    assert vault.erase(PLANTED["actor.id"]) == 4
    after = reveal(sealed, vault.get(wanted))
    assert after == sealed and PLANTED["actor.id"] not in repr(after)
    assert finalize(decode_sealed(data), received=sealed["received"]).canonical == data  # proofs unchanged


def test_search_token_finds_erasable_values_without_plaintext():
    vault = FakeVault()
    for _ in range(3):
        vault.put(sealed_bytes(make_event())[1])
    found = vault.find(search_token(PLANTED["actor.ip"], "default", KEYS))
    assert len(found) == 3
    assert vault.find(search_token(PLANTED["actor.ip"], "other-log", KEYS)) == []


def test_pseudonyms_are_stable_joinable_and_keyed_per_log():
    value = "bob@example.org"
    assert pseudonym(value, "a", KEYS) == pseudonym(value, "a", KEYS)
    assert pseudonym(value, "a", KEYS) != pseudonym(value, "b", KEYS)
    assert pseudonym(value, "a", KEYS) != pseudonym(value, "a", Keys(b"\x01" * 32))
    assert pseudonym(value, "a", KEYS) == "ps:" + search_token(value, "a", KEYS)[:32]
    data, _ = sealed_bytes(make_event(), every_kind("pseudonymize"))
    again, _ = sealed_bytes(make_event(), every_kind("pseudonymize"))
    assert pseudonym(PLANTED["email"], "default", KEYS).encode() in data
    assert data == again


def test_keys_are_derived_per_log_and_need_a_real_master():
    assert Keys(b"m" * 32).for_log("a") == Keys(b"m" * 32).for_log("a")
    assert Keys(b"m" * 32).for_log("a") != Keys(b"m" * 32).for_log("b")
    assert len(Keys.generate().for_log("a")) == 32
    assert "mmmm" not in repr(Keys(b"m" * 32))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Keys(b"short")


def test_drop_removes_fields_items_and_keeps_required_fields():
    policy = Policy({"kinds": {"email": "drop"}, "fields": {"actor.id": "drop", "source.component": "drop"}})
    out = to_dict(protect(make_event(), policy, KEYS).event)
    assert "name" not in out["target"]
    assert out["attributes"]["profile"]["tags"] == ["vip"]
    assert PLANTED["key_email"] not in out["attributes"] and "[email]" not in out["attributes"]
    assert out["actor"]["id"] == "[dropped]" and out["source"]["component"] == "[dropped]"


def test_per_log_and_per_source_rules_apply():
    policy = Policy(
        {
            "logs": {"payments": {"kinds": {"card": "keep"}}},
            "sources": {"web": {"fields": {"reason": "keep"}}},
        }
    )
    assert to_dict(protect(make_event("payments"), policy, KEYS).event)["reason"].startswith("card 4111 1111")
    assert to_dict(protect(make_event("default", "web"), policy, KEYS).event)["reason"] == make_event().reason
    assert to_dict(protect(make_event(), policy, KEYS).event)["reason"].startswith("card ****1111")


def test_masked_keys_that_collide_stay_distinct():
    event = make_event()
    event.attributes = {"a@example.com": 1, "b@example.com": 2}
    assert to_dict(protect(event, DEFAULT_POLICY, KEYS).event)["attributes"] == {"[email]": 1, "[email]~2": 2}


def test_secret_names_cover_nested_values_and_random_values_of_weak_names():
    event = make_event()
    event.attributes = {
        "credentials": {"user": "svc", "pass": {"v": "x"}},
        "signing_key": "Zk9sL2x0S1V3bWJtY1pXeHBa",
        "idempotency_key": "7f3e2a10-9c1b-4d5e-8f6a-0b1c2d3e4f50",
    }
    out = to_dict(protect(event, DEFAULT_POLICY, KEYS).event)["attributes"]
    assert out["credentials"] == {"user": "[secret]", "pass": {"v": "[secret]"}}
    assert out["signing_key"] == "[secret]"
    assert out["idempotency_key"] == "7f3e2a10-9c1b-4d5e-8f6a-0b1c2d3e4f50"


def test_names_of_personal_fields_cover_values_the_detectors_miss():
    event = make_event()
    event.attributes = {
        "customer": {"phone": "555 0132", "email": "bob at example dot org", "company": "ACME"},
        "card_number": "4111-xxxx-xxxx-1111",
        "contact_emails": ["x"],
    }
    out = to_dict(protect(event, DEFAULT_POLICY, KEYS).event)["attributes"]
    assert out["customer"] == {"phone": "[phone]", "email": "[email]", "company": "ACME"}
    assert out["card_number"] == "****1111" and out["contact_emails"] == ["x"]


def test_protect_leaves_the_input_event_alone():
    event = make_event()
    before = copy.deepcopy(to_dict(event))
    protect(event, DEFAULT_POLICY, KEYS)
    assert to_dict(event) == before

"""Each detector on its own: what it must find, what it must leave alone, and its validator."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.privacy import names
from trailseal.privacy import validators as v
from trailseal.privacy.detectors import KINDS, Finding, Scanner, resolve_overlaps, scan


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in scan(text)]


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


JWT = f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url({'sub': '42'})}.c2lnbmF0dXJlLWJ5dGVz"
NO_ALG = f"{b64url({'typ': 'JWT'})}.{b64url({'sub': '42'})}.c2lnbmF0dXJlLWJ5dGVz"
PEM = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oooFKOtGEpc1\n"
    "-----END EC PRIVATE KEY-----"
)

POSITIVES = [
    ("mail bob.smith+ci@mail.example.co.uk now", [("email", "bob.smith+ci@mail.example.co.uk")]),
    ("<ALICE@EXAMPLE.ORG>", [("email", "ALICE@EXAMPLE.ORG")]),
    ("visa 4111 1111 1111 1111 ok", [("card", "4111 1111 1111 1111")]),
    ("mc 5500-0000-0000-0004", [("card", "5500-0000-0000-0004")]),
    ("amex 371449635398431", [("card", "371449635398431")]),
    ("iban DE89 3704 0044 0532 0130 00 EUR", [("iban", "DE89 3704 0044 0532 0130 00")]),
    ("BE68539007547034 CODE", [("iban", "BE68539007547034")]),
    ("BE68 5390 0754 7034 CODE", [("iban", "BE68 5390 0754 7034")]),
    ("ssn=536-22-1789;", [("ssn", "536-22-1789")]),
    ("nino AB 12 34 56 C", [("nino", "AB 12 34 56 C")]),
    ("NIR 255081416802538 ok", [("insee", "255081416802538")]),
    ("tel +1 (415) 555-0132 x", [("phone", "+1 (415) 555-0132")]),
    ("tel +33 6 12 34 56 78", [("phone", "+33 6 12 34 56 78")]),
    ("call (212) 555-0199", [("phone", "(212) 555-0199")]),
    ("uk 020 7946 0958", [("phone", "020 7946 0958")]),
    ("fr 06 12 34 56 78", [("phone", "06 12 34 56 78")]),
    (f"id_token={JWT}", [("jwt", JWT)]),
    ("key AKIAIOSFODNN7EXAMPLE used", [("aws_key", "AKIAIOSFODNN7EXAMPLE")]),
    (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        [("aws_secret", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")],
    ),
    ("k=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", [("gcp_key", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY")]),
    ("AccountKey=" + "Ab1+" * 22 + ";", [("azure_key", "Ab1+" * 22)]),
    (
        "blob?sv=2022&sig=aB3dEf%2Bgh1jK2lMn0pQrStUvWxYz12345%3D&se=1",
        [("azure_key", "aB3dEf%2Bgh1jK2lMn0pQrStUvWxYz12345%3D")],
    ),
    ("t ghp_" + "a1B2" * 9 + " x", [("github_token", "ghp_" + "a1B2" * 9)]),
    (
        "t github_pat_" + "A" * 22 + "_" + "b" * 59,
        [("github_token", "github_pat_" + "A" * 22 + "_" + "b" * 59)],
    ),
    ("t glpat-abcdefghij0123456789", [("gitlab_token", "glpat-abcdefghij0123456789")]),
    ("t xoxb-123456789012-abcdefABCDEF", [("slack_token", "xoxb-123456789012-abcdefABCDEF")]),
    ("Authorization: Bearer 2YotnFZFEjr1zCsicMWpAA", [("bearer_token", "2YotnFZFEjr1zCsicMWpAA")]),
    ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", [("basic_auth", "YWxhZGRpbjpvcGVuc2VzYW1l")]),
    ("dsn=postgres://app:p%40ss@db:5432/x", [("password", "p%40ss")]),
    ("GET /x?user=a&password=hunter2&y=1", [("password", "hunter2")]),
    ('{"client_secret": "s3cr3t value"}', [("secret", "s3cr3t value")]),
    ("X-Api-Key: k3y-abc123", [("secret", "k3y-abc123")]),
    ("Cookie: sid=abc; theme=dark", [("secret", "sid=abc; theme=dark")]),
    ("signing_key=Zk9sL2x0S1V3bWJtY1pXeHBaU0Iw", [("secret", "Zk9sL2x0S1V3bWJtY1pXeHBaU0Iw")]),
    (f"key: {PEM} end", [("private_key", PEM)]),
    ("from 203.0.113.9:443", [("ip", "203.0.113.9")]),
    ("from [2001:db8::1]:443 and fe80::1%eth0", [("ip", "2001:db8::1"), ("ip", "fe80::1")]),
]

NEGATIVES = [
    "uuid 550e8400-e29b-41d4-a716-446655440000 sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c",
    "id 4111111111111112 is not Luhn-valid",
    "visa-shaped 1234 5678 9012 3456 fails the network prefix",
    "IBAN DE00370400440532013000 has a bad checksum",
    "IBAN DE8937040044053201300 is one digit short",
    "ssn 000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000",
    "order ORD-123-45-6789 and 2026-11-27",
    "nino GB123456A BG123456A is an invalid prefix",
    "insee 255081416802537 has a wrong key",
    "ports 0.0.0.0:8080 version 1.2.3.4 oid 1.3.6.1.4.1 time 12:30:45 mac 00:1a:2b:3c:4d:5e",
    "epoch 1764201600 ms 1764201600123 tz +05:30 and +0000",
    f"cursor {NO_ALG} is not a JWT",
    "invalid token: expired; password reset requested; max_tokens=4096 token_count=12",
    "password=*** token=<redacted> api_key=${API_KEY} secret=null",
    "Bearer realm=api; Basic plan; bypass=true",
    "lodash@4.17.21 alice@localhost nginx@sha256:abcd",
    "Foo::Bar::baz std::vector",
]


@pytest.mark.parametrize(("text", "expected"), POSITIVES)
def test_detector_finds(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", NEGATIVES)
def test_detector_leaves_alone(text):
    assert found(text) == []


def test_every_kind_has_a_positive_example():
    assert {kind for _, labels in POSITIVES for kind, _ in labels} == set(KINDS)


def test_findings_are_sorted_and_disjoint():
    text = "a@example.com 4111 1111 1111 1111 10.0.0.1 +44 20 7946 0958 Bearer abcdef123456"
    findings = scan(text)
    assert len(findings) == 5
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))


def test_more_specific_kind_wins_an_overlap():
    assert resolve_overlaps([Finding("secret", 0, 10), Finding("jwt", 0, 10)]) == [Finding("jwt", 0, 10)]
    assert resolve_overlaps([Finding("card", 5, 9), Finding("iban", 0, 20)]) == [Finding("iban", 0, 20)]
    assert resolve_overlaps([Finding("ip", 0, 4), Finding("ip", 2, 9)]) == [Finding("ip", 2, 9)]


def test_url_password_beats_the_email_it_looks_like():
    assert found("https://bob:pw123@example.com/") == [("password", "pw123")]


def test_national_ids_are_configurable():
    text = "ssn 536-22-1789 nino AB123456C"
    assert [f.kind for f in Scanner(["nino"]).scan(text)] == ["nino"]
    assert [f.kind for f in Scanner([]).scan(text)] == []
    with pytest.raises(ValueError, match="unknown national id"):
        Scanner(["xx_id"])


def test_non_ascii_text_keeps_offsets_right():
    text = "İİİ password=hunter22 Straße ü@example.com"
    assert found(text) == [("password", "hunter22")]


def test_luhn():
    assert v.luhn_ok("4242424242424242") and v.luhn_ok("79927398713")
    assert not v.luhn_ok("4242424242424241")


def test_card_validator():
    assert v.card_ok("4242-4242-4242-4242")
    assert not v.card_ok("4242-4242 4242-4242")  # mixed separators
    assert not v.card_ok("0000000000000000")
    assert not v.card_ok("9111111111111111")  # no such network


def test_iban_validator():
    assert v.iban_ok("GB82WEST12345698765432")
    assert not v.iban_ok("GB82WEST12345698765433")
    assert not v.iban_ok("XX82WEST12345698765432")
    assert not v.iban_ok("GB82WEST1234569876543")


def test_ssn_validator():
    assert v.ssn_ok("536-22-1789")
    for bad in ("000-22-1789", "666-22-1789", "900-22-1789", "536-00-1789", "536-22-0000"):
        assert not v.ssn_ok(bad), bad


def test_nino_and_insee_validators():
    assert v.nino_ok("JG103759A") and not v.nino_ok("TN103759A")
    assert v.insee_ok("2 55 08 14 168 025 38")
    assert v.insee_ok("1 85 05 2A 006 084 35")  # Corsica: 2A counts as 19
    assert not v.insee_ok("255081416802539")
    assert not v.insee_ok("255131416802538")  # month 13


def test_jwt_validator():
    assert v.jwt_ok(JWT)
    assert not v.jwt_ok(NO_ALG)
    assert not v.jwt_ok("eyJub3QganNvbg.eyJ4IjoxfQ.sig")


def test_basic_auth_validator():
    assert v.basic_auth_ok(base64.b64encode(b"user:pass").decode())
    assert not v.basic_auth_ok(base64.b64encode(b"no colon here").decode())
    assert not v.basic_auth_ok("not base64!")


def test_ip_validators():
    assert v.ipv4_ok("192.168.1.1") and v.ipv6_ok("2001:db8::1")
    for bad in ("256.1.1.1", "01.02.03.04", "0.0.0.0"):
        assert not v.ipv4_ok(bad), bad
    for bad in ("12:30:45", "::", "a::b", "00:1a:2b:3c:4d:5e"):
        assert not v.ipv6_ok(bad), bad


def _ipaddress_says_ipv4(candidate: str) -> bool:
    """What ipv4_ok stands in for: the standard library's parser."""
    import ipaddress

    try:
        return not ipaddress.IPv4Address(candidate).is_unspecified
    except ValueError:
        return False


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 300).map(str), st.text("0123456789\u0661\uff11", max_size=4)),
                min_size=1, max_size=5).map(".".join))
def test_ipv4_validator_takes_what_ipaddress_takes(candidate):
    """Dotted digits of every kind (leading zeros, > 255, non-ASCII digits, too few or many parts)."""
    assert v.ipv4_ok(candidate) == _ipaddress_says_ipv4(candidate)


def test_phone_validator():
    assert v.phone_ok("+44 20 7946 0958") and v.phone_ok("(212) 555-0199")
    assert not v.phone_ok("+1 23")
    assert not v.phone_ok("+1 (415 555-0132")
    assert not v.phone_ok("+11 1111 1111")


def test_entropy_and_placeholders():
    assert v.looks_random("Zk9sL2x0S1V3bWJtY1pXeHBaU0Iw")
    assert not v.looks_random("550e8400-e29b-41d4-a716-446655440000")
    assert not v.looks_random("aaaaaaaaaaaaaaaaaaaaaaaa")
    for value in ("", "***", "xxxx", "null", "[redacted]", "<hidden>", "${TOKEN}", "$TOKEN"):
        assert v.placeholder(value), value
    assert not v.placeholder("hunter2")


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("password", "password"),
        ("DB_PASSWORD", "password"),
        ("PGPASSWORD", "password"),
        ("pwd", "password"),
        ("accessToken", "secret"),
        ("x-api-key", "secret"),
        ("apiKey", "secret"),
        ("client_secret", "secret"),
        ("Authorization", "secret"),
        ("Set-Cookie", "secret"),
        ("session", "secret"),
        ("sessionId", "secret"),
        ("private_key", "secret"),
        ("signing_key", "secret"),
        ("key", "weak"),
        ("idempotency_key", "weak"),
        ("hmac", "weak"),
        ("token_count", None),
        ("bypass", None),
        ("private_key_id", None),
        ("user", None),
        ("password_changed_at", None),
        ("tokens", None),
    ],
)
def test_secret_names(key, kind):
    assert names.classify_key(key) == kind
    assert names.is_secret_key(key) == (kind in ("password", "secret"))


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("email", "email"),
        ("customerEmail", "email"),
        ("mobile_phone", "phone"),
        ("card_number", "card"),
        ("ssn", "ssn"),
        ("company", None),
        ("email_verified", None),
        ("span", None),
    ],
)
def test_personal_names(key, kind):
    assert names.personal_kind(key) == kind

"""Checksums and structure rules that turn a regex candidate into a finding."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter

# ISO 13616 registry: IBAN length per country.
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
    "YE": 30,
}

_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_NON_DIGITS = re.compile(r"\D")
_PLACEHOLDER = re.compile(
    r"^(?:[*xX•#.\-]+|null|none|nil|undefined|redacted|masked|hidden|true|false|\$\{[^}]*\}|\$\w+)$",
    re.IGNORECASE,
)


def digits_of(text: str) -> str:
    """The decimal digits of text, in order."""
    return _NON_DIGITS.sub("", text)


def luhn_ok(digits: str) -> bool:
    """True if the digit string passes the Luhn (mod 10) check."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """True if the number has a known payment network prefix and length."""
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649 or two == 62:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    return False


def card_ok(candidate: str) -> bool:
    """A payment card number: consistent separators, known network, Luhn."""
    separators = {c for c in candidate if not c.isdigit()}
    if len(separators) > 1:
        return False
    digits = digits_of(candidate)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and card_brand_ok(digits) and luhn_ok(digits)


def iban_ok(compact: str) -> bool:
    """An IBAN without spaces: registered country length and ISO 7064 mod 97-10."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdecimal():
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def ssn_ok(candidate: str) -> bool:
    """A US SSN: area not 000/666/9xx, group not 00, serial not 0000, same separator twice."""
    if len({c for c in candidate if not c.isdigit()}) > 1:
        return False
    digits = digits_of(candidate)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def nino_ok(candidate: str) -> bool:
    """A UK National Insurance number (prefix rules; spaces allowed between pairs)."""
    compact = candidate.replace(" ", "")
    return len(compact) == 9 and compact[:2] not in _NINO_BAD_PREFIXES


def insee_ok(candidate: str) -> bool:
    """A French NIR (numéro INSEE): plausible month and the 97 - (n mod 97) key."""
    compact = candidate.replace(" ", "").upper()
    if len(compact) != 15:
        return False
    month = int(compact[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    body = compact[:13].replace("2A", "19").replace("2B", "18")
    if not body.isdecimal():
        return False
    return 97 - int(body) % 97 == int(compact[13:])


def b64url_decode(part: str) -> bytes:
    """Decode unpadded base64url; raises binascii.Error or ValueError when invalid."""
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def jwt_ok(candidate: str) -> bool:
    """A JWT/JWS: three base64url parts whose header is a JSON object naming an alg."""
    parts = candidate.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


def basic_auth_ok(candidate: str) -> bool:
    """A Basic credential: base64 of printable `user:password`."""
    try:
        decoded = base64.b64decode(candidate + "=" * (-len(candidate) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255, ASCII digits, no leading zero
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def ipv4_ok(candidate: str) -> bool:
    """A dotted-quad IPv4 address other than 0.0.0.0 (no leading zeros): what ipaddress.IPv4Address takes,
    in one regex match (the detector calls it for every dotted-quad candidate; ipaddress took ~4 us)."""
    return _DOTTED_QUAD.fullmatch(candidate) is not None and candidate != "0.0.0.0"


def ipv6_ok(candidate: str) -> bool:
    """An IPv6 address with at least one digit, other than ::."""
    if not any(c.isdigit() for c in candidate):
        return False
    try:
        return not ipaddress.IPv6Address(candidate).is_unspecified
    except ValueError:
        return False


def phone_ok(candidate: str) -> bool:
    """A phone number: 8-15 digits (E.164) with sane grouping."""
    digits = digits_of(candidate)
    if candidate.count("(") != candidate.count(")") or len(set(digits)) < 3:
        return False
    if candidate.startswith("+"):
        return 8 <= len(digits) <= 15
    return 9 <= len(digits) <= 11


def shannon_entropy(text: str) -> float:
    """Bits per character of text."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def looks_random(value: str) -> bool:
    """High-entropy, mixed-alphabet token (not a UUID, hex digest or word)."""
    if len(value) < 20 or shannon_entropy(value) < 3.5:
        return False
    has_lower = any(c.islower() for c in value)
    has_upper = any(c.isupper() for c in value)
    has_digit = any(c.isdigit() for c in value)
    return has_lower and has_upper and has_digit


def placeholder(value: str) -> bool:
    """True for values that stand in for a secret rather than being one (`***`, `null`, `${VAR}`)."""
    return not value or bool(_PLACEHOLDER.match(value)) or (value[0] in "[<" and value[-1] in "]>")

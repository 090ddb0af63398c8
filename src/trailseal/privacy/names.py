"""Which field and parameter names mark their value as a secret, whatever the value looks like."""

from __future__ import annotations

import re
from functools import lru_cache

PASSWORD_WORDS = ("password", "passwd", "passphrase")
SHORT_PASSWORD_WORDS = frozenset({"pwd", "pass", "pw", "pswd"})
SECRET_SUFFIXES = (
    "secret",
    "secrets",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "cookies",
    "credential",
    "credentials",
    "sessionid",
    "sessid",
    "signature",
)
SECRET_WORDS = frozenset({"session", "sig", "jwt", "otp", "pin", "cvv", "cvc"})
SECRET_PAIRS = frozenset(
    {
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
        "sessionid",
        "setcookie",
        "masterkey",
        "signingkey",
        "encryptionkey",
        "sessiontoken",
        "sessionkey",
    }
)
WEAK_WORDS = frozenset({"auth", "hmac", "salt", "nonce"})
COOKIE_NAMES = frozenset({"cookie", "set_cookie", "cookies"})
PERSONAL_NAMES = {
    "email": "email",
    "phone": "phone",
    "mobile": "phone",
    "telephone": "phone",
    "msisdn": "phone",
    "ssn": "ssn",
    "iban": "iban",
    "card_number": "card",
    "cc_number": "card",
    "nino": "nino",
    "nir": "insee",
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=4096)
def normalize_key(key: str) -> str:
    """`X-Api-Key`, `apiKey`, `api.key` all become `x_api_key` / `api_key`."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", key).lower()).strip("_")


@lru_cache(maxsize=4096)
def classify_key(key: str) -> str | None:
    """'password' or 'secret' if the name marks a secret, 'weak' if only a random value would be."""
    segments = normalize_key(key).split("_")
    last = segments[-1]
    if last.endswith(PASSWORD_WORDS) or last in SHORT_PASSWORD_WORDS:
        return "password"
    if last.endswith(SECRET_SUFFIXES) or last in SECRET_WORDS or "".join(segments[-2:]) in SECRET_PAIRS:
        return "secret"
    if last.endswith("key") or last in WEAK_WORDS:
        return "weak"
    return None


@lru_cache(maxsize=4096)
def personal_kind(key: str) -> str | None:
    """The kind of personal data a field with this name holds (`email`, `customer_phone`), if any."""
    name = normalize_key(key)
    return (
        PERSONAL_NAMES.get(name)
        or PERSONAL_NAMES.get(name.rsplit("_", 1)[-1])
        or PERSONAL_NAMES.get("_".join(name.split("_")[-2:]))
    )


def is_secret_key(key: str) -> bool:
    """True if a field or parameter with this name holds a secret whatever its value."""
    return classify_key(key) in ("password", "secret")


def is_cookie_key(key: str) -> bool:
    """True for Cookie / Set-Cookie headers, whose whole value is secret."""
    return normalize_key(key) in COOKIE_NAMES


def is_aws_secret_key(key: str) -> bool:
    """True for names that hold an AWS secret access key."""
    name = normalize_key(key).replace("_", "")
    return "secretaccesskey" in name or "awssecret" in name

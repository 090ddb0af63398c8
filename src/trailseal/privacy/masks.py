"""What a masked value is replaced with."""

from __future__ import annotations

from trailseal.privacy.validators import digits_of

REDACTED = "[redacted]"


def mask(kind: str | None, value: str) -> str:
    """`****4242` for cards (PCI DSS allows the last four), `[kind]` otherwise, `[redacted]` for fields."""
    if kind == "card":
        return "****" + digits_of(value)[-4:]
    return f"[{kind}]" if kind else REDACTED

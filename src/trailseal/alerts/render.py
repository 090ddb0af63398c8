"""An alert as people read it: one summary line, a plain-text body, an HTML body.

Sinks for people (Slack, email, syslog) all say the same things in the same order: what fired,
how bad, where the evidence is sealed, and which sealed events it points at.
"""

from __future__ import annotations

import html
from typing import Any

MAX_EVENTS_SHOWN = 20


def attributes(alert: dict[str, Any]) -> dict[str, Any]:
    value = alert.get("attributes")
    return value if isinstance(value, dict) else {}


def level(alert: dict[str, Any]) -> str:
    """The rule's Sigma level (falls back to the event severity)."""
    return str(attributes(alert).get("level") or alert.get("severity") or "medium")


def title(alert: dict[str, Any]) -> str:
    return str(attributes(alert).get("title") or alert.get("reason") or "trailseal alert")


def summary(alert: dict[str, Any]) -> str:
    """`[HIGH] Brute force from one IP (rule <id>)` - one line, for subjects and chat previews."""
    rule = attributes(alert).get("rule_id")
    return f"[{level(alert).upper()}] {title(alert)}" + (f" (rule {rule})" if rule else "")


def sealed_at(alert: dict[str, Any]) -> str | None:
    """`trailseal#12`: where the alert itself is sealed, when known."""
    sealed = alert.get("sealed")
    if isinstance(sealed, dict) and sealed.get("index") is not None:
        return f"{sealed.get('log', 'trailseal')}#{sealed['index']}"
    return None


def evidence(alert: dict[str, Any]) -> list[str]:
    """`log#index` of the sealed events the alert points at (at most MAX_EVENTS_SHOWN, then `+N more`)."""
    refs = [f"{ref[0]}#{ref[1]}" for ref in attributes(alert).get("events") or []
            if isinstance(ref, (list, tuple)) and len(ref) == 2]
    if len(refs) > MAX_EVENTS_SHOWN:
        refs = refs[:MAX_EVENTS_SHOWN] + [f"+{len(refs) - MAX_EVENTS_SHOWN} more"]
    return refs


def facts(alert: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs shown in every human-readable form, in a fixed order."""
    attrs = attributes(alert)
    pairs = [
        ("Level", level(alert)),
        ("Rule", str(attrs.get("rule_id") or "")),
        ("Author", str(attrs.get("author") or "")),
        ("First event", str(attrs.get("first_time") or "")),
        ("Last event", str(attrs.get("last_time") or "")),
        ("Group", ", ".join(f"{k}={v}" for k, v in (attrs.get("group") or {}).items())),
        ("Tags", ", ".join(str(t) for t in attrs.get("tags") or [])),
        ("Alert sealed at", sealed_at(alert) or ""),
        ("Evidence", " ".join(evidence(alert))),
    ]
    return [(label, value) for label, value in pairs if value]


def plain_text(alert: dict[str, Any]) -> str:
    lines = [summary(alert), ""]
    width = max((len(label) for label, _ in facts(alert)), default=0)
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in facts(alert)]
    lines += ["", "Verify offline: trailseal prove <index> --log <log> and trailseal verify."]
    return "\n".join(lines) + "\n"


def html_body(alert: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th align=\"left\">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
                   for label, value in facts(alert))
    return (f"<html><body><h2>{html.escape(summary(alert))}</h2>"
            f"<table cellpadding=\"4\">{rows}</table>"
            "<p>Verify offline: <code>trailseal prove &lt;index&gt; --log &lt;log&gt;</code> and "
            "<code>trailseal verify</code>.</p></body></html>\n")

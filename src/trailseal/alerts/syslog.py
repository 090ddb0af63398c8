"""Syslog sink: each alert as one RFC 5424 message, over UDP (RFC 5426), TCP (RFC 6587
octet counting) or TLS (RFC 5425).

    <PRI>1 TIMESTAMP HOSTNAME trailseal PROCID alert [trailseal@32473 rule="..." level="high" ...] BOM summary

PRI = facility * 8 + severity (critical 1 alert, high 2 crit, medium 3 err, low 4 warning,
informational 6 info: the inverse of how trailseal reads syslog severities). The structured data carries the rule, level, author, where the alert is
sealed and how many events it points at, so a SIEM can route without parsing the text.
32473 is the private enterprise number reserved for examples (RFC 5612).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from trailseal.alerts import render
from trailseal.alerts.delivery import DeadLetter, RetryingSink

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
    **{f"local{n}": 16 + n for n in range(8)},
}
SEVERITY = {"critical": 1, "high": 2, "medium": 3, "low": 4, "informational": 6, "info": 6}
SD_ID = "trailseal@32473"
UDP_LIMIT = 2048  # RFC 5426: what every receiver should accept
STREAM_LIMIT = 65536
_ADDRESS = re.compile(r"^(udp|tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class SyslogTarget:
    transport: str  # udp | tcp | tls
    host: str
    port: int


def parse_address(address: str) -> SyslogTarget:
    """`udp://host:514`, `tcp://host:601` or `tls://host:6514`; a ValueError says what is wrong."""
    match = _ADDRESS.match(address.strip())
    if not match or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"syslog address {address!r} is not udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT")
    transport, host, port = match.groups()
    return SyslogTarget(transport, host.strip("[]"), int(port))


def facility_code(name: str) -> int:
    if name not in FACILITIES:
        raise ValueError(f"syslog facility {name!r} is not one of {', '.join(FACILITIES)}")
    return FACILITIES[name]


class SyslogSink(RetryingSink):
    name = "syslog"

    def __init__(self, target: SyslogTarget, facility: str = "authpriv", dead_letter: DeadLetter | None = None,
                 retry=None, ca_file: str | None = None, timeout: float = 5.0) -> None:
        super().__init__(dead_letter, retry)
        self.target, self.facility = target, facility_code(facility)
        self.ca_file, self.timeout = ca_file, timeout
        self.hostname = _header_token(socket.getfqdn() or socket.gethostname(), 255)

    def deliver(self, alert: dict[str, Any]) -> None:
        limit = UDP_LIMIT if self.target.transport == "udp" else STREAM_LIMIT
        message = rfc5424(alert, self.facility, self.hostname, limit)
        if self.target.transport == "udp":
            self._send_datagram(message)
        else:
            self._send_stream(b"%d %s" % (len(message), message))

    def _send_datagram(self, message: bytes) -> None:
        family = socket.AF_INET6 if ":" in self.target.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout)
            sock.sendto(message, (self.target.host, self.target.port))

    def _send_stream(self, frame: bytes) -> None:
        with socket.create_connection((self.target.host, self.target.port), timeout=self.timeout) as raw:
            if self.target.transport == "tls":
                context = ssl.create_default_context(cafile=self.ca_file)
                with context.wrap_socket(raw, server_hostname=self.target.host) as sock:
                    sock.sendall(frame)
            else:
                raw.sendall(frame)


def rfc5424(alert: dict[str, Any], facility: int, hostname: str, limit: int = STREAM_LIMIT) -> bytes:
    """One RFC 5424 message; the free text is cut (at a character boundary) to fit `limit` bytes."""
    priority = facility * 8 + SEVERITY.get(render.level(alert), 4)
    stamp = _header_token(str(alert.get("time") or "-"), 64)
    header = f"<{priority}>1 {stamp} {hostname} trailseal {os.getpid()} alert {_structured(alert)} "
    head = header.encode("utf-8") + b"\xef\xbb\xbf"
    text = render.summary(alert).encode("utf-8")
    room = max(0, limit - len(head))
    if len(text) > room:
        text = text[:room].decode("utf-8", "ignore").encode("utf-8")
    return head + text


def _structured(alert: dict[str, Any]) -> str:
    attrs = render.attributes(alert)
    sealed = alert.get("sealed") if isinstance(alert.get("sealed"), dict) else {}
    params = {
        "rule": attrs.get("rule_id"), "level": render.level(alert), "author": attrs.get("author"),
        "log": sealed.get("log"), "index": sealed.get("index"), "events": len(attrs.get("events") or []),
        "first": attrs.get("first_time"), "last": attrs.get("last_time"),
    }
    pairs = " ".join(f'{name}="{_escape(str(value))}"' for name, value in params.items() if value is not None)
    return f"[{SD_ID} {pairs}]"


def _escape(value: str) -> str:
    """RFC 5424 PARAM-VALUE: backslash before `"`, `\\` and `]`."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, `-` when empty."""
    token = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return token or "-"

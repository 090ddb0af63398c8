"""nginx and Apache access logs, common and combined (with a vhost or proxy-chain prefix).

    [vhost[:port] ]client[, proxy...] ident user [dd/Mon/yyyy:HH:MM:SS +zzzz] "request" status bytes
        ["referer" "user-agent"] [extra fields...]

Each line is one ``http.request`` event in category ``data_access``. Outcome: 401/403 failure,
5xx error, anything else success. The actor is the authenticated remote user, or ``anonymous``;
its ip is the rightmost address of the client list that is not in ``ctx['trusted_proxies']``
(CIDRs; with none configured, the peer that connected). A hostname in the client position
(HostnameLookups on) goes to ``attributes['client.address']`` instead of ``actor.ip``.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from functools import lru_cache
from typing import Any

from trailseal.formats import FormatError
from trailseal.formats._common import (
    MONTHS,
    bounded,
    client_ip,
    http_outcome,
    is_ip,
    lines,
    local_time,
    numeric_offset,
    sha256_hex,
    short,
    source,
    text,
)

FORMAT = "access_log"
_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_TAIL = (
    r" \[(?P<time>[^\]]{26})\] " + _QUOTED + r" (?P<status>\d{3}) (?P<bytes>\d+|-)"
    r"(?: " + _QUOTED + " " + _QUOTED + r")?(?P<rest>.*)\Z"
)
_SIMPLE = re.compile(r"(?P<prefix>[^ \"]+) (?P<ident>\S+) (?P<user>\S+)" + _TAIL, re.S)
_LINE = re.compile(r"(?P<prefix>.+?) (?P<ident>\S+) (?P<user>\S+)" + _TAIL, re.S)
_FAST_TAIL = (  # a plain "METHOD PATH [PROTOCOL]" (or "-") request and the fields after it
    r" (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]{26})\] "
    r'"(?:(?P<method>[A-Z][A-Z0-9_-]{0,31}) (?P<path>[^ "\\]+)(?: (?P<protocol>[^ "\\]+))?|-?)"'
    r" (?P<status>\d{3}) (?P<bytes>\d+|-)(?: " + _QUOTED + " " + _QUOTED + r")?(?P<rest>.*)\Z"
)
_FAST = re.compile(r"(?P<client>[^ \",]+)" + _FAST_TAIL, re.S)  # the common shape: one client
# a vhost or a proxy chain before ident (what _LINE's shortest prefix is, when it has no brackets)
_FAST_PREFIXED = re.compile(r'(?P<client>[^"\[\]]+?|"[^"\[\]]*"[^"\[\]]*?)' + _FAST_TAIL, re.S)
_EXTRA = re.compile(r"\s*(?:" + _QUOTED + r"|(\S+))")
_METHOD = re.compile(r"[A-Z][A-Z0-9_-]{0,31}\Z")
_TIME = re.compile(r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}:\d{2}:\d{2}) ([+-]\d{4})\Z")


def split(data: bytes) -> list[bytes]:
    """The lines of an access log file."""
    return lines(data)


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """One access-log line -> one http.request event."""
    line = text(raw).rstrip("\r\n")
    attributes: dict[str, Any] = {}
    fast = _FAST.match(line)
    prefixed = None if fast else _FAST_PREFIXED.match(line)
    if fast or prefixed:
        client, _ident, user, stamp, method, path, protocol, status, size, referer, agent, rest = (
            fast or prefixed
        ).groups()
        vhost, addresses = _client_part(client) if prefixed else (None, [client])
        http: dict[str, Any] = {"method": method, "path": path} if method else {}
        if protocol:
            attributes["network.protocol"] = protocol
    else:
        match = _SIMPLE.match(line) or _LINE.match(line)
        if not match:
            raise FormatError("not an access log line (common or combined format)")
        prefix, _ident, user, stamp, request, status, size, referer, agent, rest = match.groups()
        vhost, addresses = _client_part(prefix)
        http = _request(request, attributes)
    status_code = int(status)
    http["status"] = status_code
    if size != "-":
        http["bytes"] = int(size)
    address = client_ip(addresses, ctx.get("trusted_proxies") or ())
    actor = _actor(user, address, agent, attributes)
    if len(addresses) > 1:
        attributes["client.address_chain"] = addresses
    if vhost:
        attributes["server.address"] = vhost
    if referer and referer != "-":
        attributes["http.request.header.referer"] = referer
    extra = _extra_fields(rest) if rest and rest != ' "-"' else None  # nginx's usual empty forwarded-for
    if extra:
        attributes["access_log.extra"] = extra
    event = {
        "time": _time(stamp),
        "category": "data_access",
        "action": "http.request",
        "outcome": http_outcome(status_code),
        "actor": actor,
        "source": source(ctx, FORMAT, "gateway"),
        "request": http,
        "raw_hash": sha256_hex(raw),
    }
    if attributes:
        event["attributes"] = attributes
    return [bounded(event, raw)]


def _client_part(prefix: str) -> tuple[str | None, list[str]]:
    """(vhost, addresses) from what precedes ident: 'vhost client', 'a, b, c', '"a, b" c'."""
    if " " not in prefix and "," not in prefix and '"' not in prefix:
        return None, [prefix]
    cleaned = prefix.replace('"', " ").replace(",", " , ")
    tokens = cleaned.split()
    if "," not in tokens and len(tokens) == 2:
        return tokens[0], [tokens[1]]
    addresses = [t for t in tokens if t != ","]
    if not addresses:
        raise FormatError("access log line has no client address")
    return None, addresses


def _request(request: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """Method, path and protocol from the request line; an unparseable line goes to attributes."""
    if request in ("", "-"):
        return {}
    parts = request.split(" ")
    if 2 <= len(parts) <= 3 and _METHOD.match(parts[0]) and parts[1]:
        if len(parts) == 3:
            attributes["network.protocol"] = parts[2]
        return {"method": parts[0], "path": parts[1]}
    attributes["http.request_line"] = request
    return {}


def _actor(user: str, address: str | None, agent: str | None, attributes: dict[str, Any]) -> dict[str, Any]:
    """The remote user, or an anonymous actor, with ip and user agent."""
    if user != "-":
        actor: dict[str, Any] = {"id": short(user, "actor.id"), "type": "user"}
    else:
        actor = {"id": "anonymous", "type": "anonymous"}
    if address and is_ip(address):
        actor["ip"] = address
    elif address:
        attributes["client.address"] = address
    if agent and agent != "-":
        actor["user_agent"] = agent
    return actor


def _extra_fields(rest: str) -> list[str]:
    """Fields after the combined format (e.g. nginx's trailing "$http_x_forwarded_for"), '-' left out."""
    values = []
    for quoted, bare in _EXTRA.findall(rest):
        value = quoted or bare
        if value and value != "-":
            values.append(value)
    return values


@lru_cache(maxsize=4096)
def _time(stamp: str) -> str:
    """'26/Dec/2016:16:16:29 +0200' -> '2016-12-26T14:16:29.000000Z'."""
    match = _TIME.match(stamp)
    month = MONTHS.get(match.group(2)) if match else None
    offset = numeric_offset(match.group(5)) if match else None
    if not match or month is None or offset is None:
        raise FormatError(f"bad access log time [{stamp}]")
    day, _, year, clock, _ = match.groups()
    return local_time(int(year), month, int(day), clock, 0, timezone(timedelta(seconds=offset)), stamp)

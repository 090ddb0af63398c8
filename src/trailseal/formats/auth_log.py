"""Linux auth.log / secure: sshd, sudo, su, pam_unix sessions and the shadow-utils account tools.

Each line is ``Mmm dd HH:MM:SS host program[pid]: message`` (or an RFC 3339 timestamp); the year
comes from ``ctx['year']`` and the zone from ``ctx['default_tz']`` (defaults: this year, UTC).

Recognized messages (see docs/formats.md for the full table):

- sshd ``Accepted``/``Failed <method> for``, ``Invalid user``, max-auth-attempts -> ``user.login``
  (authentication, target the host); ``Did not receive identification string`` -> ``ssh.connect``
  failure; ``Disconnected``/``Connection closed``/``Received disconnect`` -> ``ssh.disconnect`` (session).
- sudo ``user : TTY=... ; PWD=... ; USER=... ; COMMAND=...`` -> ``privilege.sudo`` (authorization);
  a reason before ``TTY`` (``user NOT in sudoers``, ``3 incorrect password attempts``) makes it a failure.
- su (Debian, RHEL and BSD wordings) -> ``privilege.su``.
- pam_unix ``session opened/closed`` -> ``session.open``/``session.close``; ``authentication failure``
  -> ``user.authenticate`` failure; ``password changed`` -> ``account.password_change``.
- useradd/usermod/userdel/groupadd/groupdel/passwd -> ``account.*`` and ``group.*`` (category account).
  These tools do not log who ran them, so the actor is the tool itself (type system).

Decision for lines we do not recognize: a line whose syslog header parses is kept as an honest
``system`` event, action ``syslog.message``, outcome ``unknown``, with the program and message in
attributes: auth.log is a security log, and dropping (or bouncing) a line because we have no rule
for it would lose evidence. Nothing is claimed beyond "this program logged this". A line whose
header does not parse is rejected with FormatError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from hashlib import sha256
from typing import Any

from trailseal.formats._bsd import header_fields
from trailseal.formats._common import (
    SHORT_MAX,
    add_process_attributes,
    bounded,
    is_ip,
    lines,
    short,
    source,
    text,
)

FORMAT = "auth_log"
Fields = dict[str, Any]
Rule = tuple[re.Pattern[str], Callable[[re.Match[str], str], Fields]]


def split(data: bytes) -> list[bytes]:
    """The lines of an auth.log file."""
    return lines(data)


def parse(raw: bytes, **ctx: Any) -> list[dict[str, Any]]:
    """One auth.log line -> one event (interpreted, or a system syslog.message)."""
    time, _, host, program, pid, message, _ = header_fields(text(raw).rstrip("\r\n"), ctx)
    fields = interpret(program, message, host) or fallback(program)
    event = {
        "time": time,
        "source": source(ctx, FORMAT, "infra", program, host),
        "raw_hash": sha256(raw).hexdigest(),  # _common.sha256_hex
        **fields,
    }
    attributes = fields.get("attributes") or {}  # the rule's own fresh dict: extended, not copied
    attributes["message"] = message
    add_process_attributes(attributes, program, pid)
    event["attributes"] = attributes
    return [bounded(event, raw)]


def interpret(program: str | None, message: str, host: str | None = None) -> Fields | None:
    """Event fields for a recognized auth message (category, action, outcome, actor...), else None."""
    if not program:
        return None
    repeated = _REPEATED.match(message) if message.startswith("message repeated ") else None
    if repeated:
        fields = interpret(program, repeated.group(2), host)
        if fields:
            fields.setdefault("attributes", {})["syslog.repeat_count"] = int(repeated.group(1))
        return fields
    name = program.rsplit("/", 1)[-1] if "/" in program else program
    if message.startswith("pam_unix("):
        return _first(_PAM_RULES, message, name)
    rules = _RULES_BY_PROGRAM.get(name)
    if rules is None:
        return None
    fields = _first(rules.get(message.partition(" ")[0], rules[None]), message, name)
    if fields and fields.get("category") == "authentication" and host:
        fields.setdefault("target", {"type": "host", "name": host})
    return fields


def fallback(program: str | None) -> Fields:
    """The honest event for a message we have no rule for: system, syslog.message, outcome unknown."""
    return {
        "category": "system",
        "action": "syslog.message",
        "outcome": "unknown",
        "actor": {"id": short(program or "syslog", "actor.id"), "type": "system"},
    }


def _first(rules: list[Rule], message: str, program: str) -> Fields | None:
    """The fields of the first rule whose pattern matches (None if none does, or if it builds None)."""
    for pattern, build in rules:
        match = pattern.match(message)
        if match:
            return build(match, program)
    return None


_LEAD = re.compile(r"([A-Za-z][A-Za-z:']*) (?![*+?{])")


def _by_first_word(rules: list[Rule]) -> dict[str | None, list[Rule]]:
    """Rules by the first word of the messages they can match, in their order: a pattern that starts
    with a literal word and space is listed under that word only; [None] holds the rules for any word."""
    leads = [_LEAD.match(pattern.pattern) for pattern, _ in rules]
    index: dict[str | None, list[Rule]] = {
        word: [rule for rule, lead in zip(rules, leads, strict=True) if not lead or lead.group(1) == word]
        for word in {lead.group(1) for lead in leads if lead}
    }
    index[None] = [rule for rule, lead in zip(rules, leads, strict=True) if not lead]
    return index


def _user(name: str | None, ip: str | None = None) -> dict[str, Any]:
    if name:
        actor: dict[str, Any] = {
            "id": name if len(name) <= SHORT_MAX else short(name, "actor.id"),
            "type": "user",
        }
    else:
        actor = {"id": "anonymous", "type": "anonymous"}
    if ip and is_ip(ip):
        actor["ip"] = ip
    return actor


def _port(match: re.Match[str], attributes: Fields) -> Fields:
    try:
        port = match["port"]
    except IndexError:  # a pattern without a port group
        return attributes
    if port:
        attributes["client.port"] = int(port)
    return attributes


# --- sshd -------------------------------------------------------------------------------------
# In the rules' patterns an optional part is written (?:X|), not (?:X)?: the same matches and
# captures, and sre takes a branch in far fewer steps than a repeat.


def _ssh_accepted(m: re.Match[str], _: str) -> Fields:
    method, user, ip, key = m.group("method", "user", "ip", "key")
    attributes = _port(m, {"ssh.auth_method": method})
    if key:
        attributes["ssh.key"] = key
    return {
        "category": "authentication",
        "action": "user.login",
        "outcome": "success",
        "actor": _user(user, ip),
        "attributes": attributes,
    }


def _ssh_failed(m: re.Match[str], _: str) -> Fields:
    method, invalid, user, ip = m.group("method", "invalid", "user", "ip")
    return {
        "category": "authentication",
        "action": "user.login",
        "outcome": "failure",
        "reason": f"failed {method} for invalid user" if invalid else f"failed {method}",
        "actor": _user(user or "(empty)", ip),
        "attributes": _port(m, {"ssh.auth_method": method}),
    }


def _ssh_invalid_user(m: re.Match[str], _: str) -> Fields:
    return {
        "category": "authentication",
        "action": "user.login",
        "outcome": "failure",
        "reason": "invalid user",
        "actor": _user(m["user"] or "(empty)", m["ip"]),
        "attributes": _port(m, {}),
    }


def _ssh_max_attempts(m: re.Match[str], _: str) -> Fields:
    return {
        "category": "authentication",
        "action": "user.login",
        "outcome": "failure",
        "reason": "maximum authentication attempts exceeded",
        "actor": _user(m["user"], m["ip"]),
        "attributes": _port(m, {}),
    }


def _ssh_no_ident(m: re.Match[str], _: str) -> Fields:
    return {
        "category": "session",
        "action": "ssh.connect",
        "outcome": "failure",
        "reason": "did not receive identification string",
        "actor": _user(None, m["ip"]),
        "attributes": _port(m, {}),
    }


def _ssh_disconnect(m: re.Match[str], _: str) -> Fields:
    attributes = _port(m, {})
    groups = m.groupdict()
    if groups.get("preauth"):
        attributes["ssh.preauth"] = True
    if groups.get("text"):
        attributes["ssh.disconnect_reason"] = groups["text"]
    return {
        "category": "session",
        "action": "ssh.disconnect",
        "outcome": "success",
        "actor": _user(groups.get("user"), m["ip"]),
        "attributes": attributes,
    }


_SSHD: list[Rule] = [
    (
        re.compile(
            r"Accepted (?P<method>\S+) for (?P<user>.+?) from (?P<ip>\S+) port (?P<port>\d{1,5})"
            r"(?: \S+|)(?:: (?P<key>.*)|)\Z"
        ),
        _ssh_accepted,
    ),
    (
        re.compile(
            r"Failed (?P<method>\S+) for (?:(?P<invalid>invalid user )|)(?P<user>.*?) from (?P<ip>\S+)"
            r" port (?P<port>\d{1,5})"
        ),
        _ssh_failed,
    ),
    (
        re.compile(r"Invalid user (?P<user>.*?) from (?P<ip>\S+)(?: port (?P<port>\d{1,5})|)\s*\Z"),
        _ssh_invalid_user,
    ),
    (
        re.compile(
            r"error: maximum authentication attempts exceeded for (?:invalid user |)(?P<user>.+?)"
            r" from (?P<ip>\S+) port (?P<port>\d{1,5})"
        ),
        _ssh_max_attempts,
    ),
    (
        re.compile(
            r"Did not receive identification string from (?P<ip>\S+)(?: port (?P<port>\d{1,5})|)\s*\Z"
        ),
        _ssh_no_ident,
    ),
    (
        re.compile(
            r"(?:Disconnected from|Connection closed by)(?: (?:authenticating|invalid)|)"
            r"(?: user (?P<user>\S+)|) (?P<ip>\S+) port (?P<port>\d{1,5})(?:(?P<preauth> \[preauth\])|)\s*\Z"
        ),
        _ssh_disconnect,
    ),
    (
        re.compile(
            r"Received disconnect from (?P<ip>\S+?)(?: port (?P<port>\d{1,5})|):\d+: (?P<text>.*?)"
            r"(?:(?P<preauth> \[preauth\])|)\s*\Z"
        ),
        _ssh_disconnect,
    ),
]


# --- sudo and su ------------------------------------------------------------------------------

# '<user> : <rest>[COMMAND=<command>]': the match is the head; _sudo cuts rest and command (a lazy
# '(?P<rest>.*?)(?:COMMAND=(?P<command>.*))?\Z' would read the same, one character at a time).
_SUDO_LINE = re.compile(r"\s*(?P<user>\S+) : ")
# The usual line, '<user> : [reason ; ]TTY=.. ; PWD=.. ; USER=.. ; COMMAND=..', in one match: its values
# hold no space, ';' or '=' and the reason no ';' or '=' (nor a space at its ends), so _sudo reads it
# the same way.
_SUDO_USUAL = re.compile(
    _SUDO_LINE.pattern + r"(?:([^ ;=](?:[^;=]*[^ ;=]|)) ; |)"
    r"TTY=([^ ;=]++) ; PWD=([^ ;=]++) ; USER=([^ ;=]++) ; COMMAND=(.*)\Z",
    re.S,
)


def _sudo_usual(m: re.Match[str], _: str) -> Fields:
    user, reason, tty, pwd, target, command = m.groups()
    attributes = {"sudo.tty": tty, "sudo.pwd": pwd, "sudo.user": target, "sudo.command": command}
    return _sudo_fields(user, attributes, reason)


def _sudo(m: re.Match[str], _: str) -> Fields | None:
    attributes, reason = _sudo_parts(m.string[m.end() :])
    return _sudo_fields(m["user"], attributes, reason) if attributes else None


def _sudo_fields(user: str, attributes: Fields, reason: str | None) -> Fields:
    fields: Fields = {
        "category": "authorization",
        "action": "privilege.sudo",
        "outcome": "failure" if reason else "success",
        "actor": _user(user),
        "attributes": attributes,
    }
    if reason:
        fields["reason"] = reason
    if attributes.get("sudo.user"):
        fields["target"] = {"type": "user", "name": attributes["sudo.user"]}
    return fields


def _sudo_parts(body: str) -> tuple[Fields, str | None]:
    """The sudo.* attributes of '<rest>[COMMAND=<command>]' (KEY=value parts split by ' ; '), and the
    reason (the last part that is not KEY=value) if any."""
    cut = body.find("COMMAND=")
    rest, command = (body[:cut], body[cut + 8 :]) if cut >= 0 else (body, None)
    attributes: Fields = {}
    reason = None
    for part in rest.split(" ; "):
        part = part.strip(" ;")
        key, eq, value = part.partition("=")
        if eq and key.isupper():
            attributes[f"sudo.{key.lower()}"] = value
        elif part:
            reason = part
    if command is not None:
        attributes["sudo.command"] = command
    return attributes, reason


def _su(outcome: str) -> Callable[[re.Match[str], str], Fields]:
    def build(m: re.Match[str], _: str) -> Fields:
        fields: Fields = {
            "category": "authorization",
            "action": "privilege.su",
            "outcome": outcome,
            "actor": _user(m["user"]),
            "target": {"type": "user", "name": m["target"]},
        }
        if outcome == "failure":
            fields["reason"] = "su failed"
        if m.groupdict().get("tty"):
            fields["attributes"] = {"su.tty": m["tty"]}
        return fields

    return build


def _su_bsd(m: re.Match[str], program: str) -> Fields:
    return _su("success" if m["sign"] == "+" else "failure")(m, program)


_SU: list[Rule] = [
    (re.compile(r"FAILED SU \(to (?P<target>\S+)\) (?P<user>\S+) on (?P<tty>\S+)"), _su("failure")),
    (re.compile(r"\(to (?P<target>\S+)\) (?P<user>\S+) on (?P<tty>\S+)"), _su("success")),
    (re.compile(r"Successful su for (?P<target>\S+) by (?P<user>\S+)"), _su("success")),
    (re.compile(r"FAILED su for (?P<target>\S+) by (?P<user>\S+)"), _su("failure")),
    (re.compile(r"'su (?P<target>\S+)' failed for (?P<user>\S+) on (?P<tty>\S+)"), _su("failure")),
    (re.compile(r"(?P<sign>[+-]) (?P<tty>\S+) (?P<user>[^:\s]+):(?P<target>\S+)\s*\Z"), _su_bsd),
]


# --- account tools ----------------------------------------------------------------------------


def _account(
    action: str, target_type: str, name_group: str = "name"
) -> Callable[[re.Match[str], str], Fields]:
    plans: dict[re.Pattern[str], tuple[list[tuple[int, str, bool]], int | None]] = {}  # one per rule

    def build(m: re.Match[str], program: str) -> Fields:
        plan = plans.get(m.re)
        if plan is None:
            plan = plans[m.re] = _attribute_plan(m.re, target_type, name_group)
        columns, by_group = plan
        values = m.groups()
        attributes = {}
        for group, attribute, numeric in columns:
            value = values[group - 1]
            if value is not None:
                attributes[attribute] = int(value) if numeric else value
        by = values[by_group - 1] if by_group else None
        actor = _user(by) if by else {"id": program, "type": "system"}
        fields: Fields = {
            "category": "account",
            "action": action,
            "outcome": "success",
            "actor": actor,
            "target": {"type": target_type, "name": m[name_group]},
        }
        if attributes:
            fields["attributes"] = attributes
        return fields

    return build


def _attribute_plan(
    pattern: re.Pattern[str], target_type: str, name_group: str
) -> tuple[list[tuple[int, str, bool]], int | None]:
    """For an account rule: (group number, attribute, is a number) of every named group but the name
    and 'by' ('from_' -> '<type>.from', uid/gid as numbers), and the number of the 'by' group if any."""
    columns = [
        (group, f"{target_type}.{name.rstrip('_')}", name in ("uid", "gid"))
        for name, group in sorted(pattern.groupindex.items(), key=lambda item: item[1])
        if name not in (name_group, "by")
    ]
    return columns, pattern.groupindex.get("by")


_ACCOUNT: list[Rule] = [
    (
        re.compile(
            r"new user: name=(?P<name>[^,]+), UID=(?P<uid>\d{1,10}), GID=(?P<gid>\d{1,10}),"
            r" home=(?P<home>[^,]*),"
            r" shell=(?P<shell>[^,]*?)(?:, from=(?P<from_>\S+)|)\s*\Z"
        ),
        _account("account.create", "user"),
    ),
    (
        re.compile(r"new group: name=(?P<name>[^,]+), GID=(?P<gid>\d{1,10})"),
        _account("group.create", "group"),
    ),
    (
        re.compile(r"add '(?P<member>[^']+)' to group '(?P<name>[^']+)'"),
        _account("group.member_add", "group"),
    ),
    (
        re.compile(r"delete '(?P<member>[^']+)' from group '(?P<name>[^']+)'"),
        _account("group.member_remove", "group"),
    ),
    (re.compile(r"change user '(?P<name>[^']+)' password"), _account("account.password_change", "user")),
    (re.compile(r"change user '(?P<name>[^']+)' (?P<change>.+)"), _account("account.modify", "user")),
    (
        re.compile(r"(?P<change>lock|unlock) user '(?P<name>[^']+)' password"),
        _account("account.modify", "user"),
    ),
    (re.compile(r"delete user '(?P<name>[^']+)'"), _account("account.delete", "user")),
    (
        re.compile(r"removed group '(?P<name>[^']+)' owned by '(?P<owner>[^']+)'"),
        _account("group.delete", "group"),
    ),
    (re.compile(r"group '(?P<name>[^']+)' removed\s*\Z"), _account("group.delete", "group")),
    (
        re.compile(r"password for '(?P<name>[^']+)' changed by '(?P<by>[^']+)'"),
        _account("account.password_change", "user"),
    ),
]


# --- pam_unix ---------------------------------------------------------------------------------


def _pam_session(action: str) -> Callable[[re.Match[str], str], Fields]:
    def build(m: re.Match[str], _: str) -> Fields:
        by = m.groupdict().get("by")
        fields: Fields = {
            "category": "session",
            "action": action,
            "outcome": "success",
            "actor": _user(by or m["user"]),
            "target": {"type": "user", "name": m["user"]},
            "attributes": {"pam.service": m["service"]},
        }
        return fields

    return build


def _pam_auth_failure(m: re.Match[str], _: str) -> Fields:
    keys = dict(pair.split("=", 1) for pair in m["pairs"].split() if "=" in pair)
    user = keys.get("user") or keys.get("ruser") or keys.get("logname")
    rhost = keys.get("rhost")
    attributes: Fields = {"pam.service": m["service"]}
    attributes.update({f"pam.{k}": v for k, v in keys.items() if v and k not in ("user", "rhost")})
    if rhost and not is_ip(rhost):
        attributes["client.address"] = rhost
    return {
        "category": "authentication",
        "action": "user.authenticate",
        "outcome": "failure",
        "reason": "authentication failure",
        "actor": _user(user, rhost),
        "attributes": attributes,
    }


def _pam_password_changed(m: re.Match[str], _: str) -> Fields:
    return {
        "category": "account",
        "action": "account.password_change",
        "outcome": "success",
        "actor": _user(m["user"]),
        "target": {"type": "user", "name": m["user"]},
        "attributes": {"pam.service": m["service"]},
    }


def _pam_unknown_user(m: re.Match[str], _: str) -> Fields:
    return {
        "category": "authentication",
        "action": "user.authenticate",
        "outcome": "failure",
        "reason": "user unknown",
        "actor": _user(None),
        "attributes": {"pam.service": m["service"]},
    }


_PAM = r"pam_unix\((?P<service>[^:)]+):\w+\): "
_PAM_RULES: list[Rule] = [
    (
        re.compile(
            _PAM + r"session opened for user (?P<user>[^\s(]+)(?:\(uid=\d+\)|)"
            r"(?: by (?P<by>[^\s(]*)(?:\(uid=\d+\)|)|)"
        ),
        _pam_session("session.open"),
    ),
    (re.compile(_PAM + r"session closed for user (?P<user>[^\s(]+)"), _pam_session("session.close")),
    (re.compile(_PAM + r"authentication failure;(?P<pairs>.*)\Z"), _pam_auth_failure),
    (re.compile(_PAM + r"password changed for (?P<user>\S+)"), _pam_password_changed),
    (re.compile(_PAM + r"check pass; user unknown"), _pam_unknown_user),
]

_REPEATED = re.compile(r"message repeated (\d{1,9}) times?: \[ ?(.*?) ?\]\s*\Z", re.S)
_SSHD_INDEX = _by_first_word(_SSHD)
_ACCOUNT_INDEX = _by_first_word(_ACCOUNT)
_RULES_BY_PROGRAM: dict[str, dict[str | None, list[Rule]]] = {
    "sshd": _SSHD_INDEX,
    "sshd-session": _SSHD_INDEX,
    "sudo": _by_first_word([(_SUDO_USUAL, _sudo_usual), (_SUDO_LINE, _sudo)]),
    "su": _by_first_word(_SU),
    **{
        tool: _ACCOUNT_INDEX
        for tool in (
            "useradd",
            "usermod",
            "userdel",
            "groupadd",
            "groupmod",
            "groupdel",
            "passwd",
            "chpasswd",
            "gpasswd",
            "adduser",
            "deluser",
        )
    },
}

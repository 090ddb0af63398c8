from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.formats import FormatError, auth_log

from .cases import TESTDATA
from .helpers import parse_one

HEAD = "Mar  3 04:05:06 bastion "


def auth(message: str, **ctx):
    return parse_one("auth_log", HEAD + message, year=2024, **ctx)


@pytest.mark.parametrize(
    ("message", "action", "outcome", "actor", "reason"),
    [
        (
            "sshd[1]: Accepted publickey for ann from 192.0.2.4 port 5122 ssh2: ED25519 SHA256:abc",
            "user.login",
            "success",
            "ann",
            None,
        ),
        (
            "sshd[1]: Failed password for invalid user bob from 192.0.2.4 port 5122 ssh2",
            "user.login",
            "failure",
            "bob",
            "failed password for invalid user",
        ),
        (
            "sshd[1]: Invalid user admin from 192.0.2.4 port 40000",
            "user.login",
            "failure",
            "admin",
            "invalid user",
        ),
        (
            "sshd[1]: error: maximum authentication attempts exceeded for root from 192.0.2.4 port 1 ssh2"
            " [preauth]",
            "user.login",
            "failure",
            "root",
            "maximum authentication attempts exceeded",
        ),
        ("sshd[1]: Disconnected from user ann 192.0.2.4 port 5122", "ssh.disconnect", "success", "ann", None),
        (
            "sshd[1]: Connection closed by authenticating user root 192.0.2.4 port 22 [preauth]",
            "ssh.disconnect",
            "success",
            "root",
            None,
        ),
        (
            "sshd[1]: Received disconnect from 192.0.2.4 port 5122:11: disconnected by user",
            "ssh.disconnect",
            "success",
            "anonymous",
            None,
        ),
        (
            "sudo:      ann : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/ann ; USER=root ;"
            " COMMAND=/bin/sh",
            "privilege.sudo",
            "failure",
            "ann",
            "3 incorrect password attempts",
        ),
        ("su[9]: (to root) ann on pts/1", "privilege.su", "success", "ann", None),
        ("su[9]: FAILED SU (to root) ann on pts/1", "privilege.su", "failure", "ann", "su failed"),
        (
            "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by ann(uid=1000)",
            "session.open",
            "success",
            "ann",
            None,
        ),
        (
            "sshd[1]: pam_unix(sshd:session): session closed for user ann",
            "session.close",
            "success",
            "ann",
            None,
        ),
        (
            "sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
            "rhost=192.0.2.4  user=root",
            "user.authenticate",
            "failure",
            "root",
            "authentication failure",
        ),
        (
            "passwd[4]: pam_unix(passwd:chauthtok): password changed for ann",
            "account.password_change",
            "success",
            "ann",
            None,
        ),
        ("usermod[4]: add 'ann' to group 'wheel'", "group.member_add", "success", "usermod", None),
        ("userdel[4]: delete user 'bob'", "account.delete", "success", "userdel", None),
    ],
)
def test_recognized_messages(message, action, outcome, actor, reason):
    event = auth(message)
    assert (event["action"], event["outcome"], event["actor"]["id"]) == (action, outcome, actor)
    assert event.get("reason") == reason
    assert event["attributes"]["message"] == message.split(": ", 1)[1]


def test_ssh_login_targets_the_host_and_keeps_port_and_method():
    event = auth("sshd[77]: Failed password for root from 203.0.113.5 port 29160 ssh2")
    assert event["category"] == "authentication"
    assert event["target"] == {"type": "host", "name": "bastion"}
    assert event["actor"] == {"id": "root", "type": "user", "ip": "203.0.113.5"}
    assert event["attributes"]["client.port"] == 29160 and event["attributes"]["process.pid"] == 77


def test_sudo_command_keeps_semicolons_inside_the_command():
    event = auth('sudo: ann : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh -c "a ; b"')
    assert event["attributes"]["sudo.command"] == '/bin/sh -c "a ; b"'
    assert event["target"] == {"type": "user", "name": "root"} and event["category"] == "authorization"


def test_useradd_actor_is_the_tool_because_the_log_does_not_say_who():
    event = auth(
        "useradd[6995]: new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, shell=/sbin/nologin"
    )
    assert event["actor"] == {"id": "useradd", "type": "system"}
    assert event["category"] == "account" and event["target"] == {"type": "user", "name": "apache"}
    assert event["attributes"]["user.uid"] == 48


def test_rsyslog_repeat_wrapper_is_unwrapped_with_its_count():
    event = auth("sshd[1]: message repeated 5 times: [ Failed password for root from 192.0.2.4 port 22 ssh2]")
    assert event["outcome"] == "failure" and event["attributes"]["syslog.repeat_count"] == 5


def test_unrecognized_message_is_an_honest_system_event():
    event = auth("systemd-logind[1]: New seat seat0.")
    assert (event["category"], event["action"], event["outcome"]) == ("system", "syslog.message", "unknown")
    assert event["actor"] == {"id": "systemd-logind", "type": "system"}


def test_year_and_zone_come_from_ctx():
    event = parse_one(
        "auth_log",
        "Dec 31 23:30:00 h sshd[1]: Invalid user x from 192.0.2.1",
        year=2023,
        default_tz="America/New_York",
    )
    assert event["time"] == "2024-01-01T04:30:00.000000Z"


def test_rfc3339_timestamps_from_rsyslog_are_read():
    event = parse_one("auth_log", "2024-02-21T21:54:44.123456+01:00 h sshd[1]: Invalid user x from 192.0.2.1")
    assert event["time"] == "2024-02-21T20:54:44.123456Z"


@pytest.mark.parametrize("line", ["", "garbage", "Feb 30 10:00:00 h sshd[1]: x", "Foo  1 10:00:00 h sshd: x"])
def test_lines_without_a_syslog_header_are_rejected(line):
    with pytest.raises(FormatError):
        auth_log.parse(line.encode(), year=2024)


def test_year_defaults_to_the_current_utc_year():
    from datetime import UTC, datetime

    event = parse_one("auth_log", "Jan  2 03:04:05 h sshd[1]: Invalid user x from 192.0.2.1")
    assert event["time"].startswith(f"{datetime.now(UTC).year}-01-02T03:04:05")


# The rules of a program are looked up by the message's first word (auth_log._by_first_word): that must
# pick what trying every rule in order picks, for any message.
_ALL_RULES = {"sshd": auth_log._SSHD, "su": auth_log._SU, "useradd": auth_log._ACCOUNT,
              "sudo": [(auth_log._SUDO_LINE, auth_log._sudo)]}
_MESSAGES = [  # one of each shape the rules read, to be cut up and recombined
    "Accepted publickey for ann from 192.0.2.4 port 5122 ssh2: ED25519 SHA256:abc",
    "Failed password for invalid user bob from 192.0.2.4 port 5122 ssh2",
    "Invalid user admin from 192.0.2.4 port 40000",
    "error: maximum authentication attempts exceeded for root from 192.0.2.4 port 1 ssh2",
    "Disconnected from user ann 192.0.2.4 port 5122",
    "Connection closed by authenticating user root 192.0.2.4 port 22 [preauth]",
    "Received disconnect from 192.0.2.4 port 5122:11: disconnected by user",
    "Did not receive identification string from 192.0.2.4 port 22",
    "   ann : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/ann ; USER=root ; COMMAND=/bin/ls",
    "(to root) ann on pts/1",
    "FAILED SU (to root) ann on pts/1",
    "Successful su for root by ann",
    "add 'ann' to group 'wheel'",
    "delete user 'bob'",
    "new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, shell=/sbin/nologin",
    "new group: name=dev, GID=1001",
    "password changed for ann",
    "change user 'ann' password",
    "removed group 'dev' owned by 'ann'",
    "group added to /etc/group: name=dev, GID=1001",
]
_WORDS = sorted({word for message in _MESSAGES for word in message.split()}
                | {word for index in auth_log._RULES_BY_PROGRAM.values() for word in index if word})


@given(st.sampled_from(sorted(_ALL_RULES)), st.sampled_from(_MESSAGES), st.integers(0, 12),
       st.lists(st.sampled_from(_WORDS), max_size=3), st.sampled_from(["", " ", "\t", "x"]))
@settings(max_examples=600, deadline=None)
def test_the_first_word_index_picks_what_trying_every_rule_picks(program, message, cut, words, joint):
    """Whole messages of every shape, under every program, and their words swapped, cut or retyped."""
    parts = message.split(" ")
    message = joint.join([*words, *parts[cut:]]) if words else " ".join(parts[cut:]) if cut else message
    indexed = auth_log._RULES_BY_PROGRAM[program]
    chosen = indexed.get(message.partition(" ")[0], indexed[None])
    assert auth_log._first(chosen, message, program) == auth_log._first(_ALL_RULES[program], message, program)


def test_the_first_word_index_agrees_on_every_sample_line():
    samples = [line for line in (TESTDATA / "logs" / "linux_auth_sshd_sudo.log").read_text("utf-8", "replace").splitlines() if line]
    checked = 0
    for line in samples:
        program, _, message = line.partition("]: ") if "]: " in line else line.partition(": ")
        name = program.rsplit(" ", 1)[-1].split("[")[0]
        if name in _ALL_RULES and not message.startswith("pam_unix("):
            indexed = auth_log._RULES_BY_PROGRAM[name]
            chosen = indexed.get(message.partition(" ")[0], indexed[None])
            assert auth_log._first(chosen, message, name) == auth_log._first(_ALL_RULES[name], message, name)
            checked += 1
    assert checked >= 5  # the sshd and sudo lines of the sample (its pam_unix lines take another path)

from __future__ import annotations

import pytest

from trailseal.formats import FormatError, syslog

from .helpers import parse_one

RFC5424 = '<165>1 2003-10-11T22:14:15.003Z host app 42 ID47 [a@1 x="1" y="q\\"\\]\\\\z"][b@1 x="2" x="3"] msg'


def test_rfc5424_fields_structured_data_and_severity():
    event = parse_one("syslog", RFC5424)
    assert event["time"] == "2003-10-11T22:14:15.003000Z"
    assert event["severity"] == "info"
    assert event["source"] == {"component": "app", "kind": "infra", "format": "syslog", "host": "host"}
    attributes = event["attributes"]
    assert attributes["syslog.structured_data"] == {
        "a@1": {"x": "1", "y": 'q"]\\z'},
        "b@1": {"x": ["2", "3"]},
    }
    assert attributes["message"] == "msg" and attributes["syslog.msgid"] == "ID47"
    assert attributes["syslog.facility"] == "local4" and attributes["process.pid"] == 42


@pytest.mark.parametrize(
    ("pri", "severity"),
    [
        (0, "critical"),
        (1, "critical"),
        (2, "high"),
        (3, "medium"),
        (4, "low"),
        (5, "info"),
        (6, "info"),
        (7, "info"),
        (191, "info"),
    ],
)
def test_severity_from_pri(pri, severity):
    assert parse_one("syslog", f"<{pri}>1 2003-10-11T22:14:15Z h a - - - m")["severity"] == severity


def test_auth_facility_messages_use_the_auth_rules():
    event = parse_one(
        "syslog",
        "<38>1 2024-01-01T00:00:00Z h sshd 7 - - Failed password for root from 192.0.2.1 port 22 ssh2",
    )
    assert (event["action"], event["outcome"], event["source"]["format"]) == (
        "user.login",
        "failure",
        "syslog",
    )


def test_nil_timestamp_takes_our_clock_and_says_so():
    event = parse_one("syslog", "<13>1 - h a - - - m")
    assert event["attributes"]["syslog.time_missing"] is True


def test_rfc3164_with_year_and_zone_in_the_line():
    event = parse_one("syslog", "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: hi")
    assert event["time"] == "1987-08-24T11:34:00.000000Z"
    assert event["source"]["host"] == "mymachine" and event["attributes"]["process.pid"] == 10


def test_rfc3164_without_tag_and_last_message_repeated():
    event = parse_one("syslog", "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", year=2020)
    assert event["attributes"]["message"] == "Use the BFG!" and "process.name" not in event["attributes"]
    repeat = parse_one("syslog", "Apr 4 03:39:57 --- last message repeated 3 times ---", year=2020)
    assert repeat["action"] == "syslog.repeated" and repeat["attributes"]["syslog.repeat_count"] == 3


def test_continuation_lines_join_the_record_before_them():
    assert syslog.split(b"Jan  1 00:00:00 h a: one\n\tmore\n  and more\nJan  1 00:00:01 h a: two\n") == [
        b"Jan  1 00:00:00 h a: one\n\tmore\n  and more",
        b"Jan  1 00:00:01 h a: two",
    ]


def test_octet_counting_returns_frames_and_keeps_the_incomplete_rest():
    frames, rest = syslog.split_octet_counted(b"3 abc5 hello4 wx")
    assert frames == [b"abc", b"hello"] and rest == b"4 wx"
    assert syslog.split_octet_counted(b"12") == ([], b"12")
    assert syslog.split_octet_counted(b"") == ([], b"")


@pytest.mark.parametrize("buffer", [b"x3 abc", b"03 abc", b" 3 abc", b"3x abc", b"12345678901 a", b"-1 a"])
def test_octet_counting_rejects_bad_lengths(buffer):
    with pytest.raises(FormatError, match="octet count"):
        syslog.split_octet_counted(buffer)


def test_octet_counting_enforces_the_frame_limit():
    with pytest.raises(FormatError, match="exceeds"):
        syslog.split_octet_counted(b"300 " + b"x" * 300, max_length=256)


def test_lf_framing_strips_cr_and_keeps_the_tail():
    assert syslog.split_lf(b"a\r\n\nb\nc") == ([b"a", b"b"], b"c")
    assert syslog.split_lf(b"partial") == ([], b"partial")


@pytest.mark.parametrize(
    "line",
    [
        "<999>1 2003-10-11T22:14:15Z h a - - - m",
        "<13>2 2003-10-11T22:14:15Z h a - - - m",
        '<13>1 2003-10-11T22:14:15Z h a - - [a@1 x="1" m',
        "<13>1 2003-10-11T22:14:15Z h a - - [a@1 x=1] m",
        "<13>1 2003-10-11T22:14:15Z h a - - x m",
        "<13>1 2003-13-11T22:14:15Z h a - - - m",
        "hello",
    ],
)
def test_malformed_messages_are_rejected(line):
    with pytest.raises(FormatError):
        syslog.parse(line.encode())

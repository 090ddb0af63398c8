from __future__ import annotations

import pytest

from trailseal.formats import FormatError, access_log

from .helpers import parse_one

COMBINED = (
    '203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "POST /login?next=/ HTTP/1.1" {status} 2326 '
    '"https://example.com/" "curl/8.0"'
)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "success"), (404, "success"), (401, "failure"), (403, "failure"), (500, "error"), (503, "error")],
)
def test_status_decides_outcome(status, outcome):
    assert parse_one("access_log", COMBINED.format(status=status))["outcome"] == outcome


def test_combined_line_maps_user_request_and_referer():
    event = parse_one("access_log", COMBINED.format(status=200), component="web-1")
    assert event["time"] == "2000-10-10T20:55:36.000000Z"
    assert (event["category"], event["action"]) == ("data_access", "http.request")
    assert event["actor"] == {"id": "alice", "type": "user", "ip": "203.0.113.9", "user_agent": "curl/8.0"}
    assert event["request"] == {"method": "POST", "path": "/login?next=/", "status": 200, "bytes": 2326}
    assert event["attributes"]["http.request.header.referer"] == "https://example.com/"
    assert event["source"] == {"component": "web-1", "kind": "gateway", "format": "access_log"}
    assert "id" not in event


def test_proxy_chain_picks_rightmost_untrusted_address():
    line = '198.51.100.7, 10.0.0.5, 127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] "GET / HTTP/1.1" 200 5 "-" "-"'
    assert parse_one("access_log", line)["actor"]["ip"] == "127.0.0.1"
    trusted = parse_one("access_log", line, trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"])
    assert trusted["actor"]["ip"] == "198.51.100.7"
    assert trusted["attributes"]["client.address_chain"] == ["198.51.100.7", "10.0.0.5", "127.0.0.1"]


def test_vhost_prefix_and_hostname_client():
    vhost = parse_one(
        "access_log", 'shop.example 192.0.2.1 - - [04/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 1'
    )
    assert vhost["attributes"]["server.address"] == "shop.example"
    assert vhost["actor"]["ip"] == "192.0.2.1"
    host = parse_one("access_log", 'monitor - - [29/May/2017:19:02:48 +0000] "GET /s HTTP/1.1" 200 6')
    assert "ip" not in host["actor"] and host["attributes"]["client.address"] == "monitor"


def test_garbage_request_line_is_kept_not_invented():
    event = parse_one(
        "access_log", '192.0.2.1 - - [04/Jul/2019:09:20:46 +0200] "\\x16\\x03\\x01" 400 0 "-" "-"'
    )
    assert "method" not in event["request"]
    assert event["attributes"]["http.request_line"] == "\\x16\\x03\\x01"


def test_escaped_quote_inside_request_and_agent():
    line = '192.0.2.1 - - [04/Jul/2019:09:20:46 +0200] "GET /a\\"b HTTP/1.1" 200 1 "-" "x \\"y\\""'
    event = parse_one("access_log", line)
    assert event["request"]["path"] == '/a\\"b' and event["actor"]["user_agent"] == 'x \\"y\\"'


def test_non_utf8_bytes_are_escaped_not_rejected():
    raw = b'192.0.2.1 - b\xe9a [04/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 1'
    assert parse_one("access_log", raw)["actor"]["id"] == "b\\xe9a"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "hello world",
        '192.0.2.1 - - [32/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 1',
        '192.0.2.1 - - [04/Jux/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 1',
        '192.0.2.1 - - [04/Jul/1969:09:20:46 +0000] "GET / HTTP/1.1" 200 1',
    ],
)
def test_unparseable_lines_raise_format_error(line):
    with pytest.raises(FormatError):
        access_log.parse(line.encode())


def test_fields_after_combined_are_kept_and_dashes_dropped():
    line = (
        '192.0.2.1 - - [04/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 1 "-" "ua" "198.51.100.4" "-" 0.003'
    )
    assert parse_one("access_log", line)["attributes"]["access_log.extra"] == ["198.51.100.4", "0.003"]

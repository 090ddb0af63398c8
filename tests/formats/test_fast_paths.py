"""The parsers' fast paths (a regex for the common shape) agree with their general paths on any input."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailseal.formats import FormatError, access_log, syslog

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SD_PIECES = st.sampled_from(["[", "]", " ", "=", '"', "\\", "a", "id@1", "x", "\n", "-", ' a="', '"]', '\\"'])
REQUESTS = st.sampled_from(
    ["GET / HTTP/1.1", "POST /a?b=1", "GET /a b c", "-", "", 'GET /\\"x HTTP/1.0', "get /"]
)
CLIENTS = st.sampled_from(["10.0.0.1", "::1", "a, b", "vhost 10.0.0.2", '"1.1.1.1, 2.2.2.2" 3.3.3.3', "host"])


def scanned(line: str) -> Any:
    try:
        return syslog._scanned_data(line, 0)
    except FormatError as exc:
        return exc.reason


@FUZZ
@given(st.lists(SD_PIECES, max_size=12).map("".join))
def test_structured_data_regex_agrees_with_the_scanner(line: str):
    fast = syslog._well_formed_data(line, 0)
    assert fast is None or fast == scanned(line)


def test_structured_data_regex_takes_the_common_shape():
    line = '[a@1 x="1" y="q\\"\\]\\\\z"][b@1 x="2" x="3"] msg'
    assert syslog._well_formed_data(line, 0) == (
        {"a@1": {"x": "1", "y": 'q"]\\z'}, "b@1": {"x": ["2", "3"]}},
        line.index(" msg"),
    )
    assert syslog._well_formed_data('[a@1 x="1"][a@1 y="2"]', 0) is None  # repeated SD-ID: scanner says why


def general_access_log(raw: bytes) -> Any:
    """access_log.parse with its fast regex disabled."""
    fast, access_log._FAST = access_log._FAST, access_log.re.compile(r"(?!)")
    try:
        return access_log.parse(raw)
    except FormatError as exc:
        return exc.reason
    finally:
        access_log._FAST = fast


@FUZZ
@given(CLIENTS, REQUESTS, st.sampled_from(["", ' "-" "curl/8"', ' "https://r/" "ua" "1.2.3.4"', " x"]))
def test_access_log_fast_path_agrees_with_the_general_one(client: str, request: str, tail: str):
    raw = f'{client} - bob [10/Oct/2000:13:55:36 -0700] "{request}" 401 2326{tail}'.encode()
    try:
        fast: Any = access_log.parse(raw)
    except FormatError as exc:
        fast = exc.reason
    assert fast == general_access_log(raw)


def test_access_log_fast_path_takes_the_common_shape():
    line = '192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 5 "-" "curl/8"'
    assert access_log._FAST.match(line)
    assert access_log.parse(line.encode())[0]["request"] == {
        "method": "GET",
        "path": "/a",
        "status": 200,
        "bytes": 5,
    }

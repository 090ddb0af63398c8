"""The parsers' fast paths (a regex for the common shape) agree with their general paths on any input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.formats.cases import LOGS
from trailseal.formats import FormatError, access_log, auth_log, otlp, syslog

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SD_PIECES = st.sampled_from(["[", "]", " ", "=", '"', "\\", "a", "id@1", "x", "\n", "-", ' a="', '"]', '\\"'])
REQUESTS = st.sampled_from(
    ["GET / HTTP/1.1", "POST /a?b=1", "GET /a b c", "-", "", 'GET /\\"x HTTP/1.0', "get /"]
)
CLIENTS = st.sampled_from(["10.0.0.1", "::1", "a, b", "vhost 10.0.0.2", '"1.1.1.1, 2.2.2.2" 3.3.3.3', "host"])
CLIENT_PIECES = st.sampled_from(["10.0.0.1", "a", ",", " ", '"', "[", "]", "-", " - ", "x]", "[1"])


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
    """access_log.parse with its fast regexes disabled."""
    fast, prefixed = access_log._FAST, access_log._FAST_PREFIXED
    access_log._FAST = access_log._FAST_PREFIXED = access_log.re.compile(r"(?!)")
    try:
        return access_log.parse(raw)
    except FormatError as exc:
        return exc.reason
    finally:
        access_log._FAST, access_log._FAST_PREFIXED = fast, prefixed


def parsed_or_reason(raw: bytes) -> Any:
    """access_log.parse(raw) as it is (fast path or not), or the reason it refuses the line."""
    try:
        return access_log.parse(raw)
    except FormatError as exc:
        return exc.reason


@FUZZ
@given(CLIENTS, REQUESTS, st.sampled_from(["", ' "-" "curl/8"', ' "https://r/" "ua" "1.2.3.4"', " x"]))
def test_access_log_fast_path_agrees_with_the_general_one(client: str, request: str, tail: str):
    raw = f'{client} - bob [10/Oct/2000:13:55:36 -0700] "{request}" 401 2326{tail}'.encode()
    assert parsed_or_reason(raw) == general_access_log(raw)


@FUZZ
@given(st.lists(CLIENT_PIECES, min_size=1, max_size=8).map("".join), REQUESTS)
def test_access_log_prefixed_fast_path_agrees_with_the_general_one(prefix: str, request: str):
    raw = f'{prefix} - - [10/Oct/2000:13:55:36 -0700] "{request}" 200 5 "-" "ua"'.encode()
    assert parsed_or_reason(raw) == general_access_log(raw)


def test_access_log_prefixed_fast_path_takes_a_vhost_and_a_proxy_chain():
    vhost = 'vhost.example 192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 5'
    chain = '"10.0.0.2, 10.0.0.1" 192.0.2.9 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 5'
    assert access_log._FAST_PREFIXED.match(vhost) and access_log._FAST_PREFIXED.match(chain)
    (event,) = access_log.parse(vhost.encode())
    assert event["attributes"]["server.address"] == "vhost.example"
    assert event["actor"]["ip"] == "192.0.2.1"
    (event,) = access_log.parse(chain.encode())
    assert event["attributes"]["client.address_chain"] == ["10.0.0.2", "10.0.0.1", "192.0.2.9"]


def test_access_log_fast_path_takes_the_common_shape():
    line = '192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 5 "-" "curl/8"'
    assert access_log._FAST.match(line)
    assert access_log.parse(line.encode())[0]["request"] == {
        "method": "GET",
        "path": "/a",
        "status": 200,
        "bytes": 5,
    }


# --- OTLP/JSON: the typed decoding agrees with the generic one on well- and ill-formed requests ----

JUNK = st.sampled_from([None, 0, -1, 2**64, "x", "", True, [], {}, {"a": None}])


def mostly(good: Any) -> Any:
    """The good strategy, and now and then a value of the wrong type."""
    wrong = st.sampled_from([False] * 6 + [True] + [False] * 6)  # True, the junk, sits mid-list
    return st.builds(lambda value, junk, use_junk: junk if use_junk else value, good, JUNK, wrong)


SCALARS = st.one_of(
    st.builds(lambda v: {"stringValue": v}, mostly(st.text(max_size=4))),
    st.builds(lambda v: {"boolValue": v}, mostly(st.booleans())),
    st.builds(
        lambda v: {"intValue": v},
        mostly(st.integers(-(2**70), 2**70) | st.sampled_from(["12", "-3", "x", "", "9" * 25, "1.5"])),
    ),
    st.builds(
        lambda v: {"doubleValue": v},
        mostly(st.floats(allow_nan=False, allow_infinity=False) | st.just(10**400)),
    ),
    st.builds(lambda v: {"bytesValue": v}, mostly(st.text(max_size=4))),
    st.builds(lambda a, b: {**a, **b}, st.just({"stringValue": "s"}), st.just({"intValue": "x"})),
    JUNK,
)
KEYS = mostly(st.sampled_from(["a", "user.id", "http.request.method", "trailseal.action", "event.name"]))


def key_values(values: Any) -> Any:
    pair = st.fixed_dictionaries({"key": KEYS}, optional={"value": values})
    return mostly(st.lists(pair, max_size=3))


ANY_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.builds(lambda v: {"arrayValue": {"values": v}}, mostly(st.lists(inner, max_size=3)))
        | st.builds(lambda v: {"kvlistValue": {"values": v}}, key_values(inner))
        | st.builds(lambda v: {"arrayValue": v}, JUNK)
    ),
    max_leaves=6,
)
NANOS = mostly(st.sampled_from(["1700000000123456789", 1700000000123456789, "x", "-5", 0]))
HEX = mostly(st.sampled_from(["5B8EFFF798038103D269B633813FC60C", "EEE19B7EC3C1B174", "", "zz"]))
RECORDS = mostly(
    st.fixed_dictionaries(
        {"timeUnixNano": NANOS},
        optional={
            "observed_time_unix_nano": NANOS,
            "severityNumber": mostly(st.integers(-2, 30)),
            "severityText": mostly(st.text(max_size=3)),
            "body": ANY_VALUES,
            "attributes": key_values(ANY_VALUES),
            "traceId": HEX,
            "span_id": HEX,
            "eventName": mostly(st.sampled_from(["user.login", "Bad Name!", ""])),
        },
    )
)
SCOPES = st.fixed_dictionaries(
    {}, optional={"name": mostly(st.text(max_size=3)), "attributes": key_values(ANY_VALUES)}
)
SCOPE_LOGS = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "scope": mostly(SCOPES),
            "logRecords": mostly(st.lists(RECORDS, min_size=1, max_size=3)),
            "log_records": st.lists(RECORDS, max_size=2),
        },
    )
)
RESOURCE_LOGS = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "resource": mostly(st.fixed_dictionaries({}, optional={"attributes": key_values(ANY_VALUES)})),
            "scopeLogs": mostly(st.lists(SCOPE_LOGS, min_size=1, max_size=2)),
            "scope_logs": st.lists(SCOPE_LOGS, max_size=1),
        },
    )
)
REQUESTS_OTLP = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "resourceLogs": mostly(st.lists(RESOURCE_LOGS, min_size=1, max_size=2)),
            "resource_logs": st.lists(RESOURCE_LOGS, max_size=1),
        },
    )
)


def otlp_outcome(raw: bytes) -> Any:
    try:
        return otlp.parse_batch(raw)
    except FormatError as exc:
        return exc.reason


def general_otlp(raw: bytes) -> Any:
    """otlp.parse_batch with its typed decoding disabled."""
    typed, otlp._typed_records = otlp._typed_records, lambda body: None
    try:
        return otlp_outcome(raw)
    finally:
        otlp._typed_records = typed


@FUZZ
@given(REQUESTS_OTLP)
def test_otlp_typed_decoding_agrees_with_the_generic_one(request: Any):
    raw = json.dumps(request).encode()
    assert otlp_outcome(raw) == general_otlp(raw)


def test_otlp_typed_decoding_takes_the_common_shape():
    raw = (LOGS / "otlp_logs_request_example.json").read_bytes()
    records = otlp._typed_records(raw)
    assert records is not None and len(records) == 1
    assert records[0][2]["attributes"]["map.attribute"] == {"some.map.key": "some value"}
    assert otlp._typed_records(b'{"resourceLogs": [{"resource": {"attributes": [{"key": 1}]}}]}') is None


def test_a_timestamp_with_digits_that_are_not_ascii_is_refused_by_the_parser():
    """`\\d` also matches '\u0661' (Arabic-Indic one): such a stamp used to pass the fast path and come
    out with those digits, for the event validation to refuse later. The parser names it now."""
    from trailseal.formats._common import rfc3339

    for stamp in (
        "2003-08-24T05:14:15.\u0661\u0662Z",
        "2003-08-24T05:14:\u0661\u0665Z",
        "\u0662003-08-24T05:14:15Z",
    ):
        with pytest.raises(FormatError, match="RFC 3339"):
            rfc3339(stamp)
    assert rfc3339("2003-08-24T05:14:15.12Z") == "2003-08-24T05:14:15.120000Z"
    with pytest.raises(FormatError):
        syslog.parse("<34>1 2003-08-24T05:14:15.\u0661\u0662Z host app - - - hello".encode())


# --- BSD syslog header and sudo: the one-match readings agree with the step-by-step ones ------------


def one_of(*choices: str) -> Any:
    return st.sampled_from(choices)


# A BSD line of well-formed parts and damaged ones: [<PRI>]STAMP[ TZ YEAR] HOST TAG[PID]: MSG.
BSD_LINES = st.tuples(
    one_of("", "<34>", "<192>", "<7", "<0034>"),
    one_of(
        "Oct 11 22:14:15",
        "Feb  5 01:02:03",
        "Oct 11 22:14:15.003",
        "Oct 11 22:14:15.",
        "Foo 11 22:14:15",
        "Oct 32 22:14:15",
        "2003-10-11T22:14:15.003Z",
        "2003-10-11T22:14:15-07:00",
        "2003-10-11T22:14:15",
        "Oct 11 22:14:1\u0661",
        "",
    ),
    one_of("", " CST 1987", " UTC 2024", " XY 12345", " CST 1987x"),
    one_of(" ", "  ", "\t", ""),
    one_of("host", "---", "10.0.0.1", "h\u00e9", ""),
    one_of(" ", "", "\t", "  "),
    one_of("su", "sshd", "a/b", "x" * 65, "su:", "", "CST", "1987", "--- last message repeated 3 times ---"),
    one_of("[42]", "[]", "[4 2]", "[" + "9" * 33 + "]", "[42", "42]", ""),
    one_of(": ", ":", " ", "", ":  "),
    one_of("msg", "", " ", "a\nb", "x: y", "[1]: z"),
)


def header_or_reason(read: Any, line: str) -> Any:
    try:
        return read(line, {"year": 2003})
    except FormatError as exc:
        return exc.reason


@FUZZ
@given(BSD_LINES.map("".join))
def test_bsd_header_one_match_agrees_with_the_two_steps(line: str):
    from trailseal.formats import _bsd

    assert header_or_reason(_bsd.header_fields, line) == header_or_reason(_bsd._two_step, line)


def test_bsd_header_one_match_takes_the_common_shapes():
    from trailseal.formats import _bsd

    for line in (
        "<34>Oct 11 22:14:15 host su[1]: m",
        "Oct  5 22:14:15.003 CST 1987 host su: m",
        "Oct 11 22:14:15 h",
    ):
        assert _bsd._LINE.match(line)
        assert _bsd.header_fields(line, {"year": 2003}) == _bsd._two_step(line, {"year": 2003})


# A sudo message of well-formed parts and damaged ones: USER : [REASON ; ]TTY=.. ; PWD=.. ; USER=.. ; COMMAND=..
SUDO_MESSAGES = st.tuples(
    one_of("", "  ", "\t"),
    one_of("ann", "a b", ""),
    one_of(" : ", " : ", ": "),
    one_of("", "user NOT in sudoers ; ", " x ; ", "x  ; ", "x ;  ", "a=b ; ", "a;b ; ", "\tx ; ", "A ; B ; "),
    one_of("TTY=pts/0", "TTY=", "TTY=a;", "TTY=;a", "TTY= a", "TTY=a=b", "TTY=a\tb", "tty=x", "TTY=a b"),
    one_of(" ; ", " ; ", ";", " ;  ", "  ; "),
    one_of("PWD=/home/ann", "PWD=/a b", "PWD=a;", "PWD=COMMAND=x"),
    one_of(" ; ", " ;"),
    one_of("USER=root", "USER=", "USER=r;", "USER=;"),
    one_of(" ; ", " ;", "", " ; ENV=A=B ; "),
    one_of("COMMAND=/bin/ls", "COMMAND=", "COMMAND=a ; b", "", "COMMAND=x\ny"),
)


def sudo_fields(rule: Any, message: str) -> Any:
    return auth_log._first([rule], message, "sudo")


@settings(FUZZ, max_examples=3000)
@given(SUDO_MESSAGES.map("".join))
def test_sudo_one_match_agrees_with_the_general_reading(message: str):
    usual = sudo_fields((auth_log._SUDO_USUAL, auth_log._sudo_usual), message)
    assert usual is None or usual == sudo_fields((auth_log._SUDO_LINE, auth_log._sudo), message)


def test_sudo_one_match_takes_the_common_shapes():
    for message in (
        "ann : TTY=pts/0 ; PWD=/home/ann ; USER=root ; COMMAND=/bin/sh -c a ; b",
        "   ann : user NOT in sudoers ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
    ):
        assert auth_log._SUDO_USUAL.match(message)
        assert sudo_fields((auth_log._SUDO_USUAL, auth_log._sudo_usual), message) == sudo_fields(
            (auth_log._SUDO_LINE, auth_log._sudo), message
        )

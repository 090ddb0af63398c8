"""Sigma value modifiers, wildcards, nulls, keywords and conditions, one behaviour per case."""

from __future__ import annotations

import base64

import pytest
from sigma.collection import SigmaCollection

from tests.detect.conftest import event, rule_yaml
from trailseal.detect import compile_rule


def predicate(detection: str):
    (rule,) = SigmaCollection.from_yaml(rule_yaml(detection))
    return compile_rule(rule)


def attrs(**values) -> dict:
    return event(attributes=values)


B64 = base64.b64encode(b"IEX (New-Object Net.WebClient)").decode()

CASES = [
    # plain equality is case-insensitive; lists are OR
    ("sel:\n  attributes.v: Admin\ncondition: sel", {"v": "aDMIN"}, True),
    ("sel:\n  attributes.v: Admin\ncondition: sel", {"v": "Admin2"}, False),
    ("sel:\n  attributes.v: [a, b]\ncondition: sel", {"v": "B"}, True),
    ("sel:\n  attributes.v: [a, b]\ncondition: sel", {"v": "c"}, False),
    # |cased
    ("sel:\n  attributes.v|cased: Admin\ncondition: sel", {"v": "Admin"}, True),
    ("sel:\n  attributes.v|cased: Admin\ncondition: sel", {"v": "admin"}, False),
    # contains / startswith / endswith
    ("sel:\n  attributes.v|contains: DROP\ncondition: sel", {"v": "x; drop table"}, True),
    ("sel:\n  attributes.v|contains: DROP\ncondition: sel", {"v": "dro p"}, False),
    ("sel:\n  attributes.v|startswith: /admin\ncondition: sel", {"v": "/ADMIN/users"}, True),
    ("sel:\n  attributes.v|startswith: /admin\ncondition: sel", {"v": "/x/admin"}, False),
    ("sel:\n  attributes.v|endswith: .exe\ncondition: sel", {"v": "C:/a.EXE"}, True),
    ("sel:\n  attributes.v|endswith: .exe\ncondition: sel", {"v": "a.exe.txt"}, False),
    # |all: every value must occur
    ("sel:\n  attributes.v|contains|all: [foo, bar]\ncondition: sel", {"v": "bar..foo"}, True),
    ("sel:\n  attributes.v|contains|all: [foo, bar]\ncondition: sel", {"v": "foo only"}, False),
    # wildcards and escapes
    ("sel:\n  attributes.v: 'a*c'\ncondition: sel", {"v": "abbbc"}, True),
    ("sel:\n  attributes.v: 'a?c'\ncondition: sel", {"v": "abc"}, True),
    ("sel:\n  attributes.v: 'a?c'\ncondition: sel", {"v": "abbc"}, False),
    ("sel:\n  attributes.v: 'a\\*c'\ncondition: sel", {"v": "a*c"}, True),
    ("sel:\n  attributes.v: 'a\\*c'\ncondition: sel", {"v": "abc"}, False),
    ("sel:\n  attributes.v: 'a\\?c'\ncondition: sel", {"v": "abc"}, False),
    ("sel:\n  attributes.v: 'C:\\Windows\\\\*'\ncondition: sel", {"v": "c:\\windows\\system32"}, True),
    ("sel:\n  attributes.v: 'C:\\Windows\\*'\ncondition: sel", {"v": "c:\\windows*"}, True),
    ("sel:\n  attributes.v: '*'\ncondition: sel", {"v": ""}, True),
    ("sel:\n  attributes.v: '*'\ncondition: sel", {}, False),
    # |re with flags (case-sensitive by default)
    ("sel:\n  attributes.v|re: '^ab+c$'\ncondition: sel", {"v": "abbbc"}, True),
    ("sel:\n  attributes.v|re: '^ab+c$'\ncondition: sel", {"v": "ABC"}, False),
    ("sel:\n  attributes.v|re|i: '^ab+c$'\ncondition: sel", {"v": "ABC"}, True),
    ("sel:\n  attributes.v|re: 'b.c'\ncondition: sel", {"v": "xb\ncx"}, False),
    ("sel:\n  attributes.v|re|s: 'b.c'\ncondition: sel", {"v": "xb\ncx"}, True),
    ("sel:\n  attributes.v|re: '^two$'\ncondition: sel", {"v": "one\ntwo"}, False),
    ("sel:\n  attributes.v|re|m: '^two$'\ncondition: sel", {"v": "one\ntwo"}, True),
    # |cidr
    ("sel:\n  attributes.v|cidr: 10.0.0.0/8\ncondition: sel", {"v": "10.200.1.1"}, True),
    ("sel:\n  attributes.v|cidr: 10.0.0.0/8\ncondition: sel", {"v": "11.0.0.1"}, False),
    ("sel:\n  attributes.v|cidr: 'fc00::/7'\ncondition: sel", {"v": "fd12::1"}, True),
    ("sel:\n  attributes.v|cidr: 'fc00::/7'\ncondition: sel", {"v": "not-an-ip"}, False),
    # |base64 and |base64offset|contains
    ("sel:\n  attributes.v|base64: 'IEX (New-Object Net.WebClient)'\ncondition: sel", {"v": B64}, True),
    (
        "sel:\n  attributes.v|base64offset|contains: 'New-Object'\ncondition: sel",
        {"v": "powershell -enc " + base64.b64encode(b"xxIEX New-Object yy").decode()},
        True,
    ),
    (
        "sel:\n  attributes.v|base64offset|contains: 'New-Object'\ncondition: sel",
        {"v": base64.b64encode(b"xxIEX Old-Object").decode()},
        False,
    ),
    # |windash
    ("sel:\n  attributes.v|windash|contains: ' -exec '\ncondition: sel", {"v": "x /exec y"}, True),
    ("sel:\n  attributes.v|windash|contains: ' -exec '\ncondition: sel", {"v": "x \u2013exec y"}, True),
    ("sel:\n  attributes.v|windash|contains: ' -exec '\ncondition: sel", {"v": "x +exec y"}, False),
    # |exists and null
    ("sel:\n  attributes.v|exists: true\ncondition: sel", {"v": 0}, True),
    ("sel:\n  attributes.v|exists: true\ncondition: sel", {"w": 1}, False),
    ("sel:\n  attributes.v|exists: false\ncondition: sel", {"w": 1}, True),
    ("sel:\n  attributes.v: null\ncondition: sel", {"v": None}, True),
    ("sel:\n  attributes.v: null\ncondition: sel", {}, True),
    ("sel:\n  attributes.v: null\ncondition: sel", {"v": ""}, False),
    # numbers and comparisons (numeric strings compare by value)
    ("sel:\n  attributes.v: 404\ncondition: sel", {"v": 404}, True),
    ("sel:\n  attributes.v: 404\ncondition: sel", {"v": "404"}, True),
    ("sel:\n  attributes.v: '404'\ncondition: sel", {"v": 404}, True),
    ("sel:\n  attributes.v: 404\ncondition: sel", {"v": 4040}, False),
    ("sel:\n  attributes.v|gt: 10\ncondition: sel", {"v": 11}, True),
    ("sel:\n  attributes.v|gt: 10\ncondition: sel", {"v": 10}, False),
    ("sel:\n  attributes.v|gte: 10\ncondition: sel", {"v": "10"}, True),
    ("sel:\n  attributes.v|lt: 10\ncondition: sel", {"v": 9.5}, True),
    ("sel:\n  attributes.v|lte: 10\ncondition: sel", {"v": 10.5}, False),
    ("sel:\n  attributes.v|lt: 10\ncondition: sel", {"v": "n/a"}, False),
    # booleans
    ("sel:\n  attributes.v: true\ncondition: sel", {"v": True}, True),
    ("sel:\n  attributes.v: true\ncondition: sel", {"v": "TRUE"}, True),
    ("sel:\n  attributes.v: true\ncondition: sel", {"v": False}, False),
    # |fieldref
    ("sel:\n  attributes.a|fieldref: attributes.b\ncondition: sel", {"a": "Bob", "b": "bob"}, True),
    ("sel:\n  attributes.a|fieldref: attributes.b\ncondition: sel", {"a": "bob", "b": "alice"}, False),
    (
        "sel:\n  attributes.a|fieldref|contains: attributes.b\ncondition: sel",
        {"a": "xbobx", "b": "bob"},
        True,
    ),
    (
        "sel:\n  attributes.a|fieldref|startswith: attributes.b\ncondition: sel",
        {"a": "xbob", "b": "bob"},
        False,
    ),
    # list-valued event fields: any element
    ("sel:\n  attributes.v: admin\ncondition: sel", {"v": ["user", "ADMIN"]}, True),
    ("sel:\n  attributes.v|all: [a, b]\ncondition: sel", {"v": ["b", "a"]}, True),
    ("sel:\n  attributes.v|all: [a, b]\ncondition: sel", {"v": ["a"]}, False),
    # nested and literal dotted keys in attributes
    (
        "sel:\n  attributes.http.request.header.referer|contains: evil\ncondition: sel",
        {"http.request.header.referer": "https://evil.example"},
        True,
    ),
    ("sel:\n  attributes.outer.inner: x\ncondition: sel", {"outer": {"inner": "X"}}, True),
    ("sel:\n  attributes.items.name: b\ncondition: sel", {"items": [{"name": "a"}, {"name": "b"}]}, True),
]


@pytest.mark.parametrize(("detection", "values", "expected"), CASES)
def test_value_semantics(detection: str, values: dict, expected: bool):
    assert predicate(detection)(attrs(**values)) is expected


KEYWORDS = "keywords:\n  - 'union select'\n  - 'near \"*\": syntax'\ncondition: keywords"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"m": "id=1 UNION SELECT pw"}, True),
        ({"m": 'near "FROM": syntax error'}, True),  # quote is escaped in JSON: found in raw values
        ({"m": "union  select"}, False),
        ({"m": "nothing"}, False),
    ],
)
def test_keywords_search_raw_text(values: dict, expected: bool):
    assert predicate(KEYWORDS)(attrs(**values)) is expected


def test_keywords_see_keys_and_top_level_fields():
    assert predicate('keywords: [\'"action":"user.login"\']\ncondition: keywords')(attrs()) is True
    assert predicate("keywords: [shop-api]\ncondition: keywords")(attrs()) is True
    assert predicate("keywords:\n  '|cased': [SHOP-API]\ncondition: keywords")(attrs()) is False
    assert predicate("keywords:\n  '|cased': [shop-api]\ncondition: keywords")(attrs()) is True


def test_keywords_all_modifier():
    rule = predicate("keywords:\n  '|all': [alpha, beta]\ncondition: keywords")
    assert rule(attrs(a="alpha", b="beta")) is True
    assert rule(attrs(a="alpha")) is False


CONDITION = """
sel_a:
  attributes.a: 1
sel_b:
  attributes.b: 1
filter_c:
  attributes.c: 1
"""


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        ("sel_a and sel_b", {"a": 1, "b": 1}, True),
        ("sel_a and sel_b", {"a": 1}, False),
        ("sel_a or sel_b", {"b": 1}, True),
        ("sel_a and not filter_c", {"a": 1, "c": 1}, False),
        ("1 of sel_*", {"b": 1}, True),
        ("all of sel_*", {"b": 1}, False),
        ("all of sel_*", {"a": 1, "b": 1}, True),
        ("all of them", {"a": 1, "b": 1}, False),
        ("all of them", {"a": 1, "b": 1, "c": 1}, True),
        ("1 of them", {"c": 1}, True),
        ("not (sel_a or sel_b)", {"c": 1}, True),
        ("not (sel_a or sel_b)", {"a": 1}, False),
        ("(sel_a or sel_b) and not filter_c", {"b": 1}, True),
        ("sel_a or sel_b and filter_c", {"a": 1}, True),  # and binds tighter than or
        ("(sel_a or sel_b) and filter_c", {"a": 1}, False),
        ("not 1 of filter_*", {}, True),
    ],
)
def test_conditions(condition: str, values: dict, expected: bool):
    rule = predicate(CONDITION + f"condition: {condition}")
    assert rule(attrs(**values)) is expected


def test_list_of_maps_is_or_and_map_is_and():
    rule = predicate("sel:\n  - attributes.a: 1\n    attributes.b: 2\n  - attributes.c: 3\ncondition: sel")
    assert rule(attrs(a=1, b=2)) is True
    assert rule(attrs(a=1)) is False
    assert rule(attrs(c=3)) is True


def test_hour_modifier_reads_timestamps():
    rule = predicate("sel:\n  time|hour: 10\ncondition: sel")
    assert rule(event(time="2026-03-02T10:15:00Z")) is True
    assert rule(event(time="2026-03-02T11:15:00Z")) is False

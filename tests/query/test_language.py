"""The query language: parsing, errors that point at a column, printing back, and matches()."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailseal.event import json_schema
from trailseal.query.language import (
    IP_FIELDS,
    MATCH_ALL,
    SCHEMA_FIELDS,
    And,
    Not,
    Or,
    QueryError,
    Term,
    Text,
    TimeBound,
    format,
    matches,
    parse,
    parse_ip,
    text_tokens,
)

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def event(**over) -> dict:
    base = {
        "id": "e1", "time": "2026-11-02T11:00:00.000000Z", "received": "2026-11-02T11:00:01.000000Z",
        "log": "default", "category": "authentication", "action": "auth.login", "outcome": "failure",
        "severity": "info", "reason": "invalid password",
        "actor": {"id": "Alice Smith", "type": "user", "ip": "10.1.2.3", "session": "s-1", "roles": ["admin", "ops"]},
        "source": {"component": "web", "kind": "app", "format": "json"},
        "target": {"type": "table", "id": "orders"},
        "request": {"method": "POST", "path": "/login", "status": 401, "trace_id": "t-9"},
        "attributes": {"db.name": "orders", "db": {"name": "users"}, "latency_ms": 12.5, "tags": ["pci", 5, True],
                       "note": "Müller said hello", "flag": False, "nothing": None},
    }
    base.update(over)
    return base


# -- parsing ---------------------------------------------------------------------------------------
def test_the_design_example_parses_to_the_expected_ast():
    ast = parse('actor:alice outcome:failure action:auth.* since:24h ip:10.0.0.0/8 "free text" -category:system')
    assert ast == And((
        Term("actor.id", ("alice",)), Term("outcome", ("failure",)), Term("action", ("auth.", "")),
        TimeBound("since", "24h"), Term("actor.ip", ("10.0.0.0/8",)), Text(("free text",)),
        Not(Term("category", ("system",))),
    ))


def test_precedence_not_binds_tightest_then_and_then_or():
    assert parse("a b OR NOT c d") == Or((And((Text(("a",)), Text(("b",)))), And((Not(Text(("c",))), Text(("d",))))))
    assert parse("a (b OR c)") == And((Text(("a",)), Or((Text(("b",)), Text(("c",))))))
    assert parse("a AND b") == parse("a b")
    assert parse("a or b") == And((Text(("a",)), Text(("or",)), Text(("b",))))  # keywords are case-sensitive


@pytest.mark.parametrize(("alias", "fields"), [
    ("actor", ("actor.id",)), ("user", ("actor.id",)), ("ip", ("actor.ip",)), ("status", ("request.status",)),
    ("trace", ("request.trace_id",)), ("session", ("actor.session",)),
    ("source", ("source.component", "source.kind")),
])
def test_aliases_resolve_to_schema_paths(alias, fields):
    ast = parse(f"{alias}:x1")
    terms = ast.items if isinstance(ast, Or) else (ast,)
    assert tuple(t.field for t in terms) == fields


def test_values_quoted_wildcarded_escaped_and_compared():
    assert parse('actor:"Alice Smith"') == Term("actor.id", ("Alice Smith",))
    assert parse('actor:"a*b"') == Term("actor.id", ("a*b",))  # quotes make '*' literal
    assert parse(r"actor:a\*b*") == Term("actor.id", ("a*b", ""))
    assert parse(r"actor:Alice\ Smith") == Term("actor.id", ("Alice Smith",))
    assert parse("status:>=500") == Term("request.status", ("500",), ">=")
    assert parse("request.path:/a:b") == Term("request.path", ("/a:b",))
    assert parse("attributes.k8s.io/decision:allow") == Term("attributes.k8s.io/decision", ("allow",))


@pytest.mark.parametrize(("query", "message"), [
    ("actor:alice since: foo", "col 19: expected a value after ':'"),
    ("actor:", "col 7: expected a value after ':'"),
    ("status:>=", "col 10: expected a value after '>='"),
    ("acter:bob", "col 1: unknown field 'acter'; did you mean 'actor'?"),
    ("outcome:x db.name:orders", "col 11: unknown field 'db.name'; did you mean 'attributes.db.name'?"),
    ("target:x", "col 1: 'target' is an object; name one of its fields"),
    ("(a OR b", "col 1: unclosed '('"),
    ("a b)", "col 4: unmatched ')'"),
    ("()", "col 1: empty parentheses"),
    ('actor:"abc', "col 7: unterminated quote"),
    ("a OR", "col 5: expected a term after 'OR'"),
    ("OR a", "col 1: expected a term before 'OR'"),
    ("a - b", "col 4: expected a term right after '-'"),
    ("ip:10.0.0.0/33", "col 4: '10.0.0.0/33' is not an IP network"),
    ("since:5y", "col 7: since: expects 15m, 24h, 7d"),
    ("until:2026-13-01", "col 7: until: expects"),
    ("since:99999999d", "col 7: since: expects"),
    ("status:>=5*", "col 10: a comparison takes no '*' wildcard"),
    ("f*o", "col 1: free text takes only a trailing '*'"),
    ("...", "col 1: free text has no letters or digits"),
    ('a"b', "col 2: unexpected '\"' inside a word"),
    ('"a"b', "col 4: expected a space after the closing quote"),
    ("a\\", "col 2: a '\\' at the end escapes nothing"),
])
def test_errors_name_the_column(query, message):
    with pytest.raises(QueryError) as caught:
        parse(query)
    assert str(caught.value).startswith(message)


def test_empty_query_matches_everything():
    assert parse("   ") == MATCH_ALL
    assert matches("", event())


def test_field_catalogue_matches_the_published_schema():
    """Every schema v1 leaf is searchable by name, and nothing else is claimed."""
    schema = json_schema()
    defs = schema["$defs"]
    leaves = set()
    for name, prop in defs["Event"]["properties"].items():
        ref = next((x["$ref"] for x in prop.get("anyOf", [prop]) if "$ref" in x), None)
        if ref and name != "attributes":
            leaves |= {f"{name}.{sub}" for sub in defs[ref.rsplit("/", 1)[1]]["properties"]}
        elif name != "attributes":
            leaves.add(name)
    assert leaves == set(SCHEMA_FIELDS)


# -- printing back ---------------------------------------------------------------------------------
FIELDS = sorted(SCHEMA_FIELDS) + ["attributes.db.name", "attributes.x", "attributes.k8s.io/a-b"]
SPECS = ["15m", "24h", "7d", "2026-11-01", "2026-11-01T10:00:00Z", "2026-11-01T10:00:00.5+02:00"]
piece = st.text(alphabet=string.ascii_letters + string.digits + ' ()"\\*:-<>=.\t/é東OR', max_size=8)


@st.composite
def terms(draw):
    field = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(["=", "=", ">", ">=", "<", "<="]))
    value = (draw(piece),) if op != "=" else tuple(draw(st.lists(piece, min_size=1, max_size=3)))
    ok = not (field in IP_FIELDS and len(value) == 1 and "/" in value[0] and parse_ip(value[0]) is None)
    return Term(field, value, op) if ok else Term(field, ("x",))


@st.composite
def texts(draw):
    word = draw(piece.filter(lambda w: bool(text_tokens(w))))
    return Text((word, "") if draw(st.booleans()) else (word,))


leaves = st.one_of(terms(), texts(), st.builds(TimeBound, st.sampled_from(["since", "until"]), st.sampled_from(SPECS)))
asts = st.recursive(leaves, lambda inner: st.one_of(
    st.builds(Not, inner),
    st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
    st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
), max_leaves=8)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(asts)
def test_format_round_trips_every_ast(ast):
    assert parse(format(ast)) == ast


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet='ab:()"\\*- ORNTAD<>=.1/', max_size=30)))
def test_random_strings_raise_only_query_error_and_reprint_stably(text):
    try:
        ast = parse(text)
    except QueryError as exc:
        assert exc.col is None or 1 <= exc.col <= len(text) + 1
        return
    assert parse(format(ast)) == ast


# -- evaluating ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "expected"), [
    ('actor:"Alice Smith"', True), ("actor:alice", False), ("actor:Al*", True), ("actor:*Smith", True),
    ("action:auth.*", True), ("action:auth", False), ("-outcome:failure", False), ("NOT outcome:success", True),
    ("ip:10.0.0.0/8", True), ("ip:10.1.2.3", True), ("ip:11.0.0.0/8", False), ("ip:10.1.*", True),
    ("source.ip:10.0.0.0/8", False), ("-source.ip:10.0.0.0/8", True),
    ("status:401", True), ("status:>=500", False), ("status:>400", True), ("status:4*", True), ("status:abc", False),
    ("attributes.latency_ms:12.5", True), ("attributes.latency_ms:<13", True), ("attributes.latency_ms:1*", False),
    ("attributes.db.name:orders", True), ("attributes.db.name:users", True), ("attributes.db:*", False),
    ("attributes.tags:pci", True), ("attributes.tags:5", True), ("attributes.tags:true", True),
    ("attributes.flag:false", True), ("attributes.flag:true", False), ("attributes.nothing:*", False),
    ("attributes.missing:*", False), ("-attributes.missing:x", True), ("actor.roles:ops", True),
    ("attributes.note:>M", True), ("attributes.latency_ms:>M", False),
    ("source:web", True), ("source:app", True), ("source:db", False), ("trace:t-9", True), ("session:s-*", True),
    ("since:2h", True), ("since:30m", False), ("until:30m", True), ("until:2026-11-02", False),
    ("invalid", True), ("INVALID Password", True), ('"invalid password"', True), ('"password invalid"', False),
    ("pass*", True), ("muller", True), ("MÜLLER", True), ('"hello auth"', False), ("401", True), ("12", True),
    ("2026", False), ("invalid OR nope", True), ("(nope OR invalid) -actor:x", True),
])
def test_matches(query, expected):
    assert matches(query, event(), NOW) is expected


def test_free_text_never_spans_two_values():
    e = event(reason="quick", target={"type": "brown"})
    assert matches("quick", e) and matches("brown", e)
    assert not any(matches(q, e) for q in ['"quick brown"', '"brown quick"'])
    assert matches('"quick brown"', event(reason="the quick, brown fox"))


def test_text_tokens_fold_case_and_accents():
    assert text_tokens("Müller-STRASSE straße_ok  東京2") == ("muller", "strasse", "strasse", "ok", "東京2")

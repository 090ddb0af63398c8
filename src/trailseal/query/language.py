"""The one query language of the CLI, API and UI: parse, print back, and evaluate in Python.

    actor:alice outcome:failure action:auth.* since:24h ip:10.0.0.0/8 "free text" -category:system

Grammar (terms are ANDed by default; ``OR``, ``AND`` and ``NOT`` are case-sensitive keywords)::

    query   := or?                      an empty query matches everything
    or      := and ("OR" and)*
    and     := unary ("AND"? unary)*
    unary   := ("-" | "NOT") unary | "(" or ")" | term
    term    := FIELD ":" OP? VALUE      OP is >, >=, < or <=
             | VALUE                    free text
    VALUE   := "quoted \\" string" | bare\\ word    `*` in a bare value is a wildcard, `\\x` is a literal x

Field values match exactly and case-sensitively (``*`` wildcards anywhere); numbers compare as
numbers, strings as strings; a list matches when any element does; ``field:*`` means "present".
``ip:`` and ``source.ip:`` take an address or CIDR. ``since:``/``until:`` take ``15m``, ``24h``,
``7d``, ``YYYY-MM-DD`` or RFC 3339 (since is inclusive, until exclusive). Free text matches whole
words case- and accent-insensitively within one value of the event (see ``text_tokens``); a
trailing ``*`` makes its last word a prefix.

``matches(ast, event)`` is the reference evaluator: search results equal it, and the live UI and
detection may use it directly.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from trailseal.event import FIELD_PATHS, EventError, format_time, normalize_time


class QueryError(ValueError):
    """A query that cannot be parsed or run; the message names the column when there is one."""

    def __init__(self, message: str, col: int | None = None):
        self.col = col
        super().__init__(f"col {col}: {message}" if col is not None else message)


# -- the AST ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Term:
    """``field:value``: ``value`` is literal pieces with a ``*`` wildcard between each two."""

    field: str
    value: tuple[str, ...]
    op: str = "="


@dataclass(frozen=True, slots=True)
class Text:
    """Free text; two pieces with an empty last one (``word*``) make the last word a prefix."""

    value: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TimeBound:
    """``since:spec`` (time >= t) or ``until:spec`` (time < t)."""

    bound: str
    spec: str


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node = Term | Text | TimeBound | Not | And | Or
MATCH_ALL = And(())

# -- fields ----------------------------------------------------------------------------------------
INT_FIELDS = frozenset({"request.status", "request.bytes"})
LIST_FIELDS = frozenset({"actor.roles"})
STRING_FIELDS = frozenset(FIELD_PATHS) - INT_FIELDS - LIST_FIELDS - {"attributes"}
SCHEMA_FIELDS = STRING_FIELDS | INT_FIELDS | LIST_FIELDS
IP_FIELDS = frozenset({"actor.ip", "source.ip"})
OBJECTS = ("actor", "source", "target", "request", "attributes")
ALIASES: dict[str, tuple[str, ...]] = {
    "actor": ("actor.id",), "user": ("actor.id",), "ip": ("actor.ip",),
    "source": ("source.component", "source.kind"), "status": ("request.status",),
    "trace": ("request.trace_id",), "session": ("actor.session",),
}
TIME_FIELDS = ("since", "until")
KNOWN_NAMES = sorted(SCHEMA_FIELDS | set(ALIASES) | set(TIME_FIELDS))
MAX_PATH_PARTS = 8
OPS = (">=", "<=", ">", "<")
KEYWORDS = ("OR", "AND", "NOT")

_FIELD_RE = re.compile(r"[A-Za-z0-9_@/$+-]+(?:\.[A-Za-z0-9_@/$+-]+)*(?=:)")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_RELATIVE_RE = re.compile(r"(\d{1,7})([smhdw])")
_DATE_RE = re.compile(r"\d{4}-\d\d-\d\d")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_RELATIVE = timedelta(days=36525)
_STOP = "()"


def resolve_field(name: str, col: int | None = None) -> tuple[str, ...]:
    """The schema paths a field name stands for; unknown names raise QueryError with a suggestion."""
    if name in ALIASES:
        return ALIASES[name]
    if name in SCHEMA_FIELDS:
        return (name,)
    if name.startswith("attributes."):
        if name.count(".") > MAX_PATH_PARTS:
            raise QueryError(f"field path {name!r} is deeper than {MAX_PATH_PARTS} keys", col)
        return (name,)
    if name in OBJECTS:
        inner = ", ".join(f for f in KNOWN_NAMES if f.startswith(name + ".")) or "attributes.<key>"
        raise QueryError(f"{name!r} is an object; name one of its fields: {inner}", col)
    raise QueryError(f"unknown field {name!r}; {_suggestion(name)}", col)


def _suggestion(name: str) -> str:
    """'did you mean ...' for a misspelt field, or how to reach attributes."""
    close = difflib.get_close_matches(name, KNOWN_NAMES, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"did you mean 'attributes.{name}'?"


def parse_number(text: str) -> int | float | None:
    """The number a value spells (JSON syntax, finite), or None."""
    if not _NUMBER_RE.fullmatch(text):
        return None
    if not any(c in text for c in ".eE"):
        value = int(text)
        return value if -(2**63) <= value < 2**63 else float(value)
    number = float(text)
    return number if number not in (float("inf"), float("-inf")) else None


def parse_ip(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network an IP field's value names (a bare address is a /32 or /128), or None."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


# -- time ------------------------------------------------------------------------------------------
def check_time_spec(spec: str) -> None:
    """Raise ValueError unless spec is a relative or absolute time this language accepts."""
    match = _RELATIVE_RE.fullmatch(spec)
    if match:
        if timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)]) > MAX_RELATIVE:
            raise ValueError("relative times reach back at most 100 years")
        return
    resolve_time(spec, datetime(2000, 1, 1, tzinfo=UTC))


def resolve_time(spec: str, now: datetime) -> str:
    """The canonical UTC timestamp a since/until spec means at ``now``."""
    match = _RELATIVE_RE.fullmatch(spec)
    if match:
        return format_time(now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)]))
    if _DATE_RE.fullmatch(spec):
        return format_time(datetime.fromisoformat(spec).replace(tzinfo=UTC))
    try:
        return normalize_time(spec, "since")
    except EventError as exc:
        raise ValueError(exc.reason) from None


# -- parsing ---------------------------------------------------------------------------------------
def parse(text: str) -> Node:
    """Parse a query into its AST; raise QueryError naming the column of the first problem."""
    if not isinstance(text, str):
        raise QueryError(f"a query is a string, not {type(text).__name__}")
    return _Parser(text).parse()


class _Parser:
    """Recursive descent over the query text, one method per grammar rule."""

    def __init__(self, text: str):
        self.s = text
        self.i = 0

    def fail(self, message: str, at: int | None = None) -> QueryError:
        return QueryError(message, (self.i if at is None else at) + 1)

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def skip_space(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def keyword(self, word: str) -> bool:
        """Whether the keyword stands at the cursor as a whole word."""
        end = self.i + len(word)
        return self.s.startswith(word, self.i) and (end == len(self.s) or _ends_word(self.s[end]))

    def parse(self) -> Node:
        self.skip_space()
        if self.at_end():
            return MATCH_ALL
        node = self.or_expr()
        self.skip_space()
        if not self.at_end():
            raise self.fail("unmatched ')'" if self.s[self.i] == ")" else "unexpected text")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("OR"):
            self.i += 2
            self.expect_term("OR")
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.unary()]
        while True:
            self.skip_space()
            if self.at_end() or self.s[self.i] == ")" or self.keyword("OR"):
                break
            if self.keyword("AND"):
                self.i += 3
                self.expect_term("AND")
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def expect_term(self, after: str) -> None:
        """After a keyword or '-' a term must follow."""
        self.skip_space()
        if self.at_end() or self.s[self.i] == ")" or any(self.keyword(k) for k in ("OR", "AND")):
            raise self.fail(f"expected a term after {after!r}")

    def unary(self) -> Node:
        self.skip_space()
        if self.s.startswith("-", self.i):
            self.i += 1
            if self.at_end() or self.s[self.i].isspace():
                raise self.fail("expected a term right after '-'")
            return Not(self.unary())
        if self.keyword("NOT"):
            self.i += 3
            self.expect_term("NOT")
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        if self.at_end():
            raise self.fail("expected a term")
        char = self.s[self.i]
        if char == "(":
            return self.group()
        if char == ")":
            raise self.fail("unexpected ')'")
        for word in KEYWORDS:
            if self.keyword(word):
                raise self.fail(f"expected a term before {word!r} (quote it to search the word)")
        if char == '"':
            return self.text(self.quoted(), self.i)
        field = _FIELD_RE.match(self.s, self.i)
        if field:
            return self.term(field.group())
        start = self.i
        return self.text(self.bare(), start)

    def group(self) -> Node:
        start = self.i
        self.i += 1
        self.skip_space()
        if self.s.startswith(")", self.i):
            raise self.fail("empty parentheses", start)
        node = self.or_expr()
        self.skip_space()
        if not self.s.startswith(")", self.i):
            raise self.fail("unclosed '('", start)
        self.i += 1
        return node

    def text(self, pieces: tuple[str, ...], start: int) -> Text:
        if len(pieces) > 2 or (len(pieces) == 2 and pieces[1]):
            raise self.fail("free text takes only a trailing '*' (a word prefix); "
                            "use field:value for other wildcards", start)
        if not text_tokens(pieces[0]):
            raise self.fail("free text has no letters or digits to search", start)
        return Text(pieces)

    def term(self, name: str) -> Node:
        start = self.i
        self.i += len(name) + 1
        op = next((o for o in OPS if self.s.startswith(o, self.i)), "=")
        if op != "=":
            self.i += len(op)
        value_at = self.i
        if self.at_end() or self.s[self.i].isspace() or self.s[self.i] in _STOP:
            raise self.fail("expected a value after ':'" if op == "=" else f"expected a value after {op!r}")
        pieces = self.quoted() if self.s[self.i] == '"' else self.bare()
        if name in TIME_FIELDS:
            return self.time_bound(name, op, pieces, value_at)
        fields = resolve_field(name, start + 1)
        if op != "=" and len(pieces) > 1:
            raise self.fail("a comparison takes no '*' wildcard", value_at)
        self.check_ip(fields, pieces, value_at)
        terms = tuple(Term(f, pieces, op) for f in fields)
        return terms[0] if len(terms) == 1 else Or(terms)

    def time_bound(self, name: str, op: str, pieces: tuple[str, ...], at: int) -> TimeBound:
        if op != "=" or len(pieces) != 1:
            raise self.fail(f"{name}: takes a time like 15m, 24h, 7d, 2026-11-01 or an RFC 3339 timestamp", at)
        try:
            check_time_spec(pieces[0])
        except ValueError as exc:
            raise self.fail(f"{name}: expects 15m, 24h, 7d, YYYY-MM-DD or RFC 3339 ({exc})", at) from None
        return TimeBound(name, pieces[0])

    def check_ip(self, fields: tuple[str, ...], pieces: tuple[str, ...], at: int) -> None:
        """An IP field's value with a '/' must be a valid CIDR."""
        if fields[0] in IP_FIELDS and len(pieces) == 1 and "/" in pieces[0] and parse_ip(pieces[0]) is None:
            raise self.fail(f"{pieces[0]!r} is not an IP network (like 10.0.0.0/8)", at)

    def quoted(self) -> tuple[str, ...]:
        """A double-quoted string with backslash escapes: one literal piece."""
        start = self.i
        self.i += 1
        out = []
        while True:
            if self.at_end():
                raise self.fail("unterminated quote", start)
            char = self.s[self.i]
            if char == '"':
                break
            if char == "\\":
                self.i += 1
                if self.at_end():
                    raise self.fail("unterminated quote", start)
                char = self.s[self.i]
            out.append(char)
            self.i += 1
        self.i += 1
        if not self.at_end() and not _ends_word(self.s[self.i]):
            raise self.fail("expected a space after the closing quote")
        return ("".join(out),)

    def bare(self) -> tuple[str, ...]:
        """A bare word up to a space or parenthesis; unescaped '*' split it into pieces."""
        pieces, current = [], []
        while not self.at_end() and not _ends_word(self.s[self.i]):
            char = self.s[self.i]
            if char == '"':
                raise self.fail("unexpected '\"' inside a word; quote the whole value")
            if char == "\\":
                self.i += 1
                if self.at_end():
                    raise self.fail("a '\\' at the end escapes nothing", self.i - 1)
                current.append(self.s[self.i])
            elif char == "*":
                pieces.append("".join(current))
                current = []
            else:
                current.append(char)
            self.i += 1
        pieces.append("".join(current))
        return tuple(pieces)


def _ends_word(char: str) -> bool:
    return char.isspace() or char in _STOP


# -- printing --------------------------------------------------------------------------------------
def format(node: Node) -> str:  # noqa: A001 - the query language's printer, named for what it does
    """The query text of an AST; parse(format(ast)) == ast for every AST parse() can produce."""
    if isinstance(node, And):
        return " ".join(_wrap(item, (And, Or)) for item in node.items)
    if isinstance(node, Or):
        return " OR ".join(_wrap(item, (Or,)) for item in node.items)
    if isinstance(node, Not):
        return "-" + _wrap(node.item, (And, Or))
    if isinstance(node, TimeBound):
        return f"{node.bound}:{node.spec}"
    if isinstance(node, Term):
        return f"{node.field}:{'' if node.op == '=' else node.op}{_value(node.value)}"
    return _value(node.value, text=True)


def _wrap(node: Node, kinds: tuple[type, ...]) -> str:
    text = format(node)
    return f"({text})" if isinstance(node, kinds) else text


_SPECIAL = set('()"\\*')


def _value(pieces: tuple[str, ...], text: bool = False) -> str:
    """A value as the lexer reads it back: quoted when literal and unsafe bare, else escaped."""
    if len(pieces) == 1 and not _bare_safe(pieces[0], text):
        return '"' + pieces[0].replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "*".join(_escape(piece, text, first=i == 0) for i, piece in enumerate(pieces))


def _bare_safe(piece: str, text: bool) -> bool:
    if not piece or piece[0] in "<>=" or any(c in _SPECIAL or c.isspace() for c in piece):
        return False
    return not text or (piece[0] != "-" and ":" not in piece and piece not in KEYWORDS)


def _escape(piece: str, text: bool, first: bool) -> str:
    out = []
    for i, char in enumerate(piece):
        lead = first and i == 0 and (char in "<>=" or (text and char == "-"))
        if char in _SPECIAL or char.isspace() or lead or (text and char == ":"):
            out.append("\\")
        out.append(char)
    return "".join(out)


# -- free text -------------------------------------------------------------------------------------
_TOKEN_RE = re.compile(r"[^\W_]+")
_ASCII_TOKEN_RE = re.compile(r"[a-z0-9]+")
UNINDEXED_ROOTS = frozenset({"time", "received", "raw_hash"})


@lru_cache(maxsize=65536)
def text_tokens(text: str) -> tuple[str, ...]:
    """Words of a text for free-text search: letters and digits, case-folded, accents removed."""
    if text.isascii():
        return tuple(_ASCII_TOKEN_RE.findall(text.lower()))
    folded = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    return tuple(_TOKEN_RE.findall(stripped))


def text_values(event: dict[str, Any]) -> list[str]:
    """Every string and number in the event that free text searches (not time, received, raw_hash)."""
    out: list[str] = []
    for key, value in event.items():
        if key not in UNINDEXED_ROOTS:
            _collect(value, out)
    return out


def _collect(value: Any, out: list[str]) -> None:
    """Append the strings (and numbers, as repr) inside value, depth first."""
    kind = type(value)
    if kind is str:
        out.append(value)
    elif kind is dict:
        for item in value.values():
            _collect(item, out)
    elif kind is list:
        for item in value:
            _collect(item, out)
    elif kind is int or kind is float:
        out.append(repr(value))


def phrase_in(words: tuple[str, ...], phrase: tuple[str, ...], prefix: bool) -> bool:
    """Whether phrase occurs as consecutive words (its last one a prefix when asked)."""
    last = phrase[-1]
    if len(phrase) == 1:
        return any(w.startswith(last) for w in words) if prefix else last in words
    n = len(phrase)
    for start in range(len(words) - n + 1):
        if words[start] == phrase[0] and words[start + 1:start + n - 1] == phrase[1:-1]:
            word = words[start + n - 1]
            if word == last or (prefix and word.startswith(last)):
                return True
    return False


# -- evaluating ------------------------------------------------------------------------------------
Predicate = Callable[[dict[str, Any]], bool]


def matches(node: Node | str, event: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether a sealed event (as a dict) matches the query: the reference semantics of search."""
    return predicate(node, now)(event)


def predicate(node: Node | str, now: datetime | None = None) -> Predicate:
    """The query as a Python function of an event dict; reuse it to test many events."""
    if isinstance(node, str):
        node = parse(node)
    return _compile(node, now or datetime.now(UTC))


def _compile(node: Node, now: datetime) -> Predicate:
    if isinstance(node, And):
        parts = [_compile(item, now) for item in node.items]
        return lambda event: all(p(event) for p in parts)
    if isinstance(node, Or):
        parts = [_compile(item, now) for item in node.items]
        return lambda event: any(p(event) for p in parts)
    if isinstance(node, Not):
        inner = _compile(node.item, now)
        return lambda event: not inner(event)
    if isinstance(node, TimeBound):
        return _time_predicate(node, now)
    if isinstance(node, Text):
        return _text_predicate(node)
    return _term_predicate(node)


def _time_predicate(node: TimeBound, now: datetime) -> Predicate:
    bound = resolve_time(node.spec, now)
    if node.bound == "since":
        return lambda event: isinstance(event.get("time"), str) and event["time"] >= bound
    return lambda event: isinstance(event.get("time"), str) and event["time"] < bound


def _text_predicate(node: Text) -> Predicate:
    phrase = text_tokens(node.value[0])
    prefix = len(node.value) == 2

    def test(event: dict[str, Any]) -> bool:
        return any(phrase_in(text_tokens(text), phrase, prefix) for text in text_values(event))

    return test


def _term_predicate(term: Term) -> Predicate:
    check = scalar_test(term)
    parts = term.field.split(".")

    def test(event: dict[str, Any]) -> bool:
        return any(check(value) for value in field_values(event, parts))

    return test


def field_values(event: dict[str, Any], parts: list[str]) -> Iterator[Any]:
    """The scalar values at a field path: list elements count, objects never match."""
    if parts[0] == "attributes":
        found = _segmented(event.get("attributes"), parts[1:])
    else:
        found = _nested(event, parts)
    for value in found:
        if isinstance(value, list):
            yield from (v for v in value if not isinstance(v, list | dict))
        elif not isinstance(value, dict):
            yield value


def _nested(node: Any, parts: list[str]) -> Iterator[Any]:
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    yield node


def _segmented(node: Any, parts: list[str]) -> Iterator[Any]:
    """Values under every way of reading the path, nested keys or keys containing dots."""
    if not parts:
        yield node
        return
    if not isinstance(node, dict):
        return
    for end in range(1, len(parts) + 1):
        key = ".".join(parts[:end])
        if key in node:
            yield from _segmented(node[key], parts[end:])


def scalar_test(term: Term) -> Callable[[Any], bool]:
    """The test one scalar value must pass for the term to match."""
    if term.value == ("", ""):
        return lambda v: v is not None
    if len(term.value) > 1:
        return _glob_test(term.value)
    q = term.value[0]
    if term.field in IP_FIELDS and term.op == "=" and (network := parse_ip(q)) is not None:
        return lambda v: isinstance(v, str) and _in_network(v, network)
    return _typed_test(q, term.op)


def _glob_test(pieces: tuple[str, ...]) -> Callable[[Any], bool]:
    """Wildcards match strings, and integers by their decimal text."""
    pattern = re.compile(".*".join(re.escape(p) for p in pieces), re.S)

    def test(v: Any) -> bool:
        if isinstance(v, str):
            return pattern.fullmatch(v) is not None
        return type(v) is int and pattern.fullmatch(str(v)) is not None

    return test


def _typed_test(q: str, op: str) -> Callable[[Any], bool]:
    """Strings compare with the text, numbers with the number, booleans equal true/false."""
    number = parse_number(q)
    compare = _COMPARE[op]

    def test(v: Any) -> bool:
        if isinstance(v, str):
            return compare(v, q)
        if isinstance(v, bool):
            return op == "=" and q == ("true" if v else "false")
        if isinstance(v, int | float):
            return number is not None and compare(v, number)
        return False

    return test


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}


@lru_cache(maxsize=65536)
def ip_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_network(text: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    address = ip_of(text)
    return address is not None and address.version == network.version and address in network

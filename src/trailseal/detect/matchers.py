"""Sigma values compiled into fast tests on one event value.

Strings match case-insensitively (Sigma's default) unless ``|cased``: exact values go into a set,
``*x``/``x*``/``*x*`` into suffix/prefix/substring tuples, other wildcard shapes into one
anchored regex; all of it lower-cased once at compile time. A non-string scalar is compared as
its text (``true``/``false`` for booleans), so ``sc-status: '404'`` and ``sc-status: 404`` agree.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from trailseal.detect.derived import parse_time

ValueTest = Callable[[Any], bool]

_COMPARE = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


class RuleCompileError(ValueError):
    """A rule uses something this engine cannot evaluate."""


def as_text(value: Any) -> str | None:
    """The text a scalar is matched as; None for null and containers."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def as_number(value: Any) -> float | int | None:
    """A scalar as a number (numeric strings too); None otherwise."""
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is str:
        try:
            return float(value)
        except ValueError:
            return None
    return None


# -- strings -----------------------------------------------------------------------------------


def string_shape(value: SigmaString) -> tuple[str, str]:
    """('exact'|'prefix'|'suffix'|'contains'|'regex', text) for a Sigma string."""
    parts = value.s
    for part in parts:
        if not isinstance(part, (str, SpecialChars)):
            raise RuleCompileError(f"unexpanded placeholder in value {value.original!r}")
    star = SpecialChars.WILDCARD_MULTI
    inner = parts[1:-1] if len(parts) >= 2 else []
    if all(isinstance(p, str) for p in parts):
        return "exact", "".join(parts)
    if len(parts) == 1 and parts[0] is star:
        return "regex", ".*"
    if len(parts) == 2 and parts[1] is star and isinstance(parts[0], str):
        return "prefix", parts[0]
    if len(parts) == 2 and parts[0] is star and isinstance(parts[1], str):
        return "suffix", parts[1]
    if len(parts) == 3 and parts[0] is star and parts[2] is star and isinstance(inner[0], str):
        return "contains", inner[0]
    return "regex", string_regex(value)


def string_regex(value: SigmaString) -> str:
    """A Python/RE2 regex (unanchored text) equivalent to a Sigma string with wildcards."""
    out = []
    for part in value.s:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            out.append(re.escape(part))
    return "".join(out)


class StringSet:
    """Many Sigma strings of one case mode, OR-linked, as one test on a text."""

    def __init__(self, cased: bool) -> None:
        self.cased = cased
        self.exact: set[str] = set()
        self.prefixes: list[str] = []
        self.suffixes: list[str] = []
        self.contains: list[str] = []
        self.regexes: list[str] = []

    def add(self, value: SigmaString) -> None:
        kind, text = string_shape(value)
        if not self.cased:
            text = text if kind == "regex" else text.lower()
        {
            "exact": self.exact.add,
            "prefix": self.prefixes.append,
            "suffix": self.suffixes.append,
            "contains": self.contains.append,
            "regex": self.regexes.append,
        }[kind](text)

    def test(self) -> Callable[[str], bool]:
        """One function text -> bool (text not yet lower-cased)."""
        checks = self._checks()
        fold = not self.cased
        if len(checks) == 1:
            only = checks[0]
            return (lambda text: only(text.lower())) if fold else only
        chain = tuple(checks)

        def test(text: str) -> bool:
            if fold:
                text = text.lower()
            for check in chain:
                if check(text):
                    return True
            return False

        return test

    def _checks(self) -> list[Callable[[str], bool]]:
        checks: list[Callable[[str], bool]] = []
        if self.exact:
            exact = frozenset(self.exact)
            checks.append(exact.__contains__)
        if self.prefixes:
            prefixes = tuple(self.prefixes)
            checks.append(lambda text: text.startswith(prefixes))
        if self.suffixes:
            suffixes = tuple(self.suffixes)
            checks.append(lambda text: text.endswith(suffixes))
        if self.contains:
            checks.append(_contains_any(self.contains))
        if self.regexes:
            flags = re.DOTALL if self.cased else re.DOTALL | re.IGNORECASE
            pattern = re.compile("|".join(f"(?:{r})" for r in self.regexes), flags)
            checks.append(lambda text: pattern.fullmatch(text) is not None)
        return checks or [lambda text: False]


def _contains_any(needles: list[str]) -> Callable[[str], bool]:
    """Substring test for a list of needles: a loop for a few, one regex scan for many."""
    if len(needles) == 1:
        needle = needles[0]
        return lambda text: needle in text
    if len(needles) <= 6:
        group = tuple(needles)

        def test(text: str) -> bool:
            for needle in group:
                if needle in text:
                    return True
            return False

        return test
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))
    return lambda text: pattern.search(text) is not None


# -- other value types -------------------------------------------------------------------------


def number_test(value: SigmaNumber) -> ValueTest:
    """Equality with a number; numeric strings compare by value."""
    target = value.number

    def test(actual: Any) -> bool:
        if type(actual) is bool:
            return False
        number = as_number(actual)
        return number is not None and number == target

    return test


def bool_test(value: SigmaBool) -> ValueTest:
    """Equality with a boolean; the strings 'true'/'false' count."""
    target = bool(value.boolean)
    text = "true" if target else "false"
    return lambda actual: actual is target or (type(actual) is str and actual.lower() == text)


def regex_test(value: SigmaRegularExpression) -> ValueTest:
    """re.search with the rule's i/m/s flags, case-sensitive otherwise."""
    flags = 0
    for flag in value.flags:
        flags |= _RE_FLAGS[flag]
    pattern = re.compile(str(value.regexp.to_plain()), flags)

    def test(actual: Any) -> bool:
        text = as_text(actual)
        return text is not None and pattern.search(text) is not None

    return test


@lru_cache(maxsize=65536)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def cidr_test(networks: list[SigmaCIDRExpression]) -> ValueTest:
    """Address inside any of the networks."""
    nets = tuple(n.network for n in networks)

    def test(actual: Any) -> bool:
        if type(actual) is not str:
            return False
        address = _ip(actual)
        if address is None:
            return False
        for net in nets:
            if address.version == net.version and address in net:
                return True
        return False

    return test


def compare_test(value: SigmaCompareExpression) -> ValueTest:
    """Numeric comparison (gt/gte/lt/lte/neq) with numbers or numeric strings."""
    compare = _COMPARE[value.op]
    bound = value.number.number

    def test(actual: Any) -> bool:
        kind = type(actual)
        if kind is float or kind is int:
            return compare(actual, bound)
        if kind is bool:
            return False
        number = as_number(actual)
        return number is not None and compare(number, bound)

    return test


_PARTS = {
    TimestampPart.MINUTE: lambda m: m.minute,
    TimestampPart.HOUR: lambda m: m.hour,
    TimestampPart.DAY: lambda m: m.day,
    TimestampPart.WEEK: lambda m: m.isocalendar()[1],
    TimestampPart.MONTH: lambda m: m.month,
    TimestampPart.YEAR: lambda m: m.year,
}


def timestamp_part_test(value: SigmaTimestampPart) -> ValueTest:
    """The minute/hour/day/week/month/year of a timestamp value equals a number."""
    part, target = _PARTS[value.timestamp_part], value.number

    def test(actual: Any) -> bool:
        moment = parse_time(actual) if type(actual) is str else None
        return moment is not None and part(moment) == target

    return test


def null_test(value: SigmaNull) -> ValueTest:
    """Never true for a present scalar (absence is handled by the caller)."""
    return lambda actual: False


def scalar_tests(values: list) -> list[ValueTest]:
    """OR-linked Sigma values as few tests as possible (strings merged per case mode)."""
    folded, cased = StringSet(cased=False), StringSet(cased=True)
    cidrs: list[SigmaCIDRExpression] = []
    tests: list[ValueTest] = []
    for value in values:
        if isinstance(value, SigmaString):
            (cased if isinstance(value, SigmaCasedString) else folded).add(value)
        elif isinstance(value, SigmaCIDRExpression):
            cidrs.append(value)
        else:
            tests.append(single_test(value))
    for strings in (folded, cased):
        if strings.exact or strings.prefixes or strings.suffixes or strings.contains or strings.regexes:
            tests.insert(0, _on_text(strings.test()))
    if cidrs:
        tests.append(cidr_test(cidrs))
    return tests


def _on_text(test: Callable[[str], bool]) -> ValueTest:
    """A text test applied to any scalar (as its text); the text test stays reachable."""

    def on_value(actual: Any) -> bool:
        if type(actual) is str:
            return test(actual)
        text = as_text(actual)
        return text is not None and test(text)

    on_value.text_test = test  # type: ignore[attr-defined]

    return on_value


def single_test(value: Any) -> ValueTest:
    """A test for one non-string Sigma value."""
    if isinstance(value, SigmaTimestampPart):
        return timestamp_part_test(value)
    for kind, build in (
        (SigmaNumber, number_test),
        (SigmaBool, bool_test),
        (SigmaRegularExpression, regex_test),
        (SigmaCompareExpression, compare_test),
        (SigmaNull, null_test),
    ):
        if isinstance(value, kind):
            return build(value)
    if isinstance(value, SigmaCIDRExpression):
        return cidr_test([value])
    if isinstance(value, SigmaString):
        return scalar_tests([value])[0]
    raise RuleCompileError(f"unsupported Sigma value type {type(value).__name__}")

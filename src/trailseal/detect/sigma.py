"""Sigma detection rules (parsed by pySigma) compiled into predicates over sealed events.

``compile_rule(rule)`` walks the rule's condition (``and``/``or``/``not``, ``1 of x*``, ``all of
them``, parentheses) and its detections once and returns ``Callable[[dict], bool]``. Field names
go through the processing pipeline (fields.py); values become precompiled tests (matchers.py);
keywords are searched in the event's raw text with one RE2 pass per event (text.py).

Semantics worth knowing: a missing field matches only ``null`` (and ``exists: false``); a list
value in the event matches when any element matches; ``|all`` needs every value to match some
element; ``exists`` means present and not null.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionIdentifier,
    ConditionNOT,
    ConditionOR,
    ConditionSelector,
)
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    Placeholder,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
)

from trailseal.detect.fields import FieldPipeline, profile_for
from trailseal.detect.matchers import (
    RuleCompileError,
    ValueTest,
    as_text,
    scalar_tests,
    string_regex,
)
from trailseal.detect.paths import MISSING, Accessor
from trailseal.detect.text import TextIndex

Predicate = Callable[[dict], bool]


@dataclass
class CompileContext:
    """What compiling needs besides the rule: field pipeline, keyword index, placeholders."""

    pipeline: FieldPipeline = field(default_factory=FieldPipeline)
    text: TextIndex = field(default_factory=TextIndex)
    placeholders: Mapping[str, list] = field(default_factory=dict)


def compile_rule(rule: SigmaRule, context: CompileContext | None = None) -> Predicate:
    """The rule's detection as one predicate over an event dict."""
    context = context or CompileContext()
    profile = profile_for(rule.logsource)
    detections = rule.detection
    cache: dict[str, Predicate] = {}

    def detection(name: str) -> Predicate:
        if name not in cache:
            cache[name] = _detection(detections[name], profile, context)
        return cache[name]

    conditions = [
        _condition(c.parse(postprocess=False), detections, detection) for c in detections.parsed_condition
    ]
    return any_of(conditions)


# -- boolean structure ----------------------------------------------------------------------


def _cost(predicate: Predicate) -> int:
    return getattr(predicate, "cost", 1)


def _with_cost(predicate: Predicate, cost: int) -> Predicate:
    try:
        predicate.cost = cost  # type: ignore[attr-defined]
    except AttributeError:  # bound builtins
        pass
    return predicate


def all_of(predicates: list[Predicate]) -> Predicate:
    """Conjunction, cheapest operands first."""
    ordered = sorted(predicates, key=_cost)
    cost = sum(_cost(p) for p in ordered)
    if len(ordered) == 1:
        return ordered[0]
    if len(ordered) == 2:
        a, b = ordered
        return _with_cost(lambda e: a(e) and b(e), cost)
    chain = tuple(ordered)

    def conjunction(event: dict) -> bool:
        for predicate in chain:
            if not predicate(event):
                return False
        return True

    return _with_cost(conjunction, cost)


def any_of(predicates: list[Predicate]) -> Predicate:
    """Disjunction, cheapest operands first."""
    ordered = sorted(predicates, key=_cost)
    cost = sum(_cost(p) for p in ordered)
    if len(ordered) == 1:
        return ordered[0]
    if len(ordered) == 2:
        a, b = ordered
        return _with_cost(lambda e: a(e) or b(e), cost)
    chain = tuple(ordered)

    def disjunction(event: dict) -> bool:
        for predicate in chain:
            if predicate(event):
                return True
        return False

    return _with_cost(disjunction, cost)


def negation(predicate: Predicate) -> Predicate:
    return _with_cost(lambda e: not predicate(e), _cost(predicate))


def _condition(node: Any, detections, detection: Callable[[str], Predicate]) -> Predicate:
    """Compile a parsed (not post-processed) condition tree."""
    if isinstance(node, ConditionIdentifier):
        return detection(node.identifier)
    if isinstance(node, ConditionSelector):
        names = [ident.identifier for ident in node.resolve_referenced_detections(detections)]
        if not names:
            raise RuleCompileError(f"'{node.args[0]} of {node.pattern}' matches no detection")
        parts = [detection(name) for name in names]
        return all_of(parts) if node.cond_class is ConditionAND else any_of(parts)
    if isinstance(node, ConditionNOT):
        return negation(_condition(unwrap(node.args[0]), detections, detection))
    if isinstance(node, (ConditionAND, ConditionOR)):
        parts = [_condition(unwrap(arg), detections, detection) for arg in node.args]
        return all_of(parts) if isinstance(node, ConditionAND) else any_of(parts)
    raise RuleCompileError(f"unsupported condition element {type(node).__name__}")


def unwrap(arg: Any) -> Any:
    """The operand inside pyparsing's one-element wrappers."""
    while not hasattr(arg, "postprocess") and len(arg) == 1:
        arg = arg[0]
    return arg


# -- detections and items -------------------------------------------------------------------


def _detection(detection: SigmaDetection, profile: str, context: CompileContext) -> Predicate:
    """A detection: its items AND-linked (a map) or OR-linked (a list)."""
    parts = [
        _detection(item, profile, context)
        if isinstance(item, SigmaDetection)
        else compile_item(item, profile, context)
        for item in detection.detection_items
    ]
    if not parts:
        raise RuleCompileError("empty detection")
    return all_of(parts) if detection.item_linking is ConditionAND else any_of(parts)


def compile_item(item: SigmaDetectionItem, profile: str, context: CompileContext) -> Predicate:
    """One detection item (a field with its values, or keywords) as a predicate."""
    values = expand_placeholders(item.value, context.placeholders)
    if item.field is None:
        predicate = _keywords(values, item.value_linking is ConditionAND, context.text)
    else:
        get = context.pipeline.accessor(item.field, profile)
        predicate = _field_item(get, values, item.value_linking is ConditionAND, profile, context)
    return negation(predicate) if item.negated else predicate


def _field_item(get: Accessor, values: list, every: bool, profile: str, context: CompileContext) -> Predicate:
    """A field compared with its values (OR-linked, or all of them with |all)."""
    if not values:
        return _null(get)
    if every:
        return all_of([_field_item(get, [v], False, profile, context) for v in values])
    groups: list[Predicate] = []
    plain: list = []
    for value in values:
        if isinstance(value, SigmaExpansion):
            groups.append(_field_item(get, value.values, False, profile, context))
        elif isinstance(value, SigmaNull):
            groups.append(_null(get))
        elif isinstance(value, SigmaExists):
            groups.append(_exists(get, bool(value)))
        elif isinstance(value, SigmaFieldReference):
            other = context.pipeline.accessor(value.field, profile)
            groups.append(_fieldref(get, other, value))
        else:
            plain.append(value)
    if plain:
        groups.insert(0, _value_item(get, scalar_tests(plain)))
    return any_of(groups)


def _value_item(get: Accessor, tests: list[ValueTest]) -> Predicate:
    """Present value (or any list element) passes any of the tests."""
    test = tests[0] if len(tests) == 1 else (lambda v, t=tuple(tests): any(x(v) for x in t))
    on_str = getattr(test, "text_test", test)  # strings skip the scalar-to-text step

    def predicate(event: dict) -> bool:
        value = get(event)
        if type(value) is str:
            return on_str(value)
        if value is MISSING or value is None:
            return False
        if type(value) is list:
            for element in value:
                if test(element):
                    return True
            return False
        return test(value)

    return predicate


def _null(get: Accessor) -> Predicate:
    def predicate(event: dict) -> bool:
        value = get(event)
        return value is MISSING or value is None

    return predicate


def _exists(get: Accessor, wanted: bool) -> Predicate:
    return lambda event: (get(event) not in (MISSING, None)) is wanted


def _fieldref(get: Accessor, other: Accessor, ref: SigmaFieldReference) -> Predicate:
    """Compare two fields' texts case-insensitively (equal, or contains/starts/ends with)."""

    def predicate(event: dict) -> bool:
        left, right = as_text(get(event)), as_text(other(event))
        if left is None or right is None:
            return False
        left, right = left.lower(), right.lower()
        if ref.starts_with and ref.ends_with:
            return right in left
        if ref.starts_with:
            return left.startswith(right)
        if ref.ends_with:
            return left.endswith(right)
        return left == right

    return predicate


# -- keywords -------------------------------------------------------------------------------


def _keywords(values: list, every: bool, text: TextIndex) -> Predicate:
    """Values searched anywhere in the event's raw text."""
    flat = _flatten_expansions(values) if not every else values
    if every:
        return all_of([_keywords([v], False, text) for v in flat])
    folded: set[int] = set()
    cased: set[int] = set()
    for value in flat:
        is_cased, handle = text.add(*_keyword_pattern(value))
        (cased if is_cased else folded).add(handle)
    want_folded, want_cased = frozenset(folded), frozenset(cased)

    def predicate(event: dict) -> bool:
        hit_folded, hit_cased = text.hits(event, wanted=want_folded)
        return not want_folded.isdisjoint(hit_folded) or not want_cased.isdisjoint(hit_cased)

    return _with_cost(predicate, 20)


def _keyword_pattern(value: Any) -> tuple[str, bool]:
    """An RE2 search pattern for one keyword value, and whether it is case-sensitive."""
    if isinstance(value, SigmaRegularExpression):
        flags = "".join(sorted({f.name[0].lower() for f in value.flags} & {"i", "m", "s"}))
        return (f"(?{flags})" if flags else "") + str(value.regexp.to_plain()), True
    if isinstance(value, SigmaString):
        if isinstance(value, SigmaCasedString):
            return string_regex(value), True
        return _fold_regex(value), False
    if isinstance(value, SigmaNumber):
        return str(value.number), False
    raise RuleCompileError(f"unsupported keyword value {type(value).__name__}")


def _fold_regex(value: SigmaString) -> str:
    lowered = SigmaString()
    lowered.s = [p.lower() if isinstance(p, str) else p for p in value.s]
    return string_regex(lowered)


def _flatten_expansions(values: list) -> list:
    out: list = []
    for value in values:
        out.extend(value.values) if isinstance(value, SigmaExpansion) else out.append(value)
    return out


# -- placeholders ---------------------------------------------------------------------------


def expand_placeholders(values: list, config: Mapping[str, list]) -> list:
    """Replace %name% placeholders by configured values (CIDR values become networks)."""
    out: list = []
    for value in values:
        if not (isinstance(value, SigmaString) and value.contains_placeholder()):
            out.append(value)
            continue
        for expanded in value.replace_placeholders(lambda p: _placeholder_values(p, config)):
            out.append(_maybe_network(expanded))
    return out


def _placeholder_values(placeholder: Placeholder, config: Mapping[str, list]):
    if placeholder.name not in config:
        raise RuleCompileError(f"placeholder %{placeholder.name}% has no configured values")
    for item in config[placeholder.name]:
        yield SigmaString(str(item))


def _maybe_network(value: SigmaString) -> Any:
    if not all(isinstance(part, str) for part in value.s):
        return value
    text = "".join(value.s)
    if "/" in text:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return value
        return SigmaCIDRExpression(text)
    return value

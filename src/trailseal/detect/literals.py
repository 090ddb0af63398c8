"""Necessary literals: text a rule cannot match without, used to skip rules cheaply.

If a rule matches an event, at least one of its necessary literals (lower-cased) occurs in the
event's raw text (text.py), because every value a field test reads comes from the event and
appears in that text. The engine looks all literals up with the same single RE2 pass it runs
for keywords and evaluates only the rules whose literals occurred. Rules for which no such set
can be proven (negations, numbers, regexes, CIDRs, fields derived from time) are always run.
"""

from __future__ import annotations

from sigma.conditions import ConditionAND, ConditionIdentifier, ConditionNOT, ConditionSelector
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaExpansion, SigmaString

from trailseal.detect.fields import profile_for
from trailseal.detect.sigma import CompileContext, expand_placeholders, unwrap

NOT_IN_TEXT = frozenset({"time_hour", "time_weekday", "clock_skew_seconds"})
Literals = frozenset[str] | None


def necessary_literals(rule: SigmaRule, context: CompileContext) -> Literals:
    """Lower-cased strings of which one must occur in a matching event's raw text, or None."""
    profile = profile_for(rule.logsource)
    detections = rule.detection

    def detection(name: str) -> Literals:
        return _detection(detections[name], profile, context)

    found = [
        _condition(c.parse(postprocess=False), detections, detection) for c in detections.parsed_condition
    ]
    return _union(found)


def _union(parts: list[Literals]) -> Literals:
    if any(p is None for p in parts):
        return None
    return frozenset().union(*parts)


def _rarity(literal: str) -> int:
    """A guess at how selective a literal is: longer is rarer, punctuation rarer than letters."""
    return len(literal) + 2 * sum(not c.isalnum() for c in literal)


def _best(parts: list[Literals]) -> Literals:
    """For a conjunction: the child whose least selective literal is most selective."""
    known = [p for p in parts if p]
    return max(known, key=lambda p: (min(map(_rarity, p)), -len(p)), default=None)


def _condition(node, detections, detection) -> Literals:
    if isinstance(node, ConditionIdentifier):
        return detection(node.identifier)
    if isinstance(node, ConditionSelector):
        parts = [detection(i.identifier) for i in node.resolve_referenced_detections(detections)]
        return _best(parts) if node.cond_class is ConditionAND else _union(parts)
    if isinstance(node, ConditionNOT):
        return None
    parts = [_condition(unwrap(arg), detections, detection) for arg in node.args]
    return _best(parts) if isinstance(node, ConditionAND) else _union(parts)


def _detection(detection: SigmaDetection, profile: str, context: CompileContext) -> Literals:
    parts = [
        _detection(item, profile, context)
        if isinstance(item, SigmaDetection)
        else _item(item, profile, context)
        for item in detection.detection_items
    ]
    return _best(parts) if detection.item_linking is ConditionAND else _union(parts)


def _item(item: SigmaDetectionItem, profile: str, context: CompileContext) -> Literals:
    if item.negated:
        return None
    if item.field is not None and set(context.pipeline.candidates(item.field, profile)) & NOT_IN_TEXT:
        return None
    values = expand_placeholders(item.value, context.placeholders)
    per_value = [_value_literals(v) for v in values]
    if not per_value:
        return None
    return _best(per_value) if item.value_linking is ConditionAND else _union(per_value)


def _value_literals(value) -> Literals:
    if isinstance(value, SigmaExpansion):
        return _union([_value_literals(v) for v in value.values])
    if type(value) is not SigmaString and not isinstance(value, SigmaString):
        return None
    pieces = [p for p in value.s if isinstance(p, str)]
    longest = max(pieces, key=len, default="")
    if not longest or not longest.isascii():  # gating is byte-level: ASCII case folding only
        return None
    return frozenset({longest.lower()})

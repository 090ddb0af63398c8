"""Rule guards: what a rule's condition already decides from the dispatch-key fields alone.

Events with the same action, category, outcome and source (kind, format, component) share a
dispatch key. A guard over-approximates a rule on those fields only: items on other fields count
as "maybe" (true); ``not`` is pushed down to the items (De Morgan) so that ``not 1 of filter_*``
still excludes on the key fields it names. A rule whose guard is false for a key can
never match an event with that key, so the engine leaves it out of that key's rule list.
"""

from __future__ import annotations

from sigma.conditions import ConditionAND, ConditionIdentifier, ConditionNOT, ConditionSelector
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaFieldReference

from trailseal.detect.fields import DispatchKey, profile_for
from trailseal.detect.sigma import CompileContext, Predicate, all_of, any_of, compile_item, negation, unwrap

KEY_PATHS = frozenset({"action", "category", "outcome", "source.kind", "source.format", "source.component"})
Approx = tuple[Predicate | None, bool]  # (None = maybe, exact?)


def key_stub(key: DispatchKey) -> dict:
    """An event holding only the dispatch-key fields."""
    kind, fmt, component, action, category, outcome = key
    return {
        "action": action,
        "category": category,
        "outcome": outcome,
        "source": {"kind": kind, "format": fmt, "component": component},
    }


def rule_guard(rule: SigmaRule, context: CompileContext) -> tuple[Predicate | None, bool]:
    """(test on key_stub(key) or None when key fields cannot rule the rule out, exact?).

    Exact means the rule reads nothing but key fields: its test *is* the rule for that key.
    """
    profile = profile_for(rule.logsource)
    detections = rule.detection

    def detection(name: str, negated: bool) -> Approx:
        return _detection(detections[name], profile, context, negated)

    parts = [
        _condition(c.parse(postprocess=False), detections, detection, False)
        for c in detections.parsed_condition
    ]
    return _or(parts)


def _and(parts: list[Approx]) -> Approx:
    """Conjunction: unknown parts are dropped (still sound), which makes it inexact."""
    known = [p for p, _ in parts if p is not None]
    exact = all(e for _, e in parts)
    return (all_of(known) if known else None), exact


def _or(parts: list[Approx]) -> Approx:
    if any(p is None for p, _ in parts):
        return None, False
    return any_of([p for p, _ in parts]), all(e for _, e in parts)


def _link(parts: list[Approx], conjunction: bool, negated: bool) -> Approx:
    """AND/OR of parts already carrying the polarity; negation swaps them (De Morgan)."""
    return _and(parts) if conjunction != negated else _or(parts)


def _condition(node, detections, detection, negated: bool) -> Approx:
    if isinstance(node, ConditionIdentifier):
        return detection(node.identifier, negated)
    if isinstance(node, ConditionSelector):
        parts = [detection(i.identifier, negated) for i in node.resolve_referenced_detections(detections)]
        return _link(parts, node.cond_class is ConditionAND, negated)
    if isinstance(node, ConditionNOT):
        return _condition(unwrap(node.args[0]), detections, detection, not negated)
    parts = [_condition(unwrap(arg), detections, detection, negated) for arg in node.args]
    return _link(parts, isinstance(node, ConditionAND), negated)


def _detection(detection: SigmaDetection, profile: str, context: CompileContext, negated: bool) -> Approx:
    parts = [
        _detection(item, profile, context, negated)
        if isinstance(item, SigmaDetection)
        else _key_item(item, profile, context, negated)
        for item in detection.detection_items
    ]
    return _link(parts, detection.item_linking is ConditionAND, negated)


def _key_item(item: SigmaDetectionItem, profile: str, context: CompileContext, negated: bool) -> Approx:
    """The item's real predicate (negated as needed) if it only reads a dispatch-key field."""
    if item.field is None or any(isinstance(v, SigmaFieldReference) for v in item.value):
        return None, False
    candidates = context.pipeline.candidates(item.field, profile)
    if not candidates or candidates[0] not in KEY_PATHS:
        return None, False
    predicate = compile_item(item, profile, context)
    return (negation(predicate) if negated else predicate), True

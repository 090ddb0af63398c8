"""Rules decided by a few field values, remembered per value.

Most rules that cannot be gated by literals (numbers, negations, derived fields such as
``clock_skew_seconds``) read one or two fields. Within one dispatch key the fields that are part
of the key are constant, so such a rule's result is a function of the values of its other fields.
The engine groups the rules of a key by the fields they read, reads those fields once per event,
and keeps, per group, which rules matched each distinct value (bounded; lists and objects are not
remembered; a group whose values hardly repeat stops remembering). Five rules on ``sc-status``
cost one field read and one dictionary lookup.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaCompareExpression, SigmaFieldReference

from trailseal.detect.derived import SKEW_SURELY_BELOW, clock_skew_seconds, skew_surely_below_a_minute
from trailseal.detect.fields import DispatchKey, profile_for
from trailseal.detect.sigma import CompileContext

MEMO_SIZE = 4096  # distinct values remembered per group before starting over
CHECK_EVERY = 512  # lookups between checks that remembering still pays (at least half hits)
KEY_POSITIONS = {"source.kind": 0, "source.format": 1, "source.component": 2, "action": 3, "category": 4,
                 "outcome": 5}
Chain = tuple[str, ...]  # the trailseal paths a Sigma field resolves to, in order


def rule_reads(rule: SigmaRule, context: CompileContext) -> dict[Chain, str] | None:
    """The field chains a rule reads (chain -> a Sigma name for it), or None if it reads raw text."""
    profile = profile_for(rule.logsource)
    reads: dict[Chain, str] = {}

    def walk(detection: SigmaDetection) -> bool:
        for item in detection.detection_items:
            if isinstance(item, SigmaDetection):
                if not walk(item):
                    return False
                continue
            if not _item_reads(item, profile, context, reads):
                return False
        return True

    if not all(walk(d) for d in rule.detection.detections.values()):
        return None
    return reads


def _item_reads(item: SigmaDetectionItem, profile: str, context: CompileContext, reads: dict) -> bool:
    if item.field is None:
        return False  # keywords read the raw text
    names = [item.field] + [v.field for v in item.value if isinstance(v, SigmaFieldReference)]
    for name in names:
        reads.setdefault(context.pipeline.candidates(name, profile), name)
    return True


def numeric_thresholds(rule: SigmaRule) -> tuple[float, ...] | None:
    """The bounds of a rule that is nothing but numeric comparisons of one field (``skew|gt: 300``),
    else None. For a number, where it falls among the bounds decides such a rule."""
    detections = rule.detection.detections
    if len(detections) != 1 or [c.strip() for c in rule.detection.condition] != list(detections):
        return None
    (detection,) = detections.values()
    items = detection.detection_items
    if not items or not all(isinstance(i, SigmaDetectionItem) for i in items):
        return None
    if len({i.field for i in items}) != 1 or items[0].field is None:
        return None
    values = [v for i in items for v in i.value]
    if any(i.negated or not i.value for i in items):
        return None
    if not all(isinstance(v, SigmaCompareExpression) for v in values):
        return None
    return tuple(v.number.number for v in values)


def reads_key_fields(reads: dict[Chain, str]) -> bool:
    """Whether any chain starts at a dispatch-key field (its value may differ between keys)."""
    return any(chain and chain[0] in KEY_POSITIONS for chain in reads)


def constant_in(chain: Chain, key: DispatchKey) -> bool:
    """Whether every event with this key gives the chain the same value (its first path is a
    key field that the key has)."""
    position = KEY_POSITIONS.get(chain[0]) if chain else None
    return position is not None and key[position] is not None


class MemoGroup:
    """Rules that read the same (non-constant) fields: their matches remembered by value."""

    __slots__ = ("rules", "memo", "direct", "evaluate", "matching")

    def __init__(self, rules: tuple, getters: list[Callable[[dict], Any]],
                 thresholds: tuple[float, ...] | None = None) -> None:
        """`thresholds`: every rule is numeric comparisons of the one field read, against these
        bounds; numbers are then remembered by where they fall among the bounds, not by value."""
        self.rules = rules
        self.memo: dict[Any, tuple] = {}
        self.direct = False  # values hardly repeat (e.g. a skew in µs): just run the rules
        self.evaluate: Callable[[dict], tuple] = _evaluator(rules)  # runs the rules themselves
        # matching(event): the group's rules that match the event, in rule order
        bounds = sorted(thresholds or ())
        self.matching: Callable[[dict], tuple] = self._remembering(getters, bounds)
        sure = _sure_bin(getters, bounds)
        if sure is not None:
            self.matching = self._skipping(self.matching, *sure)

    def _skipping(self, general: Callable[[dict], tuple], surely: Callable[[dict], bool],
                  key: tuple) -> Callable[[dict], tuple]:
        """matching() that, when `surely` proves the value falls in the bin `key` and that bin's
        answer is remembered, returns it without computing the value."""
        memo = self.memo

        def matching(event: dict) -> tuple:
            if surely(event):
                found = memo.get(key)
                if found is not None:
                    return found
            return general(event)

        return matching

    def _remembering(self, getters: list[Callable[[dict], Any]], bounds: list) -> Callable[[dict], tuple]:
        """matching() while remembering pays: read the fields, look their values up, run the
        rules only for values not seen yet; every CHECK_EVERY lookups, check that most hit."""
        many = len(getters) != 1
        read = _tuple_reader(getters) if many else getters[0]
        memo, evaluate = self.memo, self.evaluate
        lookups = misses = 0

        def matching(event: dict) -> tuple:
            nonlocal lookups, misses
            value = read(event)
            kind = type(value)
            if kind is str:
                key = value
            elif many:
                key = _tuple_key(value)
                if key is _UNHASHABLE:
                    return evaluate(event)
            elif kind is list or kind is dict:
                return evaluate(event)
            elif bounds and (kind is float or kind is int) and value == value:  # not NaN
                key = ("<", bisect.bisect_left(bounds, value), bisect.bisect_right(bounds, value))
            else:
                key = (kind, value)
            lookups += 1
            found = memo.get(key)
            if found is None:
                found = evaluate(event)
                misses += 1
                if len(memo) >= MEMO_SIZE:
                    memo.clear()
                memo[key] = found
            if lookups >= CHECK_EVERY:
                if misses * 2 > lookups:
                    self._stop_remembering()
                lookups = misses = 0
            return found

        return matching

    def _stop_remembering(self) -> None:
        """Most lookups missed: the values hardly repeat, so just run the rules from now on."""
        self.direct = True
        self.memo.clear()
        self.matching = self.evaluate


def _sure_bin(getters: list[Callable[[dict], Any]], bounds: list) -> tuple[Callable, tuple] | None:
    """(a cheap check, the memo key of the bin it proves) for a group on clock_skew_seconds whose
    bounds all lie outside [0, 60]: every skew under a minute then falls in one bin."""
    if len(getters) != 1 or getters[0] is not clock_skew_seconds or not bounds:
        return None
    if any(0 <= bound <= SKEW_SURELY_BELOW for bound in bounds):
        return None
    below = bisect.bisect_left(bounds, 0.0)
    return skew_surely_below_a_minute, ("<", below, below)


def _evaluator(rules: tuple) -> Callable[[dict], tuple]:
    """The rules of a group run on an event: those that match, in rule order."""
    if len(rules) == 1:
        predicate = rules[0].predicate
        return lambda event: rules if predicate(event) else ()
    return lambda event: tuple([r for r in rules if r.predicate(event)])


_UNHASHABLE = object()


def _memo_key(value: Any) -> Any:
    """Strings as themselves; other scalars with their type (True, 1 and 1.0 are equal in Python
    but not in Sigma); lists and objects are not remembered."""
    kind = type(value)
    if kind is str:
        return value
    if kind is list or kind is dict:
        return _UNHASHABLE
    return (kind, value)


def _tuple_key(values: tuple) -> Any:
    for value in values:
        if type(value) is not str:
            break
    else:
        return values  # all text: the values are their own key
    keys = tuple([_memo_key(v) for v in values])
    return _UNHASHABLE if _UNHASHABLE in keys else keys


def _tuple_reader(getters: list[Callable[[dict], Any]]) -> Callable[[dict], tuple]:
    """The values of several fields as one tuple (unrolled for the usual two to four)."""
    if len(getters) == 2:
        first, second = getters
        return lambda event: (first(event), second(event))
    if len(getters) == 3:
        first, second, third = getters
        return lambda event: (first(event), second(event), third(event))
    if len(getters) == 4:
        first, second, third, fourth = getters
        return lambda event: (first(event), second(event), third(event), fourth(event))
    chain = tuple(getters)
    return lambda event: tuple([get(event) for get in chain])

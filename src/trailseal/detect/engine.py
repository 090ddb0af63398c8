"""The detection engine: Sigma rules and correlations run over the sealed event stream."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationRule,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)
from sigma.rule import SigmaDetection, SigmaRule
from sigma.rule.base import SigmaRuleBase

from trailseal.detect.correlate import CorrelationSpec, Correlator, Match
from trailseal.detect.derived import epoch_seconds
from trailseal.detect.fields import FieldPipeline, dispatch_key, logsource_predicate, profile_for
from trailseal.detect.guard import key_stub, rule_guard
from trailseal.detect.literals import necessary_literals
from trailseal.detect.matchers import RuleCompileError
from trailseal.detect.memo import (
    KEY_POSITIONS,
    MemoGroup,
    constant_in,
    numeric_thresholds,
    reads_key_fields,
    rule_reads,
)
from trailseal.detect.sigma import CompileContext, Predicate, compile_rule

BUILTIN_DIR = Path(__file__).with_name("rules")
SUPPORTED_CORRELATIONS = frozenset({"event_count", "value_count", "temporal", "temporal_ordered"})
BUSINESS_HOURS = (8, 18)  # [start, end) in the engine's time zone
WEEKEND = (6, 7)  # ISO weekdays


def offhours_placeholders(
    start: int = BUSINESS_HOURS[0], end: int = BUSINESS_HOURS[1], weekend: Iterable[int] = WEEKEND
) -> dict[str, list[int]]:
    """Placeholder values for the built-in out-of-hours rule."""
    return {
        "trailseal_offhours": [h for h in range(24) if not start <= h < end],
        "trailseal_weekend": list(weekend),
    }


DEFAULT_PLACEHOLDERS: dict[str, list] = offhours_placeholders()


@dataclass(frozen=True)
class Alert:
    """A rule that fired: who wrote it, how bad, and which sealed events it points at."""

    rule_id: str
    title: str
    level: str
    author: str | None
    tags: list[str]
    events: list[tuple[str, Any]]  # (log, index) of the sealed events
    group: dict[str, Any] | None = None  # correlation group-by values
    first_time: str | None = None
    last_time: str | None = None
    rolled_up: int = 0  # alerts of this rule folded into this one by storm control (alerts/rollup.py)


@dataclass
class _Rule:
    """A loaded rule (single or correlation) with what the engine needs to run it."""

    id: str
    title: str
    level: str
    author: str | None
    tags: list[str]
    output: bool
    group_by: list[str] = field(default_factory=list)
    predicate: Predicate | None = None
    covers: Any = None
    guard: Predicate | None = None
    exact_guard: bool = False  # the guard is the whole rule: no need to run the predicate
    handles: frozenset[int] = frozenset()  # necessary literals in the text index (empty: always run)
    keywords: bool = False  # has keyword items (reads the raw text)
    keyword_handles: frozenset[int] = frozenset()  # folded text patterns its keyword items test
    reads: dict | None = None  # field chains the predicate reads (None: it reads the raw text)
    thresholds: tuple | None = None  # the bounds, if the rule only compares one field with numbers
    position: int = 0  # order among the engine's rules (alerts and correlation feeds keep it)
    correlator: Correlator | None = None
    consumers: list[_Rule] = field(default_factory=list)


def rule_id(rule: SigmaRuleBase) -> str:
    """A rule's stable identifier: its id, else its name, else its title."""
    return str(rule.id) if rule.id else (rule.name or rule.title)


class Engine:
    """Runs a set of Sigma rules: ``process(event)`` returns the alerts that event raises."""

    def __init__(
        self,
        collection: SigmaCollection,
        placeholders: Mapping[str, list] | None = None,
        timezone: str | None = None,
        lateness: float = 60.0,
        max_groups: int = 100_000,
        max_entries: int = 10_000,
    ) -> None:
        values = {**DEFAULT_PLACEHOLDERS, **(placeholders or {})}
        self.context = CompileContext(FieldPipeline(timezone=timezone), placeholders=values)
        self.options = {"lateness": lateness, "max_groups": max_groups, "max_entries": max_entries,
                        "keyers": {}}
        self._accessors: dict[tuple[str, str], Any] = {}  # (field, profile) -> accessor, for correlations
        self.rules: list[_Rule] = []
        self._by_object: dict[int, _Rule] = {}
        for rule in collection:
            self._add(rule)
        self._singles = [r for r in self.rules if r.predicate is not None]
        self._closing = [r for r in self.rules if r.correlator is not None and r.correlator.closing]
        self._dispatch: dict[tuple, _Plan] = {}
        self._shared_memos: dict[tuple, MemoGroup] = {}  # groups valid under every dispatch key
        self._moment_of: dict | None = None  # the event whose time was last parsed, and that time
        self._moment: float | None = None

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_paths(
        cls,
        paths: Iterable[str | Path],
        placeholders: Mapping[str, list] | str | Path | None = None,
        **options: Any,
    ) -> Engine:
        """Load every *.yml rule under the given files and directories."""
        collection = SigmaCollection.load_ruleset([Path(p) for p in paths])
        return cls(collection, load_placeholders(placeholders), **options)

    @classmethod
    def builtin(cls, placeholders: Mapping[str, list] | str | Path | None = None, **options: Any) -> Engine:
        """The built-in pack shipped in trailseal/detect/rules."""
        return cls.from_paths([BUILTIN_DIR], placeholders, **options)

    def _add(self, rule: SigmaRuleBase) -> None:
        loaded = _Rule(
            id=rule_id(rule),
            title=rule.title,
            level=str(rule.level or "medium"),
            author=rule.author,
            tags=[f"{t.namespace}.{t.name}" for t in rule.tags],
            output=rule._output,
            position=len(self.rules),
        )
        if isinstance(rule, SigmaRule):
            before = self.context.text.folded_count()
            loaded.predicate = compile_rule(rule, self.context)
            loaded.keyword_handles = frozenset(range(before, self.context.text.folded_count()))
            loaded.covers = logsource_predicate(rule.logsource)
            loaded.guard, loaded.exact_guard = rule_guard(rule, self.context)
            literals = necessary_literals(rule, self.context) or ()
            loaded.handles = frozenset(self.context.text.add_literal(lit) for lit in literals)
            loaded.keywords = _has_keywords(rule)
            loaded.reads = rule_reads(rule, self.context)
            loaded.thresholds = numeric_thresholds(rule) if loaded.reads and len(loaded.reads) == 1 else None
        elif isinstance(rule, SigmaCorrelationRule):
            loaded.group_by = list(rule.group_by or [])
            loaded.correlator = Correlator(self._spec(rule, loaded.id), **self.options)
            for ref in rule.referenced_rules:
                self._by_object[id(ref.rule)].consumers.append(loaded)
        self._by_object[id(rule)] = loaded
        self.rules.append(loaded)

    def _spec(self, rule: SigmaCorrelationRule, name: str) -> CorrelationSpec:
        """Resolve a correlation's group-by and value fields for each referenced rule."""
        pipeline = self.context.pipeline
        if str(rule.type) not in SUPPORTED_CORRELATIONS:
            raise RuleCompileError(f"{rule.title}: correlation type {rule.type} is not supported")
        spec = CorrelationSpec(
            id=name,
            type=str(rule.type),
            timespan=float(rule.timespan.seconds),
            rules=[self._by_object[id(ref.rule)].id for ref in rule.referenced_rules],
            group_by={},
        )
        condition = rule.condition
        for ref in rule.referenced_rules:
            ref_id = self._by_object[id(ref.rule)].id
            profile = profile_for(_base_logsource(ref.rule))
            fields = [_alias(rule, ref, g) for g in rule.group_by or []]
            spec.group_by[ref_id] = [self._accessor(f, profile) for f in fields]
            if isinstance(condition, SigmaExtendedCorrelationCondition):
                continue
            if condition.fieldref:
                target = condition.fieldref
                if not isinstance(target, str):
                    if len(target) != 1:
                        raise RuleCompileError(
                            f"{rule.title}: value_count over several fields is not supported"
                        )
                    target = target[0]
                spec.value[ref_id] = pipeline.accessor(_alias(rule, ref, target), profile)
        if isinstance(condition, SigmaExtendedCorrelationCondition):
            spec.expression = _expression(condition.parsed, self._reference_ids(rule))
        elif condition is not None:
            spec.op, spec.count = condition.op.name.lower(), condition.count
        return spec

    def _accessor(self, name: str, profile: str) -> Any:
        """One accessor per field and profile: correlations sharing it share group keys."""
        found = self._accessors.get((name, profile))
        if found is None:
            found = self._accessors[name, profile] = self.context.pipeline.accessor(name, profile)
        return found

    def _reference_ids(self, rule: SigmaCorrelationRule) -> dict[str, str]:
        return {ref.reference: self._by_object[id(ref.rule)].id for ref in rule.referenced_rules}

    # -- running ------------------------------------------------------------------------------

    def process(self, event: dict, canonical: bytes | None = None) -> list[Alert]:
        """Run every applicable rule on one sealed event (dict with ``log`` and ``index``).

        `canonical` is the event's sealed bytes if at hand; keywords then search them directly.
        """
        alerts: list[Alert] = []
        source = event.get("source")
        if type(source) is not dict:
            source = {}
        key = (source.get("kind"), source.get("format"), source.get("component"),
               event.get("action"), event.get("category"), event.get("outcome"))
        plan = self._dispatch.get(key) or self._new_plan(key)
        hits = plan.text.hits(event, canonical) if plan.text is not None else ()
        for rule in plan.certain:
            self._matched(rule, event, alerts)
        matched = [rule for rule in plan.always if rule.predicate(event)] if plan.always else []
        for group in plan.groups:
            found = group.matching(event)
            if found:
                matched.extend(found)
        if matched:
            if len(matched) > 1:
                matched.sort(key=_position)
            for rule in matched:
                self._matched(rule, event, alerts)
        if hits and not plan.gate_handles.isdisjoint(hits):
            for rule in plan.candidates(hits):
                if rule.predicate(event):
                    self._matched(rule, event, alerts)
        if self._closing:
            self._advance(event, alerts)
        return alerts

    def flush(self) -> list[Alert]:
        """End of stream: close every open correlation window."""
        alerts: list[Alert] = []
        for rule in self._closing:
            for match in rule.correlator.flush():
                self._on_match(rule, match, alerts)
        return alerts

    def _matched(self, rule: _Rule, event: dict, alerts: list[Alert]) -> None:
        if rule.output:
            alerts.append(_single_alert(rule, event))
        if rule.consumers:
            if self._moment_of is not event:  # the event's time, parsed once per event
                self._moment_of, self._moment = event, epoch_seconds(event.get("time"))
            moment = self._moment
            for consumer in rule.consumers:
                for match in consumer.correlator.observe(rule.id, event, moment):
                    self._on_match(consumer, match, alerts)

    def _plan(self, event: dict) -> _Plan:
        key = dispatch_key(event)
        return self._dispatch.get(key) or self._new_plan(key)

    def _new_plan(self, key: tuple) -> _Plan:
        if len(self._dispatch) > 8192:
            self._dispatch.clear()
            self._shared_memos.clear()
        rules = self._applicable(key)
        guarded = [self._guarded(r, key) for r in rules]
        plan = self._dispatch[key] = _Plan(rules, key, self.context.pipeline, guarded, self._shared_memos)
        if plan.scan:
            plan.text = self.context.text.subset(plan.text_handles())
        return plan

    def _applicable(self, key: tuple) -> list[_Rule]:
        """Rules whose logsource covers the key and whose guard does not exclude it."""
        stub = key_stub(key)
        return [r for r in self._singles
                if r.covers(key) and (r.guard is None or not self._guarded(r, key) or r.guard(stub))]

    @staticmethod
    def _guarded(rule: _Rule, key: tuple) -> bool:
        """Whether the rule's guard may decide for this key. A key field the event lacks (None)
        may be read from a fallback path instead (`action` -> `attributes.action`), which the
        guard cannot see: rules reading such a field (or the raw text) are then just run."""
        if None not in key:
            return True
        if rule.reads is None:
            return False
        return not any(len(chain) > 1 and not constant_in(chain, key) and chain[0] in KEY_POSITIONS
                       for chain in rule.reads)

    def _moment_of_event(self, event: dict) -> float | None:
        """The event's time in epoch seconds, parsed once per event."""
        if self._moment_of is not event:
            self._moment_of, self._moment = event, epoch_seconds(event.get("time"))
        return self._moment

    def _feed(self, rule: _Rule, source: str, event: dict, alerts: list[Alert]) -> None:
        for match in rule.correlator.observe(source, event, self._moment_of_event(event)):
            self._on_match(rule, match, alerts)

    def _on_match(self, rule: _Rule, match: Match, alerts: list[Alert]) -> None:
        if rule.output:
            alerts.append(_correlation_alert(rule, match))
        for consumer in rule.consumers:
            self._feed(consumer, rule.id, match.event, alerts)

    def _advance(self, event: dict, alerts: list[Alert]) -> None:
        moment = self._moment if self._moment_of is event else epoch_seconds(event.get("time"))
        if moment is None:
            return
        for rule in self._closing:
            for match in rule.correlator.advance(moment):
                self._on_match(rule, match, alerts)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per correlation: live groups, evicted groups, events dropped as too late."""
        return {
            r.id: {
                "groups": len(r.correlator.groups),
                "evicted": r.correlator.evicted,
                "late_events": r.correlator.late_events,
            }
            for r in self.rules
            if r.correlator is not None
        }


class _Plan:
    """The rules for one dispatch key: certain matches, rules remembered by field value, rules
    always run, rules gated by literals."""

    __slots__ = ("certain", "groups", "always", "gated", "gate", "gate_handles", "keywords", "scan", "text")

    def __init__(self, rules: list[_Rule], key: tuple, pipeline: Any, guarded: list[bool], shared: dict) -> None:
        exact = [r.exact_guard and trusted for r, trusted in zip(rules, guarded, strict=True)]
        self.certain = tuple(r for r, decided in zip(rules, exact, strict=True) if decided)  # by the key alone
        rest = [r for r, decided in zip(rules, exact, strict=True) if not decided]
        ungated = [r for r in rest if not r.handles]
        self.groups = _memo_groups([r for r in ungated if r.reads is not None], key, pipeline, shared)
        self.always = tuple(r for r in ungated if r.reads is None)
        self.keywords = any(r.keywords for r in rules)
        self.gated = tuple(r for r in rest if r.handles)
        self.scan = bool(self.gated) or self.keywords
        self.gate: dict[int, list[int]] = {}
        for position, rule in enumerate(self.gated):
            for handle in rule.handles:
                self.gate.setdefault(handle, []).append(position)
        self.gate_handles = frozenset(self.gate)
        self.text = None  # the text patterns this key's rules use (set by the engine when it scans)

    def text_handles(self) -> frozenset[int]:
        """Literals of the gated rules and keywords of every rule that may run for this key."""
        handles = set(self.gate_handles)
        for rule in (*self.always, *self.gated, *(r for g in self.groups for r in g.rules)):
            handles |= rule.keyword_handles
        return frozenset(handles)

    def candidates(self, hits: frozenset[int]) -> list[_Rule]:
        """Gated rules with at least one literal among the hits, in rule order."""
        positions: set[int] = set()
        for handle in hits:
            found = self.gate.get(handle)
            if found:
                positions.update(found)
        return [self.gated[p] for p in sorted(positions)]


def _memo_groups(rules: list[_Rule], key: tuple, pipeline: Any, shared: dict) -> tuple[MemoGroup, ...]:
    """Group rules by the fields they read that are not constant under the key. A group whose
    rules read no key field gives the same answers under every key: one is shared by all keys."""
    by_fields: dict[tuple, list[_Rule]] = {}
    names: dict[tuple, str] = {}
    for rule in rules:
        varying = tuple(sorted(chain for chain in rule.reads if not constant_in(chain, key)))
        by_fields.setdefault(varying, []).append(rule)
        names.update((chain, rule.reads[chain]) for chain in varying)
    groups = []
    for chains, members in by_fields.items():
        identity = (tuple(r.position for r in members), chains)
        group = shared.get(identity)
        if group is None:
            getters = [_chain_getter(pipeline, chain, names[chain]) for chain in chains]
            group = MemoGroup(tuple(members), getters or [_nothing], _shared_thresholds(members, chains))
            if not any(reads_key_fields(r.reads) for r in members):
                shared[identity] = group
        groups.append(group)
    return tuple(groups)


def _shared_thresholds(rules: list[_Rule], chains: tuple) -> tuple | None:
    """All the rules' bounds, when each of them only compares the group's one field with numbers."""
    if len(chains) != 1 or any(r.thresholds is None for r in rules):
        return None
    return tuple(bound for r in rules for bound in r.thresholds)


def _chain_getter(pipeline: Any, chain: tuple, name: str):
    from trailseal.detect.paths import first_present

    return first_present([pipeline._single(path) for path in chain])


def _nothing(event: dict) -> None:
    return None


_position = operator.attrgetter("position")


# -- helpers ------------------------------------------------------------------------------------


def load_placeholders(source: Mapping[str, list] | str | Path | None) -> dict[str, list]:
    """Placeholder values from a mapping or a YAML file of ``name: [values]``."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in source.items()}
    data = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: placeholder file must map names to lists of values")
    return load_placeholders(data)


def _base_logsource(rule: SigmaRuleBase):
    """The logsource whose field names a rule's events use (first base rule of a chain)."""
    while isinstance(rule, SigmaCorrelationRule):
        rule = rule.referenced_rules[0].rule
    return rule.logsource


def _alias(rule: SigmaCorrelationRule, ref: SigmaRuleReference, name: str) -> str:
    """The field a referenced rule uses for a correlation field name (aliases resolved)."""
    alias = rule.aliases.aliases.get(name)
    if alias is None:
        return name
    for reference, target in alias.mapping.items():
        if reference.reference == ref.reference:
            return target
    return name


def _expression(node: Any, ids: dict[str, str]):
    """An extended temporal condition as a function of the set of rule ids seen."""
    if isinstance(node, SigmaRuleReference):
        wanted = ids[node.reference]
        return lambda seen: wanted in seen
    parts = [_expression(arg, ids) for arg in node.args]
    if isinstance(node, CorrelationConditionNOT):
        return lambda seen: not parts[0](seen)
    if isinstance(node, CorrelationConditionAND):
        return lambda seen: all(p(seen) for p in parts)
    if isinstance(node, CorrelationConditionOR):
        return lambda seen: any(p(seen) for p in parts)
    raise ValueError(f"unsupported correlation condition {type(node).__name__}")


def _has_keywords(rule: SigmaRule) -> bool:
    """Whether any detection of the rule has field-less (keyword) items."""

    def walk(detection: SigmaDetection) -> bool:
        return any(
            walk(i) if isinstance(i, SigmaDetection) else i.field is None for i in detection.detection_items
        )

    return any(walk(d) for d in rule.detection.detections.values())


def _single_alert(rule: _Rule, event: dict) -> Alert:
    return Alert(
        rule.id,
        rule.title,
        rule.level,
        rule.author,
        rule.tags,
        [(event.get("log", "default"), event.get("index"))],
        None,
        event.get("time"),
        event.get("time"),
    )


def _correlation_alert(rule: _Rule, match: Match) -> Alert:
    group = dict(zip(rule.group_by, match.group, strict=False)) if rule.group_by else None
    return Alert(
        rule.id,
        rule.title,
        rule.level,
        rule.author,
        rule.tags,
        list(match.event_indices),
        group,
        match.first_time,
        match.last_time,
    )

"""Sigma correlations over sliding event-time windows, with bounded state.

Semantics (also in docs/detection.md):

- Time is the event's ``time``. A window is ``[end - timespan, end]``; for counting conditions
  that can only grow (``gt``, ``gte``) and for ``temporal``/``temporal_ordered`` every arriving
  event is checked in the windows that contain it, so an alert fires as soon as it holds.
- Conditions that a later event could still break (``lt``, ``lte``, ``eq``, ``neq``) are decided
  when a window closes: windows start at a group's first event, last ``timespan``, and close when
  the watermark passes their end.
- Watermark = highest event time seen − ``lateness``. An event older than the watermark is too
  late: counted in ``late_events`` and ignored. Entries older than ``watermark − timespan`` are
  expired, and groups with nothing left are dropped.
- At most ``max_groups`` groups per rule (least recently used evicted, counted in ``evicted``) and
  ``max_entries`` entries per group (oldest dropped first).
- Group-by and ``value_count`` values compare case-insensitively (text is lower-cased, as in
  the rest of Sigma); an event missing a group-by field (or the counted field) is not counted.
- Dedupe: after an alert a group is muted for one timespan from the alert's last event, so a
  burst yields one alert per window, and a burst lasting T yields about ``T / timespan`` alerts.
"""

from __future__ import annotations

import bisect
import operator
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from trailseal.detect.derived import epoch_seconds
from trailseal.detect.paths import MISSING, Accessor

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}
GROWING = frozenset({"gt", "gte"})
EventRef = tuple[str, Any]


@dataclass(frozen=True)
class Match:
    """A correlation that held: rule, group key, the events in the window, and its time span."""

    rule: str
    group: tuple
    event_indices: list[EventRef]
    first_time: str
    last_time: str
    event: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass
class CorrelationSpec:
    """A correlation rule ready to run: accessors already resolved for each referenced rule."""

    id: str
    type: str  # event_count | value_count | temporal | temporal_ordered
    rules: list[str]  # referenced rule ids, in order
    timespan: float  # seconds
    group_by: dict[str, list[Accessor]]  # per referenced rule, one accessor per group-by field
    op: str = "gte"
    count: float = 1
    value: dict[str, Accessor] = field(default_factory=dict)  # value_count field per rule
    expression: Callable[[set[str]], bool] | None = None  # extended temporal condition


def format_epoch(seconds: float) -> str:
    """Epoch seconds as an RFC 3339 UTC timestamp with microseconds."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Group:
    """Time-sorted entries of one group, with the incremental window of its latest event."""

    __slots__ = ("times", "refs", "values", "last_event", "start", "counts", "muted_until", "closes_at",
                 "positions", "base")

    def __init__(self, counts_events: bool = False, ordered_rules: int = 0) -> None:
        self.times: list[float] = []
        self.refs: list[EventRef] = []
        self.values: list[Any] = _UNUSED if counts_events else []  # event_count needs no values
        self.last_event: dict = _NO_EVENT  # newest event: what a chained correlation sees (not every event)
        self.start = 0  # first entry inside the window that ends at the latest entry
        self.counts: dict[Any, int] = _UNUSED_COUNTS if counts_events else {}  # values in that window
        self.muted_until = _NEVER
        self.closes_at: float | None = None  # end of the open window (closing conditions)
        # temporal_ordered: per referenced rule, the numbers of its entries (an entry's number is
        # base + its position, so dropping the oldest entries renumbers nothing)
        self.positions: list[list[int]] | None = [[] for _ in range(ordered_rules)] if ordered_rules else None
        self.base = 0


_NO_EVENT: dict = {}
_UNUSED: list = []  # never written: event_count groups keep no values
_UNUSED_COUNTS: dict = {}
_NO_MATCHES: list = []  # the shared empty answer of observe (callers only read it)
_NEVER = float("-inf")


class Correlator:
    """Runs one correlation rule: feed it matches of its referenced rules, get Matches back."""

    def __init__(
        self,
        spec: CorrelationSpec,
        lateness: float = 60.0,
        max_groups: int = 100_000,
        max_entries: int = 10_000,
        max_evidence: int = 1000,
        keyers: dict | None = None,
    ) -> None:
        """`keyers`: a cache shared by the correlators of one engine, so that correlations grouping
        by the same accessors compute an event's group key once."""
        self.spec = spec
        self.lateness = lateness
        self.max_groups = max_groups
        self.max_entries = max_entries
        self.max_evidence = max_evidence
        self.groups: OrderedDict[tuple, _Group] = OrderedDict()
        self.compare = OPERATORS[spec.op]
        self.closing = spec.type in ("event_count", "value_count") and spec.op not in GROWING
        self.max_time = float("-inf")
        self.late_events = 0
        self.evicted = 0
        self._since_sweep = 0
        self._next_sweep = float("-inf")
        self._counts_values = spec.type == "value_count"
        self._counts_events = spec.type == "event_count"
        self._ordered_rules = len(spec.rules) if spec.type == "temporal_ordered" else 0
        self._timespan = spec.timespan
        self._count = spec.count
        # counting conditions that can only grow: observe() extends and tests the newest window inline
        self._inline = spec.type in ("event_count", "value_count") and not self.closing
        shared = {} if keyers is None else keyers
        # per referenced rule: (its group keyer, its counted-value reader or None, its position)
        self._feeds = {
            rule: (
                _shared_keyer(shared, spec.group_by.get(rule, ())),
                _shared_value_reader(shared, spec.value.get(rule)) if self._counts_values else None,
                position,
            )
            for position, rule in enumerate(spec.rules)
        }

    @property
    def watermark(self) -> float:
        """Event time below which arriving events are too late."""
        return self.max_time - self.lateness

    # -- feeding ------------------------------------------------------------------------------

    def observe(self, rule: str, event: dict, moment: float | None = None) -> list[Match]:
        """One event matched referenced rule `rule`; returns the Matches it completes.

        `moment` is the event's time in epoch seconds when the caller already parsed it.
        The returned list may be shared and empty: read it, do not keep or change it.
        """
        if moment is None:
            moment = epoch_seconds(event.get("time"))
        feed = self._feeds.get(rule)
        if moment is None or feed is None:
            return _NO_MATCHES
        group_key, read_value, value = feed  # value: the rule's position unless a counted value
        if moment > self.max_time:
            self.max_time = moment
            self._since_sweep += 1
            swept = self._sweep_if_due() if self._since_sweep >= 256 or self.closing else _NO_MATCHES
        elif moment < self.max_time - self.lateness:
            self.late_events += 1
            return _NO_MATCHES
        else:
            swept = _NO_MATCHES
        key = group_key(event)
        if None in key:
            return swept
        memo = group_key.memo  # [event, its key, its (log, index)]: the keyer just saw this event
        ref = memo[2]
        if ref is None:
            ref = memo[2] = (event.get("log", "default"), event.get("index"))
        if read_value is not None:
            value = read_value(event)
            if value is MISSING:
                return swept
        groups = self.groups
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(self._counts_events, self._ordered_rules)
            if len(groups) > self.max_groups:
                self._evict()
        else:
            groups.move_to_end(key)
        times = group.times
        if times and moment < times[-1]:
            match = self._late(key, group, moment, value, event, ref)
        elif self._inline:
            match = self._extend_counting(key, group, moment, value, event, ref)
        else:
            match = self._latest(key, group, moment, value, event, ref)
        if match is None:
            return swept
        if swept:
            swept.append(match)
            return swept
        return [match]

    def _add_newest(self, group: _Group, moment: float, value: Any, event: dict, ref: EventRef) -> list[float]:
        """Append the group's newest event, slide the window's start past the timespan and bound the
        group's size; the group's times."""
        times = group.times
        times.append(moment)
        group.refs.append(ref)
        group.last_event = event
        if group.positions is not None:
            group.positions[value].append(group.base + len(times) - 1)
        horizon = moment - self._timespan
        if self._counts_events:
            if times[group.start] < horizon:
                group.start = bisect.bisect_left(times, horizon, group.start)
        else:
            group.values.append(value)
            counts = group.counts
            counts[value] = counts.get(value, 0) + 1
            if times[group.start] < horizon:
                self._slide(group)
        if len(times) > self.max_entries:
            self._drop_front(group, len(times) - self.max_entries)
        return times

    def _extend_counting(
        self, key: tuple, group: _Group, moment: float, value: Any, event: dict, ref: EventRef
    ) -> Match | None:
        """_latest() for event_count and value_count with a growing condition, written out: the
        event is the group's newest; extend the latest window and test its count."""
        times = self._add_newest(group, moment, value, event, ref)
        if moment < group.muted_until:
            return None
        found = len(times) - group.start if self._counts_events else len(group.counts)
        if self.compare(found, self._count):
            return self._fire(key, group, group.start, len(times) - 1, event)
        return None

    def _latest(
        self, key: tuple, group: _Group, moment: float, value: Any, event: dict, ref: EventRef
    ) -> Match | None:
        """The event is the group's newest: extend the latest window and test it."""
        times = self._add_newest(group, moment, value, event, ref)
        if self.closing:
            if group.closes_at is None:
                group.closes_at = moment + self.spec.timespan
            return None
        if moment < group.muted_until:
            return None
        last = len(times) - 1
        if self._holds(group, group.start, last, latest=True):
            return self._fire(key, group, group.start, last, event)
        return None

    def _late(
        self, key: tuple, group: _Group, moment: float, value: Any, event: dict, ref: EventRef
    ) -> Match | None:
        """The event is older than the group's newest: insert it in time order and test the
        windows that contain it."""
        position = self._insert(group, moment, ref, value)
        if position == len(group.times) - 1:
            group.last_event = event
        if self.closing:
            if group.closes_at is None:
                group.closes_at = moment + self.spec.timespan
            return None
        return self._check(key, group, position, event)

    def advance(self, moment: float) -> list[Match]:
        """Move event time forward: close finished windows and expire old state."""
        if moment > self.max_time:
            self.max_time = moment
        self._since_sweep += 1
        return self._sweep_if_due()

    def _sweep_if_due(self) -> list[Match]:
        """Sweep every 256 events, and for closing conditions whenever the watermark moved on."""
        due = self.closing and self.watermark >= self._next_sweep
        if self._since_sweep < 256 and not due:
            return []
        self._since_sweep = 0
        self._next_sweep = self.watermark + 1.0
        return self._sweep()

    def _evict(self) -> None:
        self.groups.popitem(last=False)
        self.evicted += 1

    def _insert(self, group: _Group, moment: float, ref: EventRef, value: Any) -> int:
        """Insert a late entry in time order and recount the latest window. Returns its position."""
        times = group.times
        position = bisect.bisect_right(times, moment)
        times.insert(position, moment)
        group.refs.insert(position, ref)
        if not self._counts_events:
            group.values.insert(position, value)
        if group.positions is not None:
            _renumber(group)
        self._recount(group)
        if len(times) > self.max_entries:
            self._drop_front(group, len(times) - self.max_entries)
            position = max(0, position - 1)
        return position

    def _slide(self, group: _Group) -> None:
        """Advance the latest window's start past entries older than latest - timespan."""
        horizon = group.times[-1] - self.spec.timespan
        while group.times[group.start] < horizon:
            value = group.values[group.start]
            group.counts[value] -= 1
            if not group.counts[value]:
                del group.counts[value]
            group.start += 1

    def _recount(self, group: _Group) -> None:
        horizon = group.times[-1] - self.spec.timespan
        group.start = bisect.bisect_left(group.times, horizon)
        if self._counts_events:
            return
        counts: dict[Any, int] = {}
        for value in group.values[group.start :]:
            counts[value] = counts.get(value, 0) + 1
        group.counts = counts

    def _drop_front(self, group: _Group, count: int) -> None:
        """Forget the oldest entries; counts change only by those that were inside the latest window
        (then every entry left is inside it). Costs the entries dropped, not the window's size."""
        if count > group.start:
            if not self._counts_events:
                counts = group.counts
                for value in group.values[group.start : count]:
                    left = counts[value] - 1
                    if left:
                        counts[value] = left
                    else:
                        del counts[value]
            group.start = 0
        else:
            group.start -= count
        for name in ("times", "refs", "values"):
            del getattr(group, name)[:count]
        if group.positions is not None:
            group.base += count
            for numbers in group.positions:
                del numbers[: bisect.bisect_left(numbers, group.base)]

    # -- deciding -----------------------------------------------------------------------------

    def _check(self, key: tuple, group: _Group, position: int, event: dict) -> Match | None:
        """Does a window containing the entry at position satisfy the condition?"""
        moment = group.times[position]
        if moment < group.muted_until:
            return None
        last = len(group.times) - 1
        if position == last:
            window = (group.start, last)
            if self._holds(group, *window, latest=True):
                return self._fire(key, group, *window, event)
            return None
        end_limit = moment + self.spec.timespan
        end = position
        while end <= last and group.times[end] <= end_limit and end - position < 64:
            low = bisect.bisect_left(group.times, group.times[end] - self.spec.timespan)
            if self._holds(group, low, end, latest=False):
                return self._fire(key, group, low, end, event)
            end += 1
        return None

    def _holds(self, group: _Group, low: int, high: int, latest: bool) -> bool:
        kind = self.spec.type
        if kind == "event_count":
            return self.compare(high - low + 1, self.spec.count)
        if kind == "value_count":
            distinct = len(group.counts) if latest else len(set(group.values[low : high + 1]))
            return self.compare(distinct, self.spec.count)
        if kind == "temporal":
            present = set(group.counts) if latest else set(group.values[low : high + 1])
            return self._temporal(present)
        return _ordered(group, low, high)

    def _temporal(self, present: set[int]) -> bool:
        if self.spec.expression is not None:
            return self.spec.expression({self.spec.rules[i] for i in present})
        return len(present) == len(self.spec.rules)

    def _fire(self, key: tuple, group: _Group, low: int, high: int, event: dict) -> Match:
        """A Match for window [low, high]; `event` is the one that completed it."""
        group.muted_until = group.times[high] + self.spec.timespan
        refs = group.refs[low : high + 1]
        if len(refs) > self.max_evidence:
            refs = refs[: self.max_evidence // 2] + refs[-self.max_evidence // 2 :]
        return Match(
            self.spec.id,
            key,
            refs,
            format_epoch(group.times[low]),
            format_epoch(group.times[high]),
            event,
        )

    # -- closing windows and expiry --------------------------------------------------------------

    def _sweep(self) -> list[Match]:
        """Close due windows (closing conditions) and drop expired entries and groups."""
        horizon = self.watermark - self.spec.timespan
        out: list[Match] = []
        for key, group in self._sweep_candidates(horizon):
            if self.closing:
                out.extend(self._close_due(key, group))
            if group.times and group.times[-1] < horizon and group.closes_at is None:
                del self.groups[key]
            elif group.times and group.times[0] < horizon:
                self._drop_front(group, bisect.bisect_left(group.times, horizon))
        return out

    def _sweep_candidates(self, horizon: float) -> list[tuple[tuple, _Group]]:
        """(key, group) of every group for closing conditions; else of the stale prefix of the LRU order."""
        if self.closing:
            return list(self.groups.items())
        stale = []
        for item in self.groups.items():
            times = item[1].times
            if not times or times[0] >= horizon:
                break  # LRU order: the rest were touched more recently
            stale.append(item)
        return stale

    def _close_due(self, key: tuple, group: _Group) -> list[Match]:
        out: list[Match] = []
        while group.closes_at is not None and group.closes_at < self.watermark:
            end = group.closes_at
            low = bisect.bisect_left(group.times, end - self.spec.timespan)
            high = bisect.bisect_right(group.times, end) - 1
            if high >= low and self._holds(group, low, high, latest=False):
                out.append(self._fire(key, group, low, high, group.last_event))
            following = high + 1
            group.closes_at = (
                group.times[following] + self.spec.timespan if following < len(group.times) else None
            )
        return out

    def flush(self) -> list[Match]:
        """End of stream: close every open window."""
        self.max_time = float("inf")
        return self._sweep() if self.closing else []


def _ordered(group: _Group, low: int, high: int) -> bool:
    """The referenced rules seen in their listed order inside entries low..high: latest first, the
    newest entry of the last rule, before it the newest of the one before, ... (a binary search in
    each rule's entry numbers, not a scan of the window)."""
    base, below = group.base, group.base + high + 1
    for numbers in reversed(group.positions):
        found = bisect.bisect_left(numbers, below) - 1
        if found < 0 or numbers[found] < base + low:
            return False
        below = numbers[found]
    return True


def _renumber(group: _Group) -> None:
    """Each rule's entry numbers again, after an entry was inserted before others (a late event)."""
    for numbers in group.positions:
        numbers.clear()
    for position, value in enumerate(group.values):
        group.positions[value].append(group.base + position)


def _shared_keyer(cache: dict, getters: list[Accessor]) -> Callable[[dict], tuple]:
    """The keyer for these accessors from the cache; it remembers the key of the last event
    (several correlations fed the same event then compute its key once)."""
    identity = tuple(getters)
    found = cache.get(identity)
    if found is None:
        found = cache[identity] = _remembering(_keyer(getters))
    return found


def _shared_value_reader(cache: dict, get: Accessor | None) -> Callable[[dict], Any]:
    """The counted-value reader for this accessor from the cache (remembering the last event's
    value, as keyers do): value_count correlations over the same field read it once per event."""
    identity = ("value", get)
    found = cache.get(identity)
    if found is None:
        found = cache[identity] = _remembering(_value_reader(get))
    return found


def _remembering(keyer: Callable[[dict], Any]) -> Callable[[dict], Any]:
    """keyer, remembering its answer for the last event in `.memo`: [event, answer, slot] (the event
    is not changed while it is processed; the slot, reset for each new event, is the caller's)."""
    last: list = [None, None, None]

    def key_of(event: dict) -> Any:
        if last[0] is event:
            return last[1]
        key = last[1] = keyer(event)
        last[0] = event
        last[2] = None
        return key

    key_of.memo = last
    return key_of


def _keyer(getters: list[Accessor]) -> Callable[[dict], tuple]:
    """The group key of an event: its group-by values, case-folded (a missing one is None)."""
    if len(getters) == 1:
        (get,) = getters

        def one(event: dict) -> tuple:
            value = get(event)
            return (value.lower(),) if type(value) is str else (_group_value(value),)

        return one
    chain = tuple(getters)
    return lambda event: tuple([_group_value(get(event)) for get in chain])


def _value_reader(get: Accessor | None) -> Callable[[dict], Any]:
    """The counted value of an event for value_count (MISSING when absent or null)."""
    if get is None:
        return _missing

    def read(event: dict) -> Any:
        value = get(event)
        return MISSING if value is None or value is MISSING else _group_value(value)

    return read


def _missing(event: dict) -> Any:
    return MISSING


def _group_value(value: Any) -> Any:
    """A hashable, case-folded group or distinct value: lists become tuples, missing None."""
    if type(value) is str:
        return value.lower()
    if value is MISSING:
        return None
    if isinstance(value, list):
        return tuple(_group_value(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _group_value(v)) for k, v in value.items()))
    return value

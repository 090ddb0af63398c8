"""Retention: policies per log and category, legal holds, archive and expiry that keep the tree whole.

An entry lives in three stages, timed from ``received`` (our trusted clock, never the producer's):

- **hot** until ``received + hot``: its payload is in the store;
- **archived** until ``received + keep``: its payload is in a sealed, encrypted archive segment
  (locked until the segment's retention ends); reads fall back to the archive;
- **expired** from ``received + keep``: its payload is gone everywhere, its leaf hash and the tiles
  stay, so the tree and every proof still verify; it reads as "pruned by policy P on date D".

Entries under a legal hold never leave the hot store and never expire. Every stage boundary is exact
(``received + period <= now``; months and years are calendar months and years).

This module keeps its own tables in the store's database (``pruned``, ``archive_segments``,
``legal_holds``, ``legal_hold_ids``; SQLite or PostgreSQL, see retention_db.py) and works on its
connection; docs/retention.md lists the Store-protocol methods they could become.
"""

from __future__ import annotations

import bisect
import json
import queue
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any, NamedTuple

import msgspec

from trailseal.archive import Archive, ArchiveError, RetentionLocked, RotateReport, Written, rfc3339
from trailseal.archive import segment as seg
from trailseal.event import CATEGORIES
from trailseal.ledger import Verifier, leaf_hash, parse_checkpoint
from trailseal.ledger import verify as lv
from trailseal.query import index
from trailseal.retention_db import (
    SQLITE_SCHEMA,
    Transaction,
    connection,
    ensure_schema,
    is_postgres,
    source_sql,
    timestamp,
)
from trailseal.retention_vault import DRAIN_SECONDS, VaultExpiry, VaultExpiryDeferred, actor_entries, names_of
from trailseal.runtime import paused_gc
from trailseal.store.base import StoreError
from trailseal.store.sqlite import pragmas, scrub_free_pages

SEGMENT_ENTRIES = 65_536
BULK_CACHE_KIB_PER_ENTRY = 4  # SQLite page cache per segment entry while segments move (a segment's dirty pages)
BULK_MMAP_BYTES = 1 << 40  # SQLite's own cap applies (2 GiB as built by default)
# SQLite, on the connection that records moved segments, while they move:
_BULK_PRAGMAS = {
    # its commits stop copying the WAL into the database (a third of their cost); the background thread
    # does it between segments, alongside them (_bulk_writes yields that checkpoint)
    "wal_autocheckpoint": 0,
    # the pages the moved payloads free are not zeroed (zeroing them was 40% of each commit): the archive
    # keeps those very bytes until their keep ends, and apply zeroes the free pages then (_scrub_free_pages)
    "secure_delete": "FAST",
    # the rows it copies into `pruned` are read from the mapped file, not a pread per page (-20% for INSERT)
    "mmap_size": BULK_MMAP_BYTES,
}
FOREVER_LOCK_YEARS = 100
MAX_DRAIN_SECONDS = 600
_PAGE = 8192
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PERIOD = re.compile(r"(\d+)\s*(h|d|w|m|y)")

SCHEMA = SQLITE_SCHEMA  # what the SQLite store's database holds for retention


class RetentionError(ValueError):
    """Retention is misconfigured or was asked something impossible; the message says what to fix."""


class RetentionConfigError(RetentionError):
    """The data dir's `[retention]` table, or the archive it names, cannot be opened."""


def configured_retention(trail) -> Retention:
    """``Retention.from_trail``, every way its configuration or archive can fail raised as one
    RetentionConfigError that names the `[retention]` table (for the CLI and the API alike)."""
    from trailseal.archive.crypto import CryptoError

    try:
        return Retention.from_trail(trail)
    except (RetentionError, ValueError, ArchiveError, CryptoError, OSError, StoreError) as exc:
        raise RetentionConfigError(f"[retention] in trailseal.toml: {exc}") from None


# -- periods -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """A retention period: calendar months plus an exact duration, or forever."""

    text: str
    months: int = 0
    exact: timedelta = timedelta(0)
    forever: bool = False

    def after(self, moment: datetime) -> datetime | None:
        """moment + this period (None: never)."""
        if self.forever:
            return None
        return add_months(moment, self.months) + self.exact

    def cutoffs(self, now: datetime) -> tuple[str, str]:
        """(sure, maybe) as stored timestamps: m is due (after(m) <= now) if m <= sure, never if m > maybe."""
        sure = add_months(now - self.exact, -self.months)
        return rfc3339(sure), rfc3339(sure + timedelta(days=4 if self.months else 0))

    def due(self, received: str, now: datetime, sure: str) -> bool:
        """Whether an entry received then is past this period at now (exact, calendar-aware)."""
        return received <= sure or add_months(_moment(received), self.months) + self.exact <= now


def parse_period(text: str) -> Period:
    """Parse '36h', '90d', '12w', '3m' (months), '1y' or 'forever'; terms may add up: '1y 6m'."""
    text = str(text).strip().lower()
    if text in ("forever", "never"):
        return Period(text, forever=True)
    terms = _PERIOD.findall(text)
    if not terms or _PERIOD.sub("", text).strip():
        raise RetentionError(f"period {text!r}: use e.g. '36h', '90d', '12w', '3m', '1y' or 'forever'")
    months, exact = 0, timedelta(0)
    for count, unit in terms:
        n = int(count)
        months += {"m": n, "y": 12 * n}.get(unit, 0)
        exact += {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}.get(unit, timedelta(0))
    return Period(text, months, exact)


def add_months(moment: datetime, months: int) -> datetime:
    """moment moved by calendar months, the day clamped to the month's last (Jan 31 + 1m = Feb 28)."""
    if not months:
        return moment
    total = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(total, 12)
    last = (datetime(year + (month == 11), (month + 1) % 12 + 1, 1) - timedelta(days=1)).day
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last))


# -- policies ------------------------------------------------------------------------------------
class _PolicySpec(msgspec.Struct, forbid_unknown_fields=True):
    keep: str
    hot: str | None = None
    categories: list[str] | None = None
    logs: list[str] | None = None
    sources: list[str] | None = None


class _Source(msgspec.Struct):
    component: str | None = None
    kind: str | None = None


class _SourceOf(msgspec.Struct):
    source: _Source = msgspec.field(default_factory=_Source)


_source_of = msgspec.json.Decoder(_SourceOf).decode


def source_of(data: bytes) -> tuple[str | None, str | None]:
    """(source.component, source.kind) of a sealed entry."""
    found = _source_of(data).source
    return found.component, found.kind


@dataclass(frozen=True)
class Policy:
    """How long entries of some categories (in some logs, from some sources) stay hot, and how long they
    are kept."""

    name: str
    keep: Period
    hot: Period | None = None  # None: hot until kept no longer (never archived)
    categories: frozenset[str] | None = None  # None: every category
    logs: frozenset[str] | None = None  # None: every log
    sources: frozenset[str] | None = None  # source.component or source.kind values; None: every source

    @property
    def specificity(self) -> int:
        """A source beats a log beats a category beats the catch-all (and each combination the ones below)."""
        return 4 * (self.sources is not None) + 2 * (self.logs is not None) + (self.categories is not None)

    def covers(self, log: str, category: str) -> bool:
        """Whether this policy applies to entries of category in log, from some source."""
        return ((self.logs is None or log in self.logs)
                and (self.categories is None or category in self.categories))

    def governs(self, log: str, category: str, component: str | None = None, kind: str | None = None) -> bool:
        """Whether this policy applies to an entry of category in log from that source."""
        return self.covers(log, category) and (self.sources is None or component in self.sources
                                               or kind in self.sources)

    def describe(self) -> str:
        """'hot 90d, keep 1y' and what it covers."""
        hot = f"hot {self.hot.text}, " if self.hot else ""
        cats = ",".join(sorted(self.categories)) if self.categories else "every category"
        logs = f" in {','.join(sorted(self.logs))}" if self.logs else ""
        sources = f" from {','.join(sorted(self.sources))}" if self.sources else ""
        return f"{self.name}: {hot}keep {self.keep.text} ({cats}{logs}{sources})"


class Policies:
    """The configured policies; each (log, category) is governed by at most one, the most specific."""

    def __init__(self, policies: Iterable[Policy] = ()):
        """Check names and that no two equally specific policies overlap."""
        self.policies = list(policies)
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise RetentionError(f"duplicate retention policy names in {names}")
        _check_overlaps(self.policies)

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> Policies:
        """From `[retention.policies]`: `authentication = { hot = "90d", keep = "1y" }` ..."""
        return cls(_policy(name, spec) for name, spec in (conf.get("policies") or {}).items())

    @property
    def by_source(self) -> bool:
        """Whether some policy is chosen by source (then each entry's source decides, row by row)."""
        return any(policy.sources is not None for policy in self.policies)

    def for_entry(self, log: str, category: str, component: str | None = None,
                  kind: str | None = None) -> Policy | None:
        """The policy governing one entry, or None (kept forever, hot)."""
        matching = [p for p in self.policies if p.governs(log, category, component, kind)]
        return max(matching, key=lambda p: p.specificity) if matching else None

    def categories_by_policy(self, log: str) -> dict[str, list[str]]:
        """{policy name: categories of log it governs, for some source}."""
        result: dict[str, list[str]] = defaultdict(list)
        for category in CATEGORIES:
            sourced = [p for p in self.policies if p.sources is not None and p.covers(log, category)]
            for policy in [self.for_entry(log, category), *sourced]:
                if policy is not None:
                    result[policy.name].append(category)
        return dict(result)

    def get(self, name: str) -> Policy:
        """The policy called name."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise RetentionError(f"no retention policy {name!r}")


def _policy(name: str, raw: Any) -> Policy:
    """One policy from its config table."""
    if not _NAME.fullmatch(name):
        raise RetentionError(f"policy name {name!r}: use lower-case letters, digits, '-' and '_'")
    try:
        spec = msgspec.convert(raw, _PolicySpec)
    except msgspec.ValidationError as exc:
        raise RetentionError(f"retention policy {name!r}: {exc}") from None
    categories = spec.categories if spec.categories is not None else ([name] if name in CATEGORIES else None)
    unknown = set(categories or ()) - set(CATEGORIES)
    if unknown:
        raise RetentionError(f"retention policy {name!r}: unknown categories {sorted(unknown)}")
    if spec.sources is not None and not all(source.strip() for source in spec.sources):
        raise RetentionError(f"retention policy {name!r}: sources are source.component or source.kind values, "
                             "not empty")
    keep, hot = parse_period(spec.keep), parse_period(spec.hot) if spec.hot else None
    _check_hot(name, hot, keep)
    return Policy(name, keep, hot, frozenset(categories) if categories is not None else None,
                  frozenset(spec.logs) if spec.logs is not None else None,
                  frozenset(spec.sources) if spec.sources is not None else None)


def _check_hot(name: str, hot: Period | None, keep: Period) -> None:
    """hot must not outlast keep."""
    if hot is None or hot.forever or keep.forever:
        if hot is not None and hot.forever and not keep.forever:
            raise RetentionError(f"retention policy {name!r}: hot forever but keep {keep.text}")
        return
    probe = datetime(2001, 1, 31, tzinfo=UTC)
    if hot.after(probe) > keep.after(probe):
        raise RetentionError(f"retention policy {name!r}: hot {hot.text} is longer than keep {keep.text}")


def _check_overlaps(policies: Sequence[Policy]) -> None:
    """Two policies of equal specificity must not both govern a category in a log."""
    for i, a in enumerate(policies):
        for b in policies[i + 1:]:
            if a.specificity != b.specificity:
                continue
            cats = _overlap(a.categories, b.categories)
            logs = _overlap(a.logs, b.logs)
            if cats and logs and _overlap(a.sources, b.sources):
                raise RetentionError(f"retention policies {a.name!r} and {b.name!r} both govern "
                                     f"{sorted(cats)[0] if cats != {'*'} else 'every category'}")


def _overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> set[str]:
    """Common members; None means everything ('*')."""
    if a is None and b is None:
        return {"*"}
    return set(a if b is None else b if a is None else a & b)


# -- legal-hold queries --------------------------------------------------------------------------
_QUERY_FIELDS = {"log": "log", "category": "category", "action": "action", "outcome": "outcome",
                 "actor": "actor_id", "actor.id": "actor_id", "id": "id"}
_TERM = re.compile(r'(\w+(?:\.\w+)?):(?:"([^"]*)"|(\S+))')


ActorIds = Callable[[str], list[str]]


def compile_query(text: str, alias: str = "", actor_ids: ActorIds | None = None) -> tuple[str, list[str]]:
    """A hold query (`category:admin actor:alice action:user.* since:2026-01-01 until:...`) as SQL.

    Terms on different fields are AND-ed, repeated fields OR-ed; `*` is a wildcard; since/until
    compare the event's time; actor_ids(actor) gives the stored actor_id values of an actor (privacy
    commitments included). (To be replaced by query/language.py's parser once it covers these.)
    """
    terms = _TERM.findall(text)
    if not terms or _TERM.sub("", text).strip():
        raise RetentionError(f"hold query {text!r}: use field:value terms (fields: "
                             f"{', '.join(sorted(_QUERY_FIELDS))}, since, until)")
    groups: dict[str, list[str]] = defaultdict(list)
    for name, quoted, bare in terms:
        groups[name.lower()].append(quoted or bare)
    clauses, params = [], []
    for name, values in groups.items():
        if name in ("actor", "actor.id") and actor_ids is not None:
            values = [stored for actor in values for stored in actor_ids(actor)] or values
        clause, values = _query_clause(name, values, alias)
        clauses.append(clause)
        params += values
    return "(" + " AND ".join(clauses) + ")", params


def trail_actor_ids(trail) -> ActorIds:
    """actor -> the actor_id values the trail may store for it (``Protection.sealed_forms``)."""
    def resolve(actor: str) -> list[str]:
        logs = [info.name for info in trail.store.logs()]
        return trail.protection.sealed_forms(trail.store, actor, logs)
    return resolve


def _query_clause(name: str, values: list[str], alias: str) -> tuple[str, list[str]]:
    """One field's OR-ed condition."""
    if name in ("since", "until"):
        op = ">=" if name == "since" else "<"
        return " AND ".join([f"{alias}time {op} ?"] * len(values)), values
    column = _QUERY_FIELDS.get(name)
    if column is None:
        raise RetentionError(f"hold query: unknown field {name!r}")
    parts = [f"glob(?, {alias}{column})" if "*" in v else f"{alias}{column} = ?" for v in values]
    return "(" + " OR ".join(parts) + ")", values


# -- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrunedEntry:
    """An entry whose payload retention removed; its leaf hash still proves it existed."""

    log: str
    index: int
    leaf_hash: bytes
    policy: str
    date: str

    def __str__(self) -> str:
        """'pruned by policy P on date D'."""
        return f"entry {self.index} of log {self.log}: pruned by policy {self.policy} on {self.date}"


@dataclass(frozen=True)
class Step:
    """Entries of one log and policy that an action applies to (or, in a plan, will apply to)."""

    log: str
    policy: str
    action: str  # archive | expire | held | delete-segment
    count: int
    first: int | None = None
    last: int | None = None
    due: datetime | None = None
    segment: str | None = None

    def line(self) -> str:
        """One human line."""
        where = f" [{self.first}..{self.last}]" if self.first is not None else ""
        when = f" on {self.due.date().isoformat()}" if self.due else ""
        seg = f" -> {self.segment}" if self.segment else ""
        return f"{self.log}: {self.action} {self.count} {self.policy}{where}{when}{seg}"


@dataclass
class Plan:
    """What apply(now) would do, and what falls due later (by day)."""

    now: datetime
    due: list[Step] = field(default_factory=list)
    upcoming: list[Step] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The plan for people."""
        due = ["  " + s.line() for s in self.due] or ["  nothing is due"]
        later = ["  " + s.line() for s in self.upcoming] or ["  nothing"]
        return [f"now ({rfc3339(self.now)}):", *due, "upcoming:", *later]


@dataclass
class Applied:
    """What apply(now) did."""

    now: datetime
    steps: list[Step] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    vault: dict[str, tuple[int, int]] = field(default_factory=dict)  # log -> (subjects, rows) expired
    scrubbed: int = 0  # free pages overwritten with zeros (SQLite)

    def count(self, action: str) -> int:
        """Entries (or segments) an action touched."""
        return sum(s.count for s in self.steps if s.action == action)


class Timings(dict):
    """Seconds spent per phase of the last apply() or restore(), for metrics and benchmarks."""

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time spent in the block to phase name."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - started


@dataclass(frozen=True)
class SegmentInfo:
    """One archive segment as the store recorded it."""

    key: str
    log: str
    policy: str
    start: int
    end: int
    count: int
    size: int
    retain_until: str
    created: str
    held: bool
    deleted: str | None
    archived: int  # entries whose payload is only in this segment now (not restored, not expired)


@dataclass(frozen=True)
class Hold:
    """A legal hold."""

    id: int
    reason: str
    query: str | None
    created: str
    released: str | None
    ids: int


# -- the store's connection: retention_db.py -----------------------------------------------------
_Tx = Transaction


def find_ids(store, log: str, ids: Sequence[str]) -> dict[str, tuple[int, bytes]]:
    """Like Store.find_ids, but also finds pruned ids: id -> (index, leaf hash), so re-sends stay idempotent."""
    conn = connection(store)
    found: dict[str, tuple[int, bytes]] = {}
    for i in range(0, len(ids), 500):
        chunk = list(ids[i:i + 500])
        marks = ",".join("?" * len(chunk))
        for id_, idx, data in conn.execute(f"SELECT id, idx, data FROM entries WHERE log=? AND id IN ({marks})",
                                           [log, *chunk]):
            found[id_] = (idx, leaf_hash(data))
        for id_, idx, leaf in conn.execute(
                f"SELECT id, idx, leaf_hash FROM pruned WHERE log=? AND id IN ({marks})", [log, *chunk]):
            found.setdefault(id_, (idx, leaf))
    return found


def tile_reader(store, log: str) -> Callable[[int, int, int], bytes]:
    """read_tile(level, index, width) over a store's tiles, cut to width (what segments are built from)."""
    def read_tile(level: int, index: int, width: int) -> bytes:
        data = store.read_tile(log, level, index)
        if data is None or len(data) < width * 32:
            raise StoreError(f"log {log!r}: tile {level}/{index} is missing or short")
        return data[:width * 32]
    return read_tile


class _Failed(NamedTuple):
    """What the producer of _ahead raised."""

    error: BaseException


_END = object()


def _ahead(pool: ThreadPoolExecutor, items: Iterator[Any], between: Callable[[], object] = lambda: None) -> Iterator[Any]:
    """The items of a generator, each produced in pool's thread while the caller handles the one before
    (between() runs there first, as the caller starts on an item).

    The producer's exceptions re-raise here. Closing this (or an exception in the caller) stops the
    producer after the item in progress and waits for it, so no work outlives the call."""
    handoff: queue.SimpleQueue = queue.SimpleQueue()
    turn, stop = threading.Semaphore(1), threading.Event()

    def produce() -> None:
        try:
            while turn.acquire() and not stop.is_set():
                between()
                item = next(items, _END)
                handoff.put(item)
                if item is _END:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
            handoff.put(_Failed(exc))
        finally:
            items.close()

    running = pool.submit(produce)
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            turn.release()
            yield item
    finally:
        stop.set()
        turn.release()
        wait([running])


def _drain_seconds(conf: Mapping[str, Any]) -> float:
    """[retention] vault_drain_seconds: how long vault expiry waits for events protected before it."""
    drain = conf.get("vault_drain_seconds", DRAIN_SECONDS)
    if isinstance(drain, bool) or not isinstance(drain, int | float) or not 0 <= drain <= MAX_DRAIN_SECONDS:
        raise RetentionError(f"vault_drain_seconds must be a number of seconds from 0 to "
                             f"{MAX_DRAIN_SECONDS}, not {drain!r}")
    return float(drain)


def _moment(received: str) -> datetime:
    """A stored RFC 3339 'Z' timestamp as an aware datetime."""
    return datetime.fromisoformat(received[:-1]).replace(tzinfo=UTC)


def _utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


# -- retention -----------------------------------------------------------------------------------
_HOT_COLUMNS = "e.idx, e.id, {time}, {received}, e.category, e.action, e.outcome, e.actor_id, e.data, NULL"


class _Row(NamedTuple):
    """A hot entry as retention sees it."""

    idx: int
    id: str
    time: str
    received: str
    category: str
    action: str
    outcome: str
    actor_id: str
    data: bytes
    state: str | None  # 'restored' when the archive already holds it


class _Restoring(NamedTuple):
    """A verified segment's entries to put back: their indices (increasing) and their bytes; for SQLite also
    packed as _insert_restored passes them (worked out in the background thread)."""

    indices: list[int]
    entries: list[bytes]
    packed: tuple[bytes, bytes, str] | None = None


def _packed(batch: _Restoring) -> _Restoring:
    """batch with its SQLite parameters: the entries as one blob, the offset where each starts (and where
    the last ends) as 20-digit decimals, so SQL can cut the i-th out, and the indices as a JSON array."""
    offsets = b"".join(b"%020d" % offset for offset in accumulate(map(len, batch.entries), initial=0))
    return batch._replace(packed=(b"".join(batch.entries), offsets, json.dumps(batch.indices)))


class _Written(NamedTuple):
    """A segment written and read back, its lock end, and the entries' search-index words (None without a
    SQLite search index; see unindex)."""

    written: Written
    retain: datetime
    words: list[str] | None


class Retention:
    """Plan and apply retention over a store, with an archive for payloads past their hot period."""

    def __init__(self, store, policies: Policies, archive: Archive | None = None, *,
                 verifier: Callable[[str], Verifier] | None = None,
                 clock: Callable[[], datetime] = _utc_now, segment_entries: int = SEGMENT_ENTRIES,
                 record: Callable[[list[dict]], object] | None = None, actor_ids: ActorIds | None = None,
                 vault: VaultExpiry | None = None, schema: bool = True):
        """Work on store; verifier(log) is needed to restore (segments are verified first); with ``vault``,
        expiring entries also expires the vault values of subjects with nothing retained
        (retention_vault.py). ``schema=False``: only read the tables that exist (no DDL, so any role may)."""
        self.store = store
        self.policies = policies
        self.archive = archive
        self.verifier = verifier
        self.clock = clock
        self.segment_entries = segment_entries
        self.record = record
        self.actor_ids = actor_ids
        self.timings = Timings()
        self._progress: Callable[[str, int], None] = lambda action, count: None
        self.vault = vault
        self._expired: defaultdict[str, set[str]] = defaultdict(set)  # log -> names_of this apply's expired entries
        self._pool: ThreadPoolExecutor | None = None
        if schema:
            ensure_schema(self.conn)

    @classmethod
    def from_trail(cls, trail, *, archive: Archive | None = None, clock: Callable[[], datetime] | None = None,
                   record: bool = True, **kwargs: Any) -> Retention:
        """Retention for an open data dir, configured by its `[retention]` table."""
        conf = trail.config.retention or {}
        if archive is None and conf.get("archive"):
            from trailseal.archive import open_archive

            archive = open_archive(conf["archive"], trail.directory)
        kwargs.setdefault("vault", VaultExpiry.for_trail(trail, _drain_seconds(conf)))
        return cls(trail.store, Policies.from_config(conf), archive, verifier=getattr(trail, "verifiers", trail.verifier),
                   clock=clock or _utc_now, segment_entries=int(conf.get("segment_entries", SEGMENT_ENTRIES)),
                   record=trail.append if record else None, actor_ids=trail_actor_ids(trail), **kwargs)

    def _verifiers(self, log: str) -> list[Verifier]:
        """Every key that may have signed log's checkpoints (the current one and any retired ones)."""
        if self.verifier is None:
            raise RetentionError("verifying segments needs the log's verifier key")
        found = self.verifier(log)
        return [found] if isinstance(found, Verifier) else list(found)

    @property
    def conn(self):
        """This thread's connection to the store."""
        return connection(self.store)

    def _logs(self) -> list[str]:
        """Every log in the store."""
        return [info.name for info in self.store.logs()]

    # -- holds -----------------------------------------------------------------------------------
    def hold(self, *, reason: str, ids: Sequence[str] = (), query: str | None = None,
             log: str = "default", by: str | None = None) -> Hold:
        """Place a legal hold on events by id (in log) or by query; held events are never pruned. ``by``: who
        placed it (the sealed record's actor; trailseal itself when not given)."""
        if not reason.strip():
            raise RetentionError("a legal hold needs a reason")
        if not ids and not query:
            raise RetentionError("a legal hold needs --ids or --query")
        if query:
            compile_query(query)
        with _Tx(self.conn) as conn:
            (hold_id,) = conn.execute("INSERT INTO legal_holds (reason, query, created) VALUES (?,?,?) RETURNING id",
                                      (reason, query, rfc3339(self.clock()))).fetchone()
            conn.executemany("INSERT INTO legal_hold_ids VALUES (?,?,?) ON CONFLICT DO NOTHING",
                             [(hold_id, log, id_) for id_ in ids])
        self._sync_segment_holds()
        held = self._hold(hold_id)
        self._emit("retention.hold.add", {"hold": held.id, "reason": reason, "query": query, "ids": len(ids)}, by=by)
        return held

    def release(self, hold_id: int, by: str | None = None) -> Hold:
        """Release a legal hold; its events follow their policies again from the next apply()."""
        with _Tx(self.conn) as conn:
            cur = conn.execute("UPDATE legal_holds SET released=? WHERE id=? AND released IS NULL",
                               (rfc3339(self.clock()), hold_id))
            if cur.rowcount != 1:
                raise RetentionError(f"no active legal hold {hold_id}")
        self._sync_segment_holds()
        self._emit("retention.hold.release", {"hold": hold_id}, by=by)
        return self._hold(hold_id)

    def holds(self, *, active: bool = True) -> list[Hold]:
        """Legal holds (only active ones unless active=False)."""
        where = "WHERE released IS NULL" if active else ""
        rows = self.conn.execute(f"SELECT id FROM legal_holds {where} ORDER BY id").fetchall()
        return [self._hold(row[0]) for row in rows]

    def holds_on_subject(self, subject: str, log: str | None = None) -> list[Hold]:
        """The active holds that keep an event of this data subject (in ``log``, or in any): its personal
        values are needed for the legal claim each hold is for (GDPR Art. 17(3)(e))."""
        active = self.holds()
        if not active:
            return []
        forms = self.actor_ids(subject) if self.actor_ids is not None else [subject]
        entries = [(name, found) for name in ([log] if log else self._logs())
                   if (found := actor_entries(self.conn, name, forms))]
        return [hold for hold in active if any(self._covers(hold, name, found) for name, found in entries)]

    def _covers(self, hold: Hold, log: str, indices: list[int]) -> bool:
        """Whether the hold keeps any of these entries (hot or archived) of ``log``."""
        clauses, params = [], []
        if hold.ids:
            clauses.append("EXISTS (SELECT 1 FROM legal_hold_ids h WHERE h.hold = ? AND h.log = e.log AND h.id = e.id)")
            params.append(hold.id)
        if hold.query:
            clause, values = compile_query(hold.query, "e.", self.actor_ids)
            clauses.append(clause)
            params += values
        held = "(" + " OR ".join(clauses) + ")"
        for start in range(0, len(indices), 500):
            chunk = indices[start:start + 500]
            row = self.conn.execute(
                f"SELECT 1 FROM {self._retained_entries()} e WHERE e.log = ? AND e.idx IN "
                f"({','.join('?' * len(chunk))}) AND {held} LIMIT 1", (log, *chunk, *params)).fetchone()
            if row:
                return True
        return False

    def _hold(self, hold_id: int) -> Hold:
        """One hold by id."""
        row = self.conn.execute("SELECT id, reason, query, created, released, "
                                "(SELECT count(*) FROM legal_hold_ids WHERE hold=legal_holds.id) "
                                "FROM legal_holds WHERE id=?", (hold_id,)).fetchone()
        if row is None:
            raise RetentionError(f"no legal hold {hold_id}")
        return Hold(*row)

    def _held_sql(self, alias: str) -> tuple[str, list[str]]:
        """SQL true for held rows (alias: 'e.' or 'p.'), with its parameters; '0' when nothing is held."""
        if not self.conn.execute("SELECT 1 FROM legal_holds WHERE released IS NULL LIMIT 1").fetchone():
            return "(1 = 0)", []
        clauses = [f"EXISTS (SELECT 1 FROM legal_hold_ids h JOIN legal_holds l ON l.id = h.hold "
                   f"WHERE l.released IS NULL AND h.log = {alias}log AND h.id = {alias}id)"]
        params: list[str] = []
        for (query,) in self.conn.execute("SELECT query FROM legal_holds WHERE released IS NULL "
                                          "AND query IS NOT NULL"):
            clause, values = compile_query(query, alias, self.actor_ids)
            clauses.append(clause)
            params += values
        return "(" + " OR ".join(clauses) + ")", params

    def is_held(self, log: str, index: int) -> bool:
        """Whether an entry is under an active legal hold."""
        held, params = self._held_sql("e.")
        row = self.conn.execute(f"SELECT {held} FROM {self._retained_entries()} e WHERE e.log=? AND e.idx=?",
                                (*params, log, index)).fetchone()
        return bool(row and row[0])

    def _retained_entries(self) -> str:
        """A subquery of every hot or archived entry, with the columns hold queries read."""
        return (f"(SELECT log, idx, id, {timestamp(self.conn, 'time')} AS time, category, action, outcome, actor_id "
                "FROM entries UNION ALL SELECT log, idx, id, time, category, action, outcome, actor_id FROM pruned "
                "WHERE state != 'expired')")

    # -- selecting candidates --------------------------------------------------------------------
    def _hot(self, log: str, categories: Sequence[str], period: Period, now: datetime,
             held: bool = False, policy: Policy | None = None) -> Iterator[_Row]:
        """Hot entries of categories with received + period <= now, not held (or only held), by index; with
        ``policy``, only those it governs (where policies are chosen by source, each entry's source says)."""
        sourced = policy is not None and self.policies.by_source
        held_sql, held_params = self._held_sql("e.")
        marks = ",".join("?" * len(categories))
        columns = _HOT_COLUMNS.format(time=timestamp(self.conn, "e.time"), received=timestamp(self.conn, "e.received"))
        sql = (f"SELECT {columns} FROM entries e "
               f"WHERE e.log=? AND e.idx>? AND e.category IN ({marks}) AND e.received <= ? "
               f"AND {'' if held else 'NOT '}{held_sql} ORDER BY e.idx LIMIT {_PAGE}")
        (sure, bound), last = period.cutoffs(now), -1
        while True:
            rows = self.conn.execute(sql, (log, last, *categories, bound, *held_params)).fetchall()
            states = self._pruned_states(log, rows[0][0], rows[-1][0]) if rows else {}
            for row in map(_Row._make, rows):  # state NULL until looked up: most pages have no pruned rows
                if sourced and self.policies.for_entry(log, row.category, *source_of(row.data)) != policy:
                    continue
                if row.received <= sure or period.due(row.received, now, sure):
                    yield row._replace(state=states[row.idx]) if row.idx in states else row
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]

    def _pruned_states(self, log: str, first: int, last: int) -> dict[int, str]:
        """{index: state} of `pruned` rows with first <= index <= last (one range scan, not a join per row)."""
        return dict(self.conn.execute("SELECT idx, state FROM pruned WHERE log=? AND idx>=? AND idx<=?",
                                      (log, first, last)).fetchall())

    def _archived(self, log: str, categories: Sequence[str], period: Period, now: datetime,
                  held: bool = False, policy: Policy | None = None) -> list[tuple[int, str | None]]:
        """(index, sealed actor id) of archived entries of categories with received + period <= now; with
        ``policy``, only those it governs (by the source recorded when they were archived)."""
        held_sql, held_params = self._held_sql("p.")
        marks = ",".join("?" * len(categories))
        sure, bound = period.cutoffs(now)
        rows = self.conn.execute(
            f"SELECT p.idx, p.actor_id, p.received, p.category, p.source_component, p.source_kind FROM pruned p "
            f"WHERE p.log=? AND p.state='archived' AND p.category IN ({marks}) AND p.received <= ? "
            f"AND {'' if held else 'NOT '}{held_sql} ORDER BY p.idx", (log, *categories, bound, *held_params)).fetchall()
        sourced = policy is not None and self.policies.by_source
        return [(idx, actor) for idx, actor, received, category, component, kind in rows
                if period.due(received, now, sure)
                and not (sourced and self.policies.for_entry(log, category, component, kind) != policy)]

    def _governed(self) -> Iterator[tuple[str, Policy, list[str]]]:
        """(log, policy, categories) for every log and every policy that governs some of it."""
        for log in self._logs():
            for name, categories in self.policies.categories_by_policy(log).items():
                yield log, self.policies.get(name), categories

    # -- planning --------------------------------------------------------------------------------
    def plan(self, now: datetime | None = None) -> Plan:
        """What apply(now) would do now, and what falls due later, day by day."""
        now = now or self.clock()
        plan = Plan(now)
        for log, policy, categories in self._governed():
            plan.due += self._due(log, policy, categories, now)
            plan.upcoming += self._upcoming(log, policy, categories, now)
        plan.due += [Step(m["log"], m["policy"], "delete-segment", 1, segment=m["key"])
                     for m in self._expired_segments(now)]
        plan.upcoming.sort(key=lambda s: (s.due, s.log, s.policy, s.action))
        return plan

    def _due(self, log: str, policy: Policy, categories: list[str], now: datetime) -> list[Step]:
        """Steps due now for one log and policy: expire, archive, and what a hold keeps back."""
        expiring, held = [], set()
        if not policy.keep.forever:
            expiring = sorted([r.idx for r in self._hot(log, categories, policy.keep, now, policy=policy)]
                              + [idx for idx, _ in self._archived(log, categories, policy.keep, now, policy=policy)])
            held |= {r.idx for r in self._hot(log, categories, policy.keep, now, held=True, policy=policy)}
            held |= {idx for idx, _ in self._archived(log, categories, policy.keep, now, held=True, policy=policy)}
        moving = []
        if policy.hot is not None and self.archive is not None:
            gone = set(expiring)
            moving = [r.idx for r in self._hot(log, categories, policy.hot, now, policy=policy) if r.idx not in gone]
            held |= {r.idx for r in self._hot(log, categories, policy.hot, now, held=True, policy=policy)}
        steps = [_step(log, policy, "expire", expiring), _step(log, policy, "archive", moving),
                 _step(log, policy, "held", sorted(held))]
        return [s for s in steps if s.count]

    def _upcoming(self, log: str, policy: Policy, categories: list[str], now: datetime) -> list[Step]:
        """Later archive and expiry dates of one log and policy, counted by day received."""
        marks = ",".join("?" * len(categories))
        if self.policies.by_source:  # counted by category and source too, each group kept if the policy governs it
            hot_by, pruned_by = (f"category, {source_sql(self.conn, 'data', 'component')}, "
                                 f"{source_sql(self.conn, 'data', 'kind')}"), "category, source_component, source_kind"
        else:
            hot_by = pruned_by = "NULL, NULL, NULL"
        days = self.conn.execute(
            f"SELECT substr({timestamp(self.conn, 'received')}, 1, 10), 'hot', count(*), {hot_by} FROM entries "
            f"WHERE log=? AND category IN ({marks}) GROUP BY 1, 4, 5, 6 UNION ALL SELECT substr(received, 1, 10), "
            f"state, count(*), {pruned_by} FROM pruned WHERE log=? AND category IN ({marks}) AND state != 'expired' "
            "GROUP BY 1, 2, 4, 5, 6", (log, *categories, log, *categories)).fetchall()
        if self.policies.by_source:
            days = [row for row in days if self.policies.for_entry(log, *row[3:]) == policy]
        counts: dict[tuple[str, datetime], int] = defaultdict(int)
        for day, state, count, *_ in days:
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            for action, period in self._stages(policy, state):
                due = period.after(start)
                if due is not None and period.after(start + timedelta(days=1)) > now:  # not all due yet
                    counts[(action, due)] += count
        return [Step(log, policy.name, action, count, due=due) for (action, due), count in counts.items()]

    def _stages(self, policy: Policy, state: str) -> list[tuple[str, Period]]:
        """The stages still ahead of an entry in state."""
        stages = [("expire", policy.keep)]
        if state == "hot" and policy.hot is not None and self.archive is not None:
            stages.insert(0, ("archive", policy.hot))
        return stages

    # -- applying --------------------------------------------------------------------------------
    def apply(self, now: datetime | None = None, *, progress: Callable[[str, int], None] | None = None) -> Applied:
        """Expire what is past keep, archive what is past hot, delete segments whose retention ended.

        progress(action, count) is called after each batch expired and each segment written."""
        now = now or self.clock()
        result = Applied(now)
        self.timings = Timings()
        self._progress = progress or (lambda action, count: None)
        self._expired.clear()
        with self.timings.phase("total"):
            for log, policy, categories in self._governed():
                if not policy.keep.forever:
                    result.steps += self._expire(log, policy, categories, now)
                if policy.hot is not None and self.archive is not None:
                    result.steps += self._archive(log, policy, categories, now)
            with self.timings.phase("vault"):
                result.vault = self._expire_vault()
            self._delete_segments(now, result)
            self._sync_segment_holds()
            if result.count("expire") or result.deleted:
                with self.timings.phase("scrub"):
                    result.scrubbed = self._scrub_free_pages()
        self._emit_applied(result)
        return result

    def _expire(self, log: str, policy: Policy, categories: list[str], now: datetime) -> list[Step]:
        """Drop payloads past keep (hot and archived); leaf hashes stay in `pruned`."""
        stamp, done, batch = rfc3339(now), [], []
        for row in self._hot(log, categories, policy.keep, now, policy=policy):
            batch.append(row)
            if len(batch) == self.segment_entries:
                done += self._expire_hot(log, policy, batch, stamp)
                batch = []
        done += self._expire_hot(log, policy, batch, stamp)
        archived = self._archived(log, categories, policy.keep, now, policy=policy)
        self._expired[log].update(name for _, actor in archived for name in names_of(actor, None))
        archived = [idx for idx, _ in archived]
        with self.timings.phase("store"), _Tx(self.conn) as conn:
            conn.executemany("UPDATE pruned SET state='expired', policy=?, expired_at=?, time=NULL, action=NULL, "
                             "outcome=NULL, actor_id=NULL WHERE log=? AND idx=?",
                             [(policy.name, stamp, log, idx) for idx in archived])
        indices = sorted(done + archived)
        return [_step(log, policy, "expire", indices)] if indices else []

    def _expire_vault(self) -> dict[str, tuple[int, int]]:
        """log -> (subjects, vault rows) whose values went with this apply's expired entries (and with those of
        an earlier apply that could not finish: `vault_expiring`)."""
        done = {}
        if self.vault is not None:
            pending = defaultdict(set)
            for log, subject in self.conn.execute("SELECT log, subject FROM vault_expiring").fetchall():
                pending[log].add(subject)
            for log in sorted(set(self._expired) | set(pending)):
                subjects = self.vault.subjects(self.conn, log, self._expired.get(log, set())) | pending[log]
                try:
                    gone, rows = self.vault.expire(self.conn, log, subjects)
                except VaultExpiryDeferred:
                    self._defer_vault(log, subjects - pending[log])
                    continue
                self._defer_vault(log, set(), done=pending[log])
                if gone:
                    done[log] = (gone, rows)
        self._expired.clear()
        return done

    def _defer_vault(self, log: str, subjects: set[str], done: set[str] = frozenset()) -> None:
        """Note subjects whose vault expiry could not finish (the next apply takes them up), and drop the
        notes of those it finished."""
        if not subjects and not done:
            return
        with _Tx(self.conn) as conn:
            conn.executemany("DELETE FROM vault_expiring WHERE log = ? AND subject = ?", [(log, s) for s in done])
            conn.executemany("INSERT INTO vault_expiring (log, subject) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             [(log, s) for s in sorted(subjects)])

    def _expire_hot(self, log: str, policy: Policy, rows: list[_Row], stamp: str) -> list[int]:
        """Drop hot payloads past keep, recording their re-computed leaf hash (a tampered one still fails)."""
        if not rows:
            return []
        self._progress("expire", len(rows))
        self._expired[log].update(name for r in rows for name in names_of(r.actor_id, r.data))
        with self.timings.phase("store"), _Tx(self.conn) as conn:
            conn.executemany(
                "INSERT INTO pruned (log, idx, id, leaf_hash, category, received, state, policy, expired_at) "
                "VALUES (?,?,?,?,?,?,'expired',?,?) ON CONFLICT (log, idx) DO UPDATE SET state='expired', "
                "policy=excluded.policy, expired_at=excluded.expired_at, time=NULL, action=NULL, outcome=NULL, "
                "actor_id=NULL",
                [(log, r.idx, r.id, leaf_hash(r.data), r.category, r.received, policy.name, stamp) for r in rows])
            unindex(conn, log, [r.idx for r in rows])
            conn.executemany("DELETE FROM entries WHERE log=? AND idx=?", [(log, r.idx) for r in rows])
        return [r.idx for r in rows]

    def _archive(self, log: str, policy: Policy, categories: list[str], now: datetime) -> list[Step]:
        """Move payloads past hot into segments, a segment at a time, then drop them locally.

        Pipelined: the background thread selects the rows and builds, writes and reads back segment k+1
        (zstd, AES-GCM, SHA-256 and SQLite reads run mostly outside the GIL) while this thread records
        segment k and drops its payloads (SQLite has one writer). Segment k+1 is only built once k was
        written, so a failed write never has a later segment written behind it."""
        steps: list[Step] = []
        with self._bulk_writes() as checkpoint, \
                closing(_ahead(self._worker(), self._written_segments(log, policy, categories, now), checkpoint)) as written:
            for rows, done in written:
                if done is None:
                    self._drop_restored(log, rows)
                else:
                    steps.append(self._record_segment(log, policy, rows, done, now))
        return steps

    def _written_segments(self, log: str, policy: Policy, categories: list[str],
                          now: datetime) -> Iterator[tuple[list, _Written | None]]:
        """(rows, what was written) per segment; (restored indices, None) for restored entries."""
        for rows, restored in self._archive_batches(log, policy, categories, now):
            yield (rows, None) if restored else (rows, self._write_segment(log, policy, rows, now))

    def _archive_batches(self, log: str, policy: Policy, categories: list[str],
                         now: datetime) -> Iterator[tuple[list, bool]]:
        """(rows past hot, False) segment_entries at a time, and (indices of restored rows, True): those are
        in the archive already and only need dropping locally again."""
        batch: list[_Row] = []
        restored: list[int] = []
        for row in self._hot(log, categories, policy.hot, now, policy=policy):
            if row.state == "restored":
                restored.append(row.idx)
                if len(restored) == _PAGE:
                    yield restored, True
                    restored = []
                continue
            batch.append(row)
            if len(batch) == self.segment_entries:
                yield batch, False
                batch = []
        if restored:
            yield restored, True
        if batch:
            yield batch, False

    def _drop_restored(self, log: str, indices: list[int]) -> None:
        """Restored entries already in the archive: drop the local copies again, in one transaction."""
        if not indices:
            return
        with _Tx(self.conn) as conn:
            unindex(conn, log, indices)
            conn.executemany("DELETE FROM entries WHERE log=? AND idx=?", [(log, idx) for idx in indices])
            conn.executemany("UPDATE pruned SET state='archived' WHERE log=? AND idx=?", [(log, idx) for idx in indices])

    @contextmanager
    def _bulk_writes(self) -> Iterator[Callable[[], object]]:
        """While segments move: no cyclic garbage collection (the rows hold no cycles, and collections walked
        the segments in flight again and again: a fifth of the background thread's time), and on SQLite the
        pragmas of _BULK_PRAGMAS on this thread's connection (restored afterwards)."""
        with paused_gc():
            conn = self.conn
            if is_postgres(conn):
                yield lambda: None
                return
            settings = dict(_BULK_PRAGMAS)
            (cache,) = conn.execute("PRAGMA cache_size").fetchone()
            # its page cache holds a whole segment's changes, so a transaction does not spill pages into the
            # WAL before its commit writes them again; in KiB (the store sets it so; pages are left alone)
            if cache < 0:
                settings["cache_size"] = min(int(cache), -BULK_CACHE_KIB_PER_ENTRY * self.segment_entries)
            with pragmas(conn, settings):
                yield lambda: self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def _worker(self) -> ThreadPoolExecutor:
        """The one background thread (with its own store connection) that writes and fetches segments."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trailseal-retention",
                                            initializer=self._map_reads)
        return self._pool

    def _map_reads(self) -> None:
        """The background thread reads the rows it archives from the mapped SQLite file (no pread per page)."""
        if not is_postgres(self.conn):
            self.conn.execute(f"PRAGMA mmap_size={BULK_MMAP_BYTES}")

    def _write_segment(self, log: str, policy: Policy, rows: list[_Row], now: datetime) -> _Written:
        """Build, write and read back one segment, and its `pruned` rows (in the background thread)."""
        note = self.store.latest_checkpoint(log)
        size = parse_checkpoint(note[:note.index("\n\n") + 1]).size
        retain = self._retain_until(policy, rows, now)
        with self.timings.phase("segments"):
            written = self.archive.write(log, policy.name, [(r.idx, r.data) for r in rows], checkpoint=note,
                                         size=size, read_tile=tile_reader(self.store, log), retain_until=retain,
                                         created=now)
        words = index.indexed_words([r.data for r in rows]) if _has_search_index(self.conn) else None
        return _Written(written, retain, words)

    def _record_segment(self, log: str, policy: Policy, rows: list[_Row], done: _Written, now: datetime) -> Step:
        """A segment that read back intact: record it and drop its payloads locally."""
        with self.timings.phase("store"):
            self._record_archived(log, policy, rows, done, now)
        self._progress("archive", len(rows))
        return Step(log, policy.name, "archive", len(rows), rows[0].idx, rows[-1].idx, now, done.written.key)

    def _retain_until(self, policy: Policy, rows: list[_Row], now: datetime) -> datetime:
        """The segment's lock: until its last entry's keep ends (or a century, for keep forever)."""
        if policy.keep.forever:
            return add_months(now, 12 * FOREVER_LOCK_YEARS)
        return policy.keep.after(_moment(max(r.received for r in rows)))

    def _record_archived(self, log: str, policy: Policy, rows: list[_Row], done: _Written, now: datetime) -> None:
        """In one transaction: note the segment, move rows to `pruned` as archived, drop payloads."""
        key, first, last = done.written.key, rows[0].idx, rows[-1].idx
        with _Tx(self.conn) as conn:
            conn.execute("INSERT INTO archive_segments (key, log, policy, start_idx, end_idx, count, size, "
                         "retain_until, created) VALUES (?,?,?,?,?,?,?,?,?)",
                         (key, log, policy.name, first, last + 1, len(rows), done.written.manifest.size,
                          rfc3339(done.retain), rfc3339(now)))
            _insert_archived(conn, log, rows, done.written, policy.name, rfc3339(now), self.policies.by_source)
            unindex(conn, log, [r.idx for r in rows], done.words)
            if last - first + 1 == len(rows):  # a run without gaps: the range holds these rows and no others
                conn.execute("DELETE FROM entries WHERE log=? AND idx BETWEEN ? AND ?", (log, first, last))
            else:
                conn.execute("DELETE FROM entries WHERE log=? AND idx BETWEEN ? AND ? AND EXISTS (SELECT 1 FROM "
                             "pruned p WHERE p.log = entries.log AND p.idx = entries.idx AND p.segment = ?)",
                             (log, first, last, key))

    def _expired_segments(self, now: datetime) -> list[dict]:
        """Live segments whose every entry expired and whose lock has ended."""
        rows = self.conn.execute(
            "SELECT key, log, policy, retain_until FROM archive_segments s WHERE deleted IS NULL AND retain_until <= ?"
            " AND NOT EXISTS (SELECT 1 FROM pruned p WHERE p.log = s.log AND p.idx >= s.start_idx AND "
            "p.idx < s.end_idx AND p.segment = s.key AND p.state != 'expired')",
            (rfc3339(now),)).fetchall()
        return [dict(zip(("key", "log", "policy", "retain_until"), row, strict=True)) for row in rows]

    def _delete_segments(self, now: datetime, result: Applied) -> None:
        """Delete expired segments from the archive; the target refuses any still locked."""
        if self.archive is None:
            return
        for expired in self._expired_segments(now):
            key = expired["key"]
            try:
                self.archive.delete(key, now)
            except RetentionLocked:
                result.deferred.append(key)
                continue
            with _Tx(self.conn) as conn:
                conn.execute("UPDATE archive_segments SET deleted=? WHERE key=?", (rfc3339(now), key))
            result.deleted.append(key)

    def _scrub_free_pages(self) -> int:
        """SQLite: zero the free pages once some payload's keep ended; archive moves free their pages
        without (see _bulk_writes), so an archived payload's bytes could outlive its retention there."""
        if is_postgres(self.conn):
            return 0
        return scrub_free_pages(self.conn)

    def _sync_segment_holds(self) -> None:
        """Put a legal hold on every segment holding a held entry, and lift it from the others."""
        if self.archive is None:
            return
        held = self._held_segments()
        for key, was in self.conn.execute("SELECT key, held FROM archive_segments WHERE deleted IS NULL").fetchall():
            if (key in held) != bool(was):
                self.archive.set_hold(key, key in held)
                with _Tx(self.conn) as conn:
                    conn.execute("UPDATE archive_segments SET held=? WHERE key=?", (int(key in held), key))

    def _held_segments(self) -> set[str]:
        """Segments holding an archived entry under an active hold (by id, then by each query)."""
        held = {key for (key,) in self.conn.execute(
            "SELECT DISTINCT p.segment FROM legal_hold_ids h JOIN legal_holds l ON l.id = h.hold JOIN pruned p "
            "ON p.log = h.log AND p.id = h.id WHERE l.released IS NULL AND p.state = 'archived'")}
        for (query,) in self.conn.execute("SELECT query FROM legal_holds WHERE released IS NULL AND query IS NOT "
                                          "NULL").fetchall():
            clause, params = compile_query(query, "p.", self.actor_ids)
            held |= {key for (key,) in self.conn.execute(
                f"SELECT DISTINCT p.segment FROM pruned p WHERE p.state = 'archived' AND {clause}", params)}
        return held

    def rotate_master_key(self, *, on_rewrap: Callable[[str], None] | None = None) -> RotateReport:
        """Rewrap every segment's data key under the current master key (data untouched); seal that it did."""
        if self.archive is None:
            raise RetentionError("no archive configured")
        report = self.archive.rotate(on_rewrap=on_rewrap)
        self._emit("archive.key.rotate", {"master_key": self.archive.keys.current(),
                                          "rewrapped": len(report.rewrapped), "current": len(report.current)})
        return report

    # -- recording -------------------------------------------------------------------------------
    def _emit(self, action: str, attributes: dict[str, Any], target: str | None = None, by: str | None = None) -> None:
        """Seal a record of a retention action in the `trailseal` meta log (if recording); its actor is ``by``
        (who asked for it) or trailseal itself (scheduled work)."""
        if self.record is None:
            return
        actor = {"id": by, "type": "service"} if by else {"id": "trailseal", "type": "system"}
        event = {"log": "trailseal", "category": "system", "action": action, "outcome": "success",
                 "time": rfc3339(self.clock()), "actor": actor,
                 "source": {"component": "retention", "kind": "trailseal"},
                 "attributes": {k: v for k, v in attributes.items() if v is not None}}
        if target:
            event["target"] = {"type": "log", "id": target}
        self.record([event])

    def _emit_applied(self, result: Applied) -> None:
        """One record per step of an apply()."""
        for s in result.steps:
            self._emit(f"retention.{s.action}", {"policy": s.policy, "count": s.count, "first": s.first,
                                                 "last": s.last, "segment": s.segment}, s.log)
        for key in result.deleted:
            self._emit("retention.segment.delete", {"segment": key})
        for log, (subjects, rows) in result.vault.items():
            self._emit("retention.vault.expire", {"subjects": subjects, "vault_rows": rows}, log)

    # -- reading ---------------------------------------------------------------------------------
    def status(self, log: str, index: int) -> str:
        """hot, archived, restored (hot again, also archived) or expired."""
        row = self.conn.execute("SELECT state FROM pruned WHERE log=? AND idx=?", (log, index)).fetchone()
        if row is not None:
            return row[0]
        if self.conn.execute("SELECT 1 FROM entries WHERE log=? AND idx=?", (log, index)).fetchone():
            return "hot"
        raise IndexError(f"log {log!r} has no entry {index}")

    def read(self, log: str, index: int) -> bytes | PrunedEntry:
        """The entry's bytes (from the store, else the archive), or who pruned it and when."""
        for idx, item in self.read_entries(log, index, index + 1):
            if idx == index:
                return item
        raise IndexError(f"log {log!r} has no entry {index}")

    def read_entries(self, log: str, start: int, end: int) -> Iterator[tuple[int, bytes | PrunedEntry]]:
        """(index, bytes or PrunedEntry) for start <= index < end, hot, archived and expired alike."""
        pruned = self.conn.execute("SELECT idx, leaf_hash, state, policy, segment, expired_at FROM pruned "
                                   "WHERE log=? AND idx>=? AND idx<? AND state != 'restored' ORDER BY idx",
                                   (log, start, end)).fetchall()
        hot = self.store.read_entries(log, start, end)
        for idx, item in _merge(hot, pruned):
            yield idx, item if isinstance(item, bytes) else self._offline(log, item)

    def _offline(self, log: str, row: tuple) -> bytes | PrunedEntry:
        """An archived entry's bytes from its segment, or an expired entry's notice."""
        idx, leaf, state, policy, segment, expired_at = row
        if state == "expired":
            return PrunedEntry(log, idx, leaf, policy, expired_at)
        if self.archive is None:
            raise RetentionError(f"entry {idx} of {log!r} is archived in {segment}, but no archive is configured")
        opened = self.archive.open(segment)
        at = bisect.bisect_left(opened.body.indices, idx)
        if at == len(opened.body.indices) or opened.body.indices[at] != idx:
            raise RetentionError(f"segment {segment} does not hold entry {idx}")
        return opened.body.entries[at]

    def restore(self, log: str, start: int = 0, end: int | None = None, *,
                on_segment: Callable[[str, int], None] | None = None) -> int:
        """Verify archived segments and put their entries in [start, end) back in the hot store.

        on_segment(key, restored) is called after each segment (for progress bars)."""
        end = 2**62 if end is None else end
        self.timings = Timings()
        restored = 0
        with self._bulk_writes() as checkpoint, \
                closing(_ahead(self._worker(), self._restorable_rows(log, start, end), checkpoint)) as segments:
            for key, lo, hi, batch in segments:
                count = self._store_restored(log, key, lo, hi, batch)
                restored += count
                if on_segment is not None:
                    on_segment(key, count)
        if restored:
            self._emit("retention.restore", {"count": restored, "from": start, "to": end if end < 2**62 else None}, log)
        return restored

    def _restorable_rows(self, log: str, start: int, end: int) -> Iterator[tuple[str, int, int, _Restoring]]:
        """(key, start, end, entries to put back) per live segment overlapping [start, end), verified;
        run in the background thread, a segment ahead of the one the store inserts."""
        for key, lo, hi in self.restorable(log, start, end):
            lo, hi = max(start, lo), min(end, hi)
            yield key, lo, hi, self._restore_rows(log, key, lo, hi)

    def restorable(self, log: str, start: int = 0, end: int = 2**62) -> list[tuple[str, int, int]]:
        """(key, start, end) of live segments of log that overlap [start, end), by start."""
        return self.conn.execute("SELECT key, start_idx, end_idx FROM archive_segments WHERE log=? AND "
                                 "deleted IS NULL AND start_idx < ? AND end_idx > ? ORDER BY start_idx",
                                 (log, end, start)).fetchall()

    def segments(self, log: str | None = None, *, deleted: bool = False) -> list[SegmentInfo]:
        """The archive's segments as the store recorded them (live only unless deleted=True)."""
        sql = ("SELECT key, log, policy, start_idx, end_idx, count, size, retain_until, created, held, deleted, "
               "(SELECT count(*) FROM pruned p WHERE p.log = s.log AND p.segment = s.key AND p.state = 'archived')"
               " FROM archive_segments s WHERE (? IS NULL OR log = ?)" + ("" if deleted else " AND deleted IS NULL")
               + " ORDER BY log, start_idx, key")
        return [SegmentInfo(*row[:9], bool(row[9]), row[10], row[11]) for row in self.conn.execute(sql, (log, log))]

    def restore_matching(self, query: str, *, on_segment: Callable[[str, int], None] | None = None) -> int:
        """Restore only the archived entries a hold-style query matches (`actor:alice since:2026-01-01`)."""
        clause, params = compile_query(query, "p.", self.actor_ids)
        self.timings = Timings()
        found: dict[tuple[str, str], set[int]] = defaultdict(set)
        for log, key, idx in self.conn.execute(f"SELECT p.log, p.segment, p.idx FROM pruned p WHERE "
                                               f"p.state = 'archived' AND {clause}", params).fetchall():
            found[(log, key)].add(idx)
        restored = 0
        for (log, key), indices in sorted(found.items()):
            count = self._restore_segment(log, key, min(indices), max(indices) + 1, indices)
            restored += count
            if on_segment is not None:
                on_segment(key, count)
        if restored:
            self._emit("retention.restore", {"count": restored, "query": query})
        return restored

    def _restore_segment(self, log: str, key: str, start: int, end: int, only: set[int] | None = None) -> int:
        """Restore one segment's archived entries in [start, end) (and in only, if given) after verifying it."""
        return self._store_restored(log, key, start, end, self._restore_rows(log, key, start, end, only), only)

    def _restore_rows(self, log: str, key: str, start: int, end: int, only: set[int] | None = None) -> _Restoring:
        """A segment's archived entries in [start, end) (and in only) to put back; the segment verified first,
        and each entry must match its recorded leaf hash. Empty if none is archived."""
        recorded = self.conn.execute("SELECT idx, leaf_hash FROM pruned WHERE log=? AND idx>=? AND idx<? AND "
                                     "segment=? AND state='archived' ORDER BY idx", (log, start, end, key)).fetchall()
        recorded = [r for r in recorded if only is None or r[0] in only]
        if not recorded:
            return _Restoring([], [])
        batch = _matching(recorded, *self._verified_entries(log, key))
        return batch if is_postgres(self.conn) else _packed(batch)

    def _store_restored(self, log: str, key: str, start: int, end: int, batch: _Restoring,
                        only: set[int] | None = None) -> int:
        """Insert restored entries (from _restore_rows) and mark them restored, in one transaction."""
        if not batch.indices:
            return 0
        with self.timings.phase("store"), _Tx(self.conn) as conn:
            _insert_restored(conn, log, batch)
            if only is None:
                conn.execute("UPDATE pruned SET state='restored' WHERE log=? AND idx>=? AND idx<? AND segment=? "
                             "AND state='archived'", (log, start, end, key))
            else:
                conn.executemany("UPDATE pruned SET state='restored' WHERE log=? AND idx=? AND state='archived'",
                                 [(log, idx) for idx in batch.indices])
        return len(batch.indices)

    def _verified_entries(self, log: str, key: str) -> tuple[list[int], list[bytes], list[bytes]]:
        """(indices, entries, leaf hashes) of a segment that verified on its own."""
        if self.archive is None or self.verifier is None:
            raise RetentionError("restoring needs an archive and the log's verifier")
        with self.timings.phase("verify"):
            try:
                opened = seg.open_segment(self.archive.target.get(key), self.archive.keys)
                leaves = seg.check_segment(opened, self._verifiers(log), seg.SegmentReport(opened.manifest))
            except seg.SegmentError as exc:
                raise RetentionError(f"segment {key} does not verify: {exc}") from None
            return opened.body.indices, opened.body.entries, leaves

    # -- verifying -------------------------------------------------------------------------------
    def verify(self, log: str, verifiers: Sequence[Verifier] | None = None, *, trusted: str | None = None,
               deep: bool = False) -> lv.VerifyReport:
        """verify_log that accepts pruned entries; deep also verifies every live segment on its own."""
        verifiers = verifiers or self._verifiers(log)
        report = verify_log_pruned(self.store, log, verifiers, trusted=trusted)
        if deep and report.ok and self.archive is not None:
            report.problem = self._deep_problem(log, verifiers)
        return report

    def _deep_problem(self, log: str, verifiers: Sequence[Verifier]) -> str | None:
        """The first live segment that fails, or whose entries' leaves differ from the recorded ones."""
        for key, lo, hi in self.conn.execute("SELECT key, start_idx, end_idx FROM archive_segments WHERE log=? AND "
                                             "deleted IS NULL ORDER BY start_idx", (log,)).fetchall():
            report = self.archive.verify(key, verifiers)
            if not report.ok:
                return f"segment {key}: {report.problem}"
            recorded = dict(self.conn.execute("SELECT idx, leaf_hash FROM pruned WHERE log=? AND idx>=? AND idx<? "
                                              "AND segment=? AND state != 'expired'", (log, lo, hi, key)).fetchall())
            for idx, entry in self.archive.open(key).entries():
                if idx in recorded and recorded[idx] != leaf_hash(entry):
                    return f"segment {key}: entry {idx} differs from its recorded leaf hash"
        return None


_PRUNED_COLUMNS = ("log, idx, id, leaf_hash, category, received, time, action, outcome, actor_id, state, policy, "
                   "segment, archived_at, source_component, source_kind")
# ?1 the leaves as one blob (in index order), ?2 policy, ?3 segment key, ?4 stamp, ?5 log; the entries are
# either a run of indices (?6 first, ?7 last) or a JSON array of them (?6)
_ARCHIVED = (f"INSERT INTO pruned ({_PRUNED_COLUMNS}) SELECT e.log, e.idx, e.id, substr(?1, {{at}} * 32 + 1, 32), "
             "e.category, e.received, e.time, e.action, e.outcome, e.actor_id, 'archived', ?2, ?3, ?4, {source} FROM {rows}")
_RUN_ROWS = "entries AS e WHERE e.log = ?5 AND e.idx BETWEEN ?6 AND ?7"
_CHOSEN_ROWS = "json_each(?6) AS j CROSS JOIN entries AS e ON e.log = ?5 AND e.idx = j.value"
# the entries' sources are recorded only where a policy is chosen by source (json_extract costs every row)
_SOURCE = {False: "NULL, NULL", True: "json_extract(e.data, '$.source.component'), json_extract(e.data, '$.source.kind')"}
_ARCHIVED_RUN_SQLITE = {sourced: _ARCHIVED.format(at="(e.idx - ?6)", rows=_RUN_ROWS, source=source)
                        for sourced, source in _SOURCE.items()}
_ARCHIVED_SQLITE = {sourced: _ARCHIVED.format(at="j.key", rows=_CHOSEN_ROWS, source=source)
                    for sourced, source in _SOURCE.items()}


def _insert_archived(conn, log: str, rows: list[_Row], written: Written, policy: str, stamp: str,
                     sourced: bool = False) -> None:
    """Record rows, just written to a segment, in `pruned` as archived, with the leaf hashes the segment
    checked against the tiles (``sourced``: and each entry's source, which later picks its policy).

    SQLite: one INSERT ... SELECT that takes the columns from the `entries` rows (a range of indices, or a
    JSON array of them where the rows have gaps; the leaves as one blob), not a statement per row; every row
    must still be there (the transaction rolls back otherwise)."""
    if is_postgres(conn):
        conn.executemany(
            f"INSERT INTO pruned ({_PRUNED_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,'archived',?,?,?,?,?)",
            [(log, r.idx, r.id, leaf, r.category, r.received, r.time, r.action, r.outcome, r.actor_id, policy,
              written.key, stamp, *(source_of(r.data) if sourced else (None, None)))
             for r, leaf in zip(rows, written.leaves, strict=True)])
        return
    first, last, given = rows[0].idx, rows[-1].idx, (b"".join(written.leaves), policy, written.key, stamp, log)
    if last - first + 1 == len(rows):
        count = conn.execute(_ARCHIVED_RUN_SQLITE[sourced], (*given, first, last)).rowcount
    else:
        count = conn.execute(_ARCHIVED_SQLITE[sourced], (*given, json.dumps([r.idx for r in rows]))).rowcount
    if count != len(rows):
        raise RetentionError(f"segment {written.key}: {len(rows) - count} of its entries left the store while "
                             "it was written; nothing was recorded (run apply again)")


def _step(log: str, policy: Policy, action: str, indices: Sequence[int]) -> Step:
    """A step over sorted indices."""
    if not indices:
        return Step(log, policy.name, action, 0)
    return Step(log, policy.name, action, len(indices), indices[0], indices[-1])


def _matching(recorded: list[tuple[int, bytes]], indices: list[int], entries: list[bytes],
              leaves: list[bytes]) -> _Restoring:
    """The segment's entries at the recorded (index, leaf hash) rows (sorted), each of which must be in the
    segment with that leaf hash; one comparison when they are the whole segment."""
    if len(recorded) == len(indices) and [r[0] for r in recorded] == indices \
            and b"".join(r[1] for r in recorded) == b"".join(leaves):
        return _Restoring(indices, entries)
    payload = dict(zip(indices, zip(entries, leaves, strict=True), strict=True))
    return _Restoring([idx for idx, _ in recorded], [_restored(payload, idx, leaf) for idx, leaf in recorded])


def _restored(payload: dict[int, tuple[bytes, bytes]], idx: int, leaf: bytes) -> bytes:
    """The archived entry idx, which must hash to its recorded leaf."""
    data, hashed = payload.get(idx, (b"", b""))
    if hashed != leaf:
        raise RetentionError(f"the archive's entry {idx} is missing or does not match its leaf hash")
    return data


_RESTORED = (
    "INSERT INTO entries (idx, id, time, received, category, action, outcome, actor_id, data, log) "
    "SELECT p.idx, p.id, p.time, p.received, p.category, p.action, p.outcome, p.actor_id, {data}, p.log FROM {rows}")
_OFFSET = "CAST(substr(?2, {at} * 20 + {plus}, 20) AS INTEGER)"  # where the entry at position `at` starts (1) / ends (21)
# the i-th entry's bytes: by its position in the JSON array of indices, or, in a run without gaps, by idx - first
_RESTORED_SQLITE = _RESTORED.format(
    data="substr(?1, s.start + 1, s.stop - s.start)",
    rows=f"(SELECT j.value AS idx, {_OFFSET.format(at='j.key', plus=1)} AS start, {_OFFSET.format(at='j.key', plus=21)} "
         "AS stop FROM json_each(?3) AS j) AS s CROSS JOIN pruned AS p ON p.log = ?4 AND p.idx = s.idx AND p.state = 'archived'")
_RUN_START, _RUN_STOP = (_OFFSET.format(at="(p.idx - ?5)", plus=plus) for plus in (1, 21))
_RESTORED_RUN_SQLITE = _RESTORED.format(
    data=f"substr(?1, {_RUN_START} + 1, {_RUN_STOP} - {_RUN_START})",
    rows="pruned AS p WHERE p.log = ?4 AND p.idx BETWEEN ?5 AND ?6 AND p.state = 'archived'")
_RESTORED_POSTGRES = (
    "INSERT INTO entries (idx, id, time, received, category, action, outcome, actor_id, data, log) "
    "SELECT p.idx, p.id, p.time::timestamptz, p.received::timestamptz, p.category, p.action, p.outcome, p.actor_id, "
    "u.data, p.log FROM unnest(?::bigint[], ?::bytea[]) AS u(idx, data) JOIN pruned p ON p.log = ? AND p.idx = u.idx "
    "AND p.state = 'archived' ORDER BY p.idx")


def _insert_restored(conn, log: str, batch: _Restoring) -> None:
    """Put archived entries back in `entries`, their other columns from their `pruned` rows, in one statement.

    SQLite gets them packed (see _packed). Every entry must still be archived."""
    if is_postgres(conn):
        count = conn.execute(_RESTORED_POSTGRES, (batch.indices, batch.entries, log)).rowcount
    else:
        entries, offsets, indices = batch.packed or _packed(batch).packed
        first, last = batch.indices[0], batch.indices[-1]
        if last - first + 1 == len(batch.indices):  # a run without gaps: a range scan, no lookup per entry
            count = conn.execute(_RESTORED_RUN_SQLITE, (entries, offsets, None, log, first, last)).rowcount
        else:
            count = conn.execute(_RESTORED_SQLITE, (entries, offsets, indices, log)).rowcount
    if count != len(batch.indices):
        raise RetentionError(f"{len(batch.indices) - count} of the entries to restore are no longer archived; "
                             "nothing was restored (run restore again)")


def _merge(hot: Iterable[tuple[int, bytes]], pruned: list[tuple]) -> Iterator[tuple[int, bytes | tuple]]:
    """Hot (index, bytes) and pruned rows merged by index."""
    rows = iter(pruned)
    nxt = next(rows, None)
    for idx, data in hot:
        while nxt is not None and nxt[0] < idx:
            yield nxt[0], nxt
            nxt = next(rows, None)
        yield idx, data
    while nxt is not None:
        yield nxt[0], nxt
        nxt = next(rows, None)


# -- pruned-aware verification -------------------------------------------------------------------
def read_pruned(store, log: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(index, recorded leaf hash) of pruned entries with start <= index < end."""
    return store.read_pruned(log, start, end)


def verify_log_pruned(store, log: str, verifiers: Sequence[Verifier], *, trusted: str | None = None,
                      progress: Callable[[int, int], None] | None = None) -> lv.VerifyReport:
    """ledger.verify.verify_log: a pruned entry counts by its recorded leaf hash (store.read_pruned)."""
    return lv.verify_log(store, log, verifiers, trusted=trusted, progress=progress)


# -- reads that fall back to the archive -----------------------------------------------------------
class OfflineError(IndexError):
    """An entry's payload is not in the store and cannot be read from the archive; says why."""


class PrunedError(OfflineError):
    """The entry's payload expired: it reads as 'pruned by policy P on date D'."""

    def __init__(self, pruned: PrunedEntry):
        """Keep the notice."""
        super().__init__(str(pruned))
        self.pruned = pruned


class OfflineReads:
    """Entries whose payload left the store: archived ones from their (cached, decrypted) segment."""

    def __init__(self, store, archive: Archive | None, problem: str | None = None):
        """Read pruned rows from store and segments from archive (None: none, or problem says why not)."""
        self.store = store
        self.archive = archive
        self.problem = problem

    @classmethod
    def for_trail(cls, trail) -> OfflineReads:
        """The data dir's reader, made once per open trail (it caches opened segments)."""
        reader = getattr(trail, "_offline_reads", None)
        if reader is None:
            conf = (trail.config.retention or {}).get("archive")
            archive, problem = None, None
            if conf:
                from trailseal.archive import open_archive
                from trailseal.archive.crypto import CryptoError

                try:
                    archive = open_archive(conf, trail.directory)
                except (ArchiveError, CryptoError, OSError, ValueError) as exc:
                    problem = f"the archive configured in retention.archive cannot be opened: {exc}"
            reader = trail._offline_reads = cls(trail.store, archive, problem)  # noqa: SLF001 - a cache on the trail
        return reader

    def read(self, log: str, index: int) -> bytes:
        """The archived bytes of entry index; PrunedError if it expired, OfflineError if not pruned at all."""
        row = self._row(log, index)
        if row is None:
            raise OfflineError(f"log {log!r} has no entry {index}")
        state, leaf, policy, segment, expired_at = row
        if state == "expired":
            raise PrunedError(PrunedEntry(log, index, leaf, policy, expired_at))
        if self.archive is None:
            raise OfflineError(f"entry {index} of log {log!r} is archived in segment {segment}, but "
                               + (self.problem or "no archive is configured to read it from (retention.archive)"))
        return self._from_segment(log, index, segment, leaf)

    def _row(self, log: str, index: int) -> tuple | None:
        """(state, leaf hash, policy, segment, expired_at) of a pruned entry, or None."""
        conn = connection(self.store)
        if not _has_pruned(conn):
            return None
        return conn.execute("SELECT state, leaf_hash, policy, segment, expired_at FROM pruned WHERE log=? AND idx=?",
                            (log, index)).fetchone()

    def _from_segment(self, log: str, index: int, segment: str, leaf: bytes) -> bytes:
        """The entry from its segment, which must hash to the leaf recorded when it was archived."""
        try:
            opened = self.archive.open(segment)
        except (ArchiveError, seg.SegmentError) as exc:
            raise OfflineError(f"entry {index} of log {log!r}: archive segment {segment}: {exc}") from None
        at = bisect.bisect_left(opened.body.indices, index)
        if at == len(opened.body.indices) or opened.body.indices[at] != index:
            raise OfflineError(f"archive segment {segment} does not hold entry {index} of log {log!r}")
        data = opened.body.entries[at]
        if leaf_hash(data) != leaf:
            raise OfflineError(f"entry {index} of log {log!r} in segment {segment} does not match its leaf hash")
        return data


def read_offline(trail, log: str, index: int) -> bytes:
    """An entry that is not in the trail's store: from the archive, or PrunedError / OfflineError."""
    return OfflineReads.for_trail(trail).read(log, index)


# -- scheduled work in `serve` ---------------------------------------------------------------------
def scheduled_apply(trail) -> Callable[[], None]:
    """The `serve` job: apply retention now (archive, expire, delete ended segments), logging what it did."""
    import logging

    log = logging.getLogger("trailseal.retention")
    state: dict[str, Retention] = {}

    def run() -> None:
        if "retention" not in state:
            state["retention"] = Retention.from_trail(trail)
        applied = state["retention"].apply()
        if applied.steps or applied.deleted:
            log.info("retention: archived %d, expired %d, deleted %d segments", applied.count("archive"),
                     applied.count("expire"), len(applied.deleted))
    return run


def _has_pruned(conn) -> bool:
    """Whether retention ever ran on this store (its `pruned` table exists)."""
    if is_postgres(conn):
        return conn.execute("SELECT to_regclass('pruned') IS NOT NULL").fetchone()[0]
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='pruned'").fetchone() is not None


def _has_search_index(conn) -> bool:
    """Whether the store is SQLite with the search indexes of query/index.py."""
    if is_postgres(conn):
        return False
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name='query_state'").fetchone() is not None


def unindex(conn, log: str, indices: Sequence[int], words: Sequence[str] | None = None) -> None:
    """Inside the transaction that drops these payloads: take them out of the search indexes too
    (query/index.py on SQLite, query/index_pg.py on PostgreSQL), so nothing of a payload that left the
    store stays searchable. words: the entries' index.indexed_words, if already worked out."""
    if is_postgres(conn):
        from trailseal.query import index_pg

        index_pg.forget(conn.raw, log, indices)
    elif _has_search_index(conn):
        index.forget(conn, log, indices, words)

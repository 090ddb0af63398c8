"""Integrity watch: `serve` re-verifies incrementally on a schedule. New entries are re-hashed onto
the tree last verified, the result must equal the newest signed checkpoint, and that checkpoint's
signature must hold. A disagreement seals a `trailseal.integrity.failed` event, which the built-in
rule turns into a critical alert."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field

from trailseal.event import from_dict
from trailseal.ledger import LedgerError, TreeState, open_checkpoint
from trailseal.ledger.verify import as_bytes, verify_log

log = logging.getLogger("trailseal.integrity")


@dataclass
class WatchState:
    """Per log: the tree as this watch rebuilt it, and the outcome of the last check."""

    tree: TreeState = field(default_factory=TreeState.empty)
    ok: bool = True
    problem: str | None = None
    checked_at: str | None = None


class IntegrityWatch:
    """Full verify at start, incremental checks every ``interval`` seconds, full again now and then."""

    def __init__(self, trail, interval: float = 30.0, full_every: int = 20):
        self.trail, self.interval, self.full_every = trail, interval, full_every
        self.ticks = 0
        self.states: dict[str, WatchState] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trailseal-integrity", daemon=True)

    def start(self) -> IntegrityWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_all()
            except Exception:  # noqa: BLE001 - the watch must keep watching
                log.exception("integrity check crashed")
            self._stop.wait(self.interval)

    def check_all(self) -> None:
        """One tick: incremental checks, and every ``full_every`` ticks a full re-verify (edits to
        entries that were already verified are only visible to a full pass)."""
        self.ticks += 1
        if self.ticks % self.full_every == 0:
            self.states = {name: state for name, state in self.states.items() if not state.ok}
        for info in self.trail.logs():
            self.check(info.name)

    def check(self, name: str) -> WatchState:
        """Bring one log's rebuilt tree up to its newest checkpoint and compare."""
        state = self.states.get(name)
        if state is None:
            state = self.states[name] = self._full(name)
        elif state.ok:
            self._incremental(name, state)
        state.checked_at = self.trail.clock()
        return state

    def _full(self, name: str) -> WatchState:
        report = verify_log(self.trail.store, name, self.trail.verifiers(name))  # rotated keys too
        state = WatchState()
        if not report.ok:
            self._failed(name, state, report.problem or "verify failed", report.first_bad_index)
            return state
        size = report.entries
        state.tree = TreeState.restore(size, self.trail.store.edge_tiles(name, size)) if size else TreeState.empty()
        return state

    def _incremental(self, name: str, state: WatchState) -> None:
        note = self.trail.checkpoint(name)
        if note is None:
            return
        try:
            head = open_checkpoint(note, [self.trail.verifier(name)])
        except LedgerError as exc:
            self._failed(name, state, f"the newest checkpoint does not verify: {exc}", None)
            return
        if head.size < state.tree.size:
            self._failed(name, state, f"the log shrank from {state.tree.size} to {head.size} entries", head.size)
            return
        start = state.tree.size
        leaves = [hashlib.sha256(b"\x00" + as_bytes(data)).digest()
                  for _, data in self.trail.store.read_entries(name, start, head.size)]
        if len(leaves) != head.size - start:
            self._failed(name, state, f"entries {start}..{head.size - 1} are not all stored", start + len(leaves))
            return
        state.tree.append(leaves)
        state.tree.take_dirty_tiles()
        if state.tree.root() != head.root:
            self._failed(name, state, f"entries {start}..{head.size - 1} do not hash to the signed checkpoint "
                                      f"at size {head.size}", start)

    def _failed(self, name: str, state: WatchState, problem: str, index: int | None) -> None:
        state.ok, state.problem = False, problem
        log.error("integrity of log %s: %s", name, problem)
        if name == "trailseal":
            return  # never seal into the log that just failed
        event = {
            "log": "trailseal", "time": self.trail.clock(), "category": "system",
            "action": "trailseal.integrity.failed", "outcome": "failure", "severity": "critical",
            "reason": problem[:1000], "actor": {"id": "trailseal-integrity", "type": "system"},
            "source": {"component": "trailseal-integrity", "kind": "trailseal", "format": "trailseal"},
            "target": {"type": "log", "id": name},
            "attributes": {"first_bad_index": index},
        }
        self.trail.sealer.seal([from_dict(event, self.trail.clock())])

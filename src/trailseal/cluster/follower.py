"""Detector and api nodes see the sealed stream by following the shared store (no local writer)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from trailseal.privacy import commitments_in

log = logging.getLogger("trailseal.follower")
CHUNK = 5_000


class StoreFollower:
    """Polls each log's size and hands entries sealed since the last look to ``on_commit`` observers,
    in the shape the Sealer gives them: (log, index, bytes, vault rows)."""

    def __init__(self, trail, observers: list[Callable], interval: float = 0.5):
        self.trail, self.observers, self.interval = trail, observers, interval
        self.positions: dict[str, int] = {}
        self.delivered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trailseal-follower", daemon=True)

    def start(self, from_start: bool = False) -> StoreFollower:
        """Follow from now on (or from every log's first entry)."""
        if not from_start:
            self.positions = {info.name: info.size for info in self.trail.store.logs()}
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the store may be restarting; try again next tick
                log.exception("following the store failed")

    def poll(self) -> int:
        """Deliver everything sealed since the last poll; how many entries that was."""
        count = 0
        for info in self.trail.store.logs():
            start = self.positions.get(info.name, 0)
            while start < info.size:
                end = min(info.size, start + CHUNK)
                sealed = self._read(info.name, start, end)
                for observer in self.observers:
                    observer(sealed)
                count += len(sealed)
                start = self.positions[info.name] = end
        self.delivered += count
        return count

    def _read(self, name: str, start: int, end: int) -> list[tuple[str, int, bytes, tuple]]:
        """Entries start..end with the vault rows their commitments still have."""
        rows = [(index, bytes(data)) for index, data in self.trail.store.read_entries(name, start, end)]
        held = [commitments_in(json.loads(data)) for _, data in rows]
        wanted = set().union(*held) if held else set()
        vault = self.trail.store.vault_get(sorted(wanted)) if wanted else {}
        return [(name, index, data, tuple(vault[c] for c in mine if c in vault))
                for (index, data), mine in zip(rows, held, strict=True)]

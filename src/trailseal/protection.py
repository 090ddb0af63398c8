"""The privacy stage of the pipeline: every event is protected before it is sealed (DESIGN §3),
reads join erasable values back from the vault, and erasure deletes a subject's vault rows."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from trailseal.event import EventError, Sealable, decode_sealed, encode_event
from trailseal.privacy import Keys, Policy, PolicyError, commitments_in, protect, reveal, search_token

KEY_FILE = "privacy.key"


class Protection:
    """Policy + keys, applied to every event before sealing; off only when the config says so."""

    def __init__(self, policy: Policy, keys: Keys, enabled: bool = True, cache_size: int = 100_000):
        self.policy, self.keys, self.enabled = policy, keys, enabled
        self.cache_size = cache_size
        self._commitments: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path, settings: dict[str, Any]) -> Protection:
        """From the config's [privacy] table and the data dir's privacy.key (made on first use, 0600)."""
        settings = dict(settings)
        enabled = settings.pop("enabled", True)
        try:
            policy = Policy(settings)
        except PolicyError as exc:
            raise ValueError(f"[privacy] in trailseal.toml: {exc}") from None
        return cls(policy, Keys(read_or_create_key(directory / KEY_FILE)), bool(enabled))

    def apply(self, item: Sealable) -> Sealable:
        """The event as it will be sealed, with its vault rows; raises EventError if it cannot be."""
        if item.protected:
            return item
        if not self.enabled:
            return msgspec.structs.replace(item, protected=True)
        protected = protect(item.event, self.policy, self.keys)
        event = protected.event
        data = encode_event(event)
        rows, swaps = self._reuse(protected.vault_rows)
        if swaps:
            for fresh, known in swaps.items():
                data = data.replace(fresh.encode(), known.encode())
            event = decode_sealed(data)
        return Sealable(event.id, event.log, event, data, tuple(rows), protected=True)

    def _reuse(self, rows) -> tuple[list, dict[str, str]]:
        """One vault row per (log, subject, value): a value already held keeps its commitment (and its
        random salt), so the vault grows with distinct values, not with events. Erasure forgets them."""
        keep, swaps = [], {}
        with self._lock:
            for row in rows:
                key = (row.log, row.subject, row.value)
                known = self._commitments.get(key)
                if known is None:
                    self._commitments[key] = row.commitment
                    if len(self._commitments) > self.cache_size:
                        self._commitments.popitem(last=False)
                    keep.append(row)
                else:
                    self._commitments.move_to_end(key)
                    swaps[row.commitment] = known
        return keep, swaps

    def forget(self, subject: str, log: str | None = None) -> None:
        """After an erasure: the subject's next values get fresh salts and fresh vault rows."""
        with self._lock:
            for key in [k for k in self._commitments if k[1] == subject and (log is None or k[0] == log)]:
                del self._commitments[key]

    def reveal_all(self, store, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sealed events with every value still in the vault joined back (erased ones stay `pd:`)."""
        wanted = set()
        for event in events:
            wanted |= commitments_in(event)
        if not wanted:
            return list(events)
        rows = store.vault_get(sorted(wanted))
        return [reveal(event, rows) for event in events]

    def actor_commitments(self, store, actor: str, logs: Iterable[str]) -> list[str]:
        """The sealed actor ids (commitments) of ``actor`` in these logs, found by search token."""
        found: list[str] = []
        for log in logs:
            found.extend(store.vault_find(search_token(actor, log, self.keys), log))
        return found

    def subject_token(self, subject: str, log: str) -> str:
        """What an erasure record names instead of the subject: its keyed HMAC."""
        return search_token(subject, log, self.keys)

    def describe(self) -> str:
        state = "on" if self.enabled else "OFF (personal data is sealed as sent)"
        return f"privacy protection: {state}\npolicy fingerprint: {self.policy.fingerprint()}\n" \
               + self.policy.describe()


def read_or_create_key(path: Path) -> bytes:
    """The 32-byte privacy master secret (hex in a 0600 file)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise ValueError(f"{path} is not a hex privacy key; restore it from backup") from None


def protect_or_error(protection: Protection, item: Sealable) -> Sealable:
    """apply(), with anything unexpected in a hostile value turned into a per-record EventError."""
    try:
        return protection.apply(item)
    except EventError:
        raise
    except (ValueError, msgspec.ValidationError) as exc:
        raise EventError(f"privacy protection failed: {exc}") from None

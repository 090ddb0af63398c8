"""The privacy stage of the pipeline: every event is protected before it is sealed (DESIGN §3),
reads join erasable values back from the vault, and erasure deletes a subject's vault rows."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from trailseal.event import (
    MAX_DEPTH,
    Event,
    EventError,
    Sealable,
    decode_sealed,
    encode_event,
    from_dict,
    normalize,
)
from trailseal.privacy import (
    Keys,
    Policy,
    PolicyError,
    commitments_in,
    protect,
    pseudonym,
    reveal,
    search_token,
)
from trailseal.privacy.vault import VaultRow
from trailseal.store.base import Filters

KEY_FILE = "privacy.key"
META_LOG = "trailseal"
POLICY_ACTION = "privacy.policy"


class Protection:
    """Policy + keys, applied to every event before sealing; off only when the config says so."""

    def __init__(self, policy: Policy, keys: Keys, enabled: bool = True, cache_size: int = 100_000):
        self.policy, self.keys, self.enabled = policy, keys, enabled
        self.cache_size = cache_size
        # (log, subject, value) -> the commitment of a value whose vault row is written; or, until the
        # writer says it is (``confirm``), the row itself: an event reusing it carries a copy of the row
        self._commitments: OrderedDict[tuple[str, str, str], str | VaultRow] = OrderedDict()
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
        return self._protected(item.event)

    def seal_form(self, event: Event) -> Sealable:
        """A normalized event, not yet encoded, as it will be sealed (encoded once, after protection)."""
        if not self.enabled:
            return Sealable(event.id, event.log, event, encode_event(event), protected=True)
        return self._protected(event)

    def _protected(self, event: Event) -> Sealable:
        event, rows = protect(event, self.policy, self.keys, self._commitments)
        if not rows:  # nothing new for the vault (most events): nothing to remember or swap
            return Sealable(event.id, event.log, event, encode_event(event), (), True)
        return self._with_rows(event, rows)

    def _with_rows(self, event: Event, rows: list) -> Sealable:
        """The Sealable of a protected event and its vault rows, each new value remembered as held until
        written (and forgotten again if the event cannot be sealed)."""
        rows, swaps = self._reuse(rows)
        try:
            return self._swapped(event, rows, swaps)
        except BaseException:
            self.unhold(rows)
            raise

    def _swapped(self, event: Event, rows: list, swaps: dict[str, tuple[str, str]]) -> Sealable:
        swapped = _swap_actor_fields(event, swaps) if swaps else event
        if swapped is not None:
            return Sealable(event.id, event.log, swapped, encode_event(swapped), tuple(rows), protected=True)
        data = encode_event(event)  # a commitment inside free text: swap it in the bytes
        for fresh, (known, _) in swaps.items():
            data = data.replace(fresh.encode(), known.encode())
        event = decode_sealed(data)
        return Sealable(event.id, event.log, event, data, tuple(rows), protected=True)

    def unhold(self, rows: Iterable[Any]) -> None:
        """Forget the values of vault rows that will not be written after all (their event or batch was
        refused), so the next event with such a value gets a row of its own instead of reusing one."""
        with self._lock:
            for row in rows:
                key = (row.log, row.subject, row.value)
                if _commitment_of(self._commitments.get(key)) == row.commitment:
                    del self._commitments[key]

    def confirm(self, rows: Iterable[Any]) -> None:
        """Vault rows the writer committed (``Sealer.on_written``): events may now reuse their commitments
        without carrying the rows. A row that is no longer the one held for its value changes nothing."""
        self.confirm_values((row.log, row.subject, row.value, row.commitment) for row in rows)

    def confirm_values(self, values: Iterable[Sequence[str]]) -> None:
        """``confirm`` of (log, subject, value, commitment) values (what the prepare workers are told)."""
        with self._lock:
            commitments = self._commitments
            for log, subject, value, commitment in values:
                key = (log, subject, value)
                known = commitments.get(key)
                if type(known) is VaultRow and known.commitment == commitment:
                    commitments[key] = commitment

    def _reuse(self, rows) -> tuple[list, dict[str, tuple[str, str]]]:
        """One commitment per (log, subject, value): a value already held keeps its commitment (and its
        random salt), so the vault grows with distinct values, not with events. Erasure forgets them. A new
        value is held as its row until the writer confirms it; an event reusing such a value keeps a copy
        of the row. Returns the rows to keep and, for each fresh commitment to replace, (known, field)."""
        keep, swaps = [], {}
        with self._lock:
            commitments = self._commitments
            for row in rows:
                key = (row.log, row.subject, row.value)
                known = commitments.get(key)
                if known is None:
                    commitments[key] = row
                    if len(commitments) > self.cache_size:
                        commitments.popitem(last=False)
                    keep.append(row)
                    continue
                commitments.move_to_end(key)
                if type(known) is VaultRow:
                    if known not in keep:
                        keep.append(known)  # not yet written: this event carries the row too
                    known = known.commitment
                if known != row.commitment:  # a fresh commitment made while another thread held the value
                    swaps[row.commitment] = (known, row.field)
        return keep, swaps

    def held(self) -> list[tuple[str, str, str, str]]:
        """Every value remembered as in the vault (its row written), as (log, subject, value, commitment)."""
        with self._lock:
            return [(*key, known) for key, known in self._commitments.items() if type(known) is str]

    def hold(self, values: Sequence[Sequence[str]]) -> None:
        """Remember (log, subject, value, commitment) values as in the vault (another process's cache)."""
        with self._lock:
            for log, subject, value, commitment in values:
                self._commitments[(log, subject, value)] = commitment
            while len(self._commitments) > self.cache_size:
                self._commitments.popitem(last=False)

    def forget_all(self) -> None:
        """After a failed commit: vault rows of values remembered here may never have been written."""
        with self._lock:
            self._commitments.clear()

    def forget_tokens(self, tokens: set[str]) -> int:
        """Forget the values of the subjects whose search tokens these are (another node erased or expired
        them); returns how many values went."""
        with self._lock:
            keys = list(self._commitments)
        token_of = {pair: self.subject_token(pair[1], pair[0]) for pair in {key[:2] for key in keys}}
        doomed = [key for key in keys if token_of[key[:2]] in tokens]
        with self._lock:
            for key in doomed:
                self._commitments.pop(key, None)
        return len(doomed)

    def forget(self, subject: str, log: str | None = None) -> None:
        """After an erasure: the subject's next values get fresh salts and fresh vault rows."""
        self.forget_subjects([subject], log)

    def forget_subjects(self, subjects: Iterable[str], log: str | None = None) -> None:
        """``forget`` of many subjects, in one pass over the cache (retention may expire thousands)."""
        doomed = set(subjects)
        with self._lock:
            for key in [k for k in self._commitments if k[1] in doomed and (log is None or k[0] == log)]:
                del self._commitments[key]

    def reveal_all(self, store, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sealed events with every value still in the vault joined back (erased ones stay `pd:`)."""
        found = [commitments_in(event) for event in events]
        wanted = set().union(*found)
        if not wanted:
            return list(events)
        rows = store.vault_get(sorted(wanted))
        # each event gets only its own rows: reveal() indexes what it is given, once per event
        return [reveal(event, [rows[c] for c in mine if c in rows]) if mine else event
                for event, mine in zip(events, found, strict=True)]

    def actor_commitments(self, store, actor: str, logs: Iterable[str]) -> list[str]:
        """The sealed actor ids (commitments) of ``actor`` in these logs, found by search token."""
        found: list[str] = []
        for log in logs:
            found.extend(store.vault_find(search_token(actor, log, self.keys), log))
        return found

    def sealed_forms(self, store, value: str, logs: Iterable[str]) -> list[str]:
        """Every form a field's value may be sealed in, in these logs, whatever the policy did to it: as
        sent (kept), its pseudonym in each log, and each commitment of it the vault holds (found by its
        search token)."""
        logs = list(logs)
        pseudonyms = [pseudonym(value, log, self.keys) for log in logs]
        return list(dict.fromkeys([value, *pseudonyms, *self.actor_commitments(store, value, logs)]))

    def subject_token(self, subject: str, log: str) -> str:
        """What an erasure record names instead of the subject: its keyed HMAC."""
        return search_token(subject, log, self.keys)

    def policy_record(self, log: str, now: str) -> Sealable:
        """The `privacy.policy` meta event that says which policy protects ``log`` from now on: its
        fingerprint, whether it is on, and the policy document itself (defaults included)."""
        attributes: dict[str, Any] = {"fingerprint": self.policy.fingerprint(), "enabled": self.enabled,
                                      "policy": self.policy.canonical()}
        event = {
            "log": META_LOG, "time": now, "category": "config", "action": POLICY_ACTION, "outcome": "success",
            "actor": {"id": "trailseal", "type": "system"},
            "source": {"component": "trailseal", "kind": "trailseal", "format": "trailseal"},
            "target": {"type": "log", "id": log}, "attributes": attributes,
        }
        try:
            item = from_dict(event, now)
        except EventError:  # a policy too big for one entry: its fingerprint still pins it
            item = from_dict({**event, "attributes": {**attributes, "policy": None}}, now)
        return msgspec.structs.replace(item, protected=True)  # configuration only, no personal data

    def is_recorded(self, store, log: str) -> bool:
        """True if the newest `privacy.policy` record of ``log`` names the policy in force now."""
        rows = store.select([META_LOG], Filters(action_prefix=POLICY_ACTION, target_id=log), None, 1)
        if not rows:
            return False
        attributes = msgspec.json.decode(rows[0][3]).get("attributes", {})
        return (attributes.get("fingerprint"), attributes.get("enabled")) == (self.policy.fingerprint(),
                                                                             self.enabled)

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


ACTOR_FIELDS = frozenset({"actor.id", "actor.name", "actor.ip", "actor.user_agent", "actor.session"})


def _commitment_of(known: str | VaultRow | None) -> str | None:
    return known.commitment if type(known) is VaultRow else known


def _swap_actor_fields(event: Event, swaps: dict[str, tuple[str, str]]) -> Event | None:
    """The event with known commitments in place of fresh ones, when each is a whole actor field;
    None when one sits elsewhere (then the caller swaps them in the encoded bytes)."""
    changes = {}
    for fresh, (known, field) in swaps.items():
        name = field[len("actor."):]
        if field not in ACTOR_FIELDS or getattr(event.actor, name) != fresh:
            return None
        changes[name] = known
    return msgspec.structs.replace(event, actor=msgspec.structs.replace(event.actor, **changes))


def protect_or_error(protection: Protection, item: Sealable) -> Sealable:
    """apply(), with anything unexpected in a hostile value turned into a per-record EventError."""
    return _per_record(protection.apply, item)


def seal_form_or_error(protection: Protection, event: Event, assigned: bool = False) -> Sealable:
    """seal_form(), with anything unexpected in a hostile value turned into a per-record EventError;
    ``assigned``: normalize() gave the event its id (see Sealable.assigned)."""
    item = _per_record(protection.seal_form, event)
    return msgspec.structs.replace(item, assigned=True) if assigned else item


def seal_received(protection: Protection, event: Event, received: str, logs: Collection[str] | None = None
                  ) -> Sealable:
    """An event as it arrived: normalized, then in the form it will be sealed in (seal_form_or_error). With
    ``logs`` (what a token may write to), an event in another log is refused before protection: a refused
    event's values must not be remembered as in the vault."""
    assigned = event.id is None
    normalize(event, received)
    if logs is not None and event.log not in logs:
        raise EventError(f"this token may not write to log {event.log!r}", "log")
    return seal_form_or_error(protection, event, assigned)


def _per_record(step, value):
    try:
        return step(value)
    except EventError:
        raise
    except (ValueError, msgspec.ValidationError) as exc:
        raise EventError(f"privacy protection failed: {exc}") from None
    except RecursionError:  # nested past Python's own limit (hundreds of levels) in a Python object
        raise EventError(f"nested deeper than {MAX_DEPTH} levels", "attributes") from None

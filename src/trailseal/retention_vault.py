"""Vault values of expired entries go with them (GDPR Art. 5(1)(e), storage limitation).

A vault row belongs to one data subject in one log: the actor of the event that made it (the protection
cache is keyed by subject, so every event reusing a row's commitment has that actor). The subject's rows in
a log are needed while any entry of theirs there is retained: hot (held and restored ones included) or
archived. When `Retention.apply` expires entries, it deletes the rows of their subjects once nothing of
theirs is retained in that log:

1. the subjects of the expired entries, from the sealed actor id: a commitment is read back through the
   vault, a pseudonym through the commitments the entry holds and by working out the pseudonym of each
   subject with rows in the log (an archived entry's payload is not at hand), an id kept as sent is the
   subject itself;
2. of those, the ones no retained entry names, in any form their actor id may be sealed in;
3. forgotten by the protection caches (this process and its prepare workers; on the bus, every other node
   is told by search token), so that a new event of theirs gets new rows instead of reusing one about to go;
4. after a drain (an event protected before that reaches the writer) and a barrier (the writer's queue
   committed; on the bus, every event of the log that was in the stream sealed, whichever sequencer seals it),
   checked again and deleted in one write transaction (on PostgreSQL with `entries` and `vault` locked
   against the writer, which SQLite's write lock does by itself).

Only logs whose policy seals a subject-naming actor id (`Policy.identifies_actor`) are handled: a masked or
dropped actor id names nobody, so whose rows an entry needs cannot be told from it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trailseal.privacy.tokens import COMMITMENT_RE, PSEUDONYM_PREFIX, pseudonym
from trailseal.retention_db import Transaction, is_postgres

log = logging.getLogger("trailseal.retention")
DRAIN_SECONDS = 1.0  # an event protected before the caches forgot a subject reaches the writer within this
FORMS_PER_QUERY = 200_000  # sealed actor ids per statement: each scans `pruned` once (it has no actor index)
_COMMITMENT = re.compile(COMMITMENT_RE.pattern.encode())  # tokens.COMMITMENT_RE, over sealed bytes


class VaultExpiryDeferred(RuntimeError):
    """The barrier did not come through: nothing was deleted; the subjects wait for the next apply."""


@dataclass
class VaultExpiry:
    """What retention needs to expire vault rows: the store, how a subject's actor id is sealed, and how to
    make the live writer and caches let go of a subject."""

    store: Any
    forms: Callable[[str, str], list[str]]  # (subject, log) -> every actor_id its events may be sealed with
    identifies: Callable[[str], bool]  # log -> whether its sealed actor ids name their subjects
    forget: Callable[[list[str], str], None] = lambda subjects, log: None  # the protection caches forget them
    pseudonym: Callable[[str, str], str] = lambda subject, log: ""  # (subject, log) -> its pseudonym there
    flush: Callable[[str], bool] = lambda log: True  # wait until what a log sealed before is stored (False: not)
    drain: float = 0.0

    @classmethod
    def for_trail(cls, trail, drain: float = DRAIN_SECONDS) -> VaultExpiry:
        """Vault expiry of an open data dir, its caches and its writer."""
        protection = trail.protection
        return cls(trail.store, lambda subject, log_: protection.sealed_forms(trail.store, subject, [log_]),
                   protection.policy.identifies_actor, trail.forget_subjects,
                   lambda subject, log_: pseudonym(subject, log_, protection.keys), trail.barrier, drain)

    def subjects(self, conn, log_name: str, names: set[str]) -> set[str]:
        """The subjects in ``log_name`` that these names of expired entries (``names_of``) stand for."""
        commitments = sorted(name for name in names if name.startswith("pd:"))
        pseudonyms = {name for name in names if name.startswith(PSEUDONYM_PREFIX)}
        rows = self.store.vault_get(commitments) if commitments else {}
        return {name for name in names if not name.startswith(("pd:", PSEUDONYM_PREFIX))} | \
            {row.subject for row in rows.values() if row.log == log_name} | \
            self._pseudonymous(conn, log_name, pseudonyms)

    def _pseudonymous(self, conn, log_name: str, pseudonyms: set[str]) -> set[str]:
        """The subjects with vault rows in ``log_name`` whose pseudonym there is one of these: a pseudonym
        cannot be read back, so each subject's is worked out (an archived entry has no other values to go by)."""
        if not pseudonyms:
            return set()
        rows = conn.execute("SELECT DISTINCT subject FROM vault WHERE log = ?", (log_name,)).fetchall()
        return {subject for (subject,) in rows if self.pseudonym(subject, log_name) in pseudonyms}

    def expire(self, conn, log_name: str, subjects: set[str]) -> tuple[int, int]:
        """Delete the vault rows in ``log_name`` of those subjects with nothing retained there; returns
        (subjects whose rows went, rows deleted)."""
        if not subjects or not self.identifies(log_name):
            return 0, 0
        forms = {subject: self.forms(subject, log_name) for subject in _with_rows(conn, log_name, subjects)}
        gone = self._unretained(conn, log_name, forms)
        if not gone:
            return 0, 0
        self.forget(gone, log_name)
        if self.drain > 0:
            time.sleep(self.drain)
        if not self.flush(log_name):
            log.warning("vault values of %d expired subjects kept for now: events sealed before could not be "
                        "waited for (on the bus: no sequencer reached the barrier); the next apply takes them "
                        "up again", len(gone))
            raise VaultExpiryDeferred(len(gone))
        with Transaction(conn):
            if is_postgres(conn):  # the writer commits nothing in this log's entries or vault meanwhile
                conn.execute("LOCK TABLE entries, vault IN SHARE ROW EXCLUSIVE MODE")
            gone = self._unretained(conn, log_name, {subject: forms[subject] for subject in gone})
            rows = _delete(conn, log_name, gone)
        if not is_postgres(conn):
            from trailseal.store.sqlite import truncate_wal

            if not truncate_wal(conn):
                log.warning("expired vault values of %d subjects, but old copies stay in the WAL until its "
                            "readers finish (the next checkpoint removes them)", len(gone))
        return len(gone), rows

    def _unretained(self, conn, log_name: str, forms: dict[str, list[str]]) -> list[str]:
        """The subjects of ``forms`` no retained entry in ``log_name`` names."""
        wanted = sorted({form for found in forms.values() for form in found})
        retained: set[str] = set()
        for start in range(0, len(wanted), FORMS_PER_QUERY):
            retained |= _retained(conn, log_name, wanted[start:start + FORMS_PER_QUERY])
        return [subject for subject, found in forms.items() if retained.isdisjoint(found)]


def names_of(actor_id: str | None, data: bytes | None) -> list[str]:
    """What names the subject of an expired entry: its sealed actor id, and for a pseudonym (which cannot
    be read back) the commitments among its sealed bytes too, if there (their vault rows name the subject)."""
    if actor_id is None:
        return []
    if not actor_id.startswith(PSEUDONYM_PREFIX) or data is None:
        return [actor_id]
    return [actor_id, *(match.decode() for match in _COMMITMENT.findall(data))]


def _retained(conn, log_name: str, forms: list[str]) -> set[str]:
    """Those of ``forms`` that some hot or archived entry of ``log_name`` is sealed with as its actor id."""
    return {row[0] for row in _by_actor(conn, log_name, forms, "actor_id")}


def _with_rows(conn, log_name: str, subjects: set[str]) -> list[str]:
    """Those of ``subjects`` with vault rows in ``log_name``, sorted."""
    if is_postgres(conn):
        rows = conn.execute("SELECT DISTINCT subject FROM vault WHERE log = ? AND subject = ANY(?)",
                            (log_name, sorted(subjects))).fetchall()
        return sorted(row[0] for row in rows)
    from trailseal.store.sqlite_vault import of_subject

    found = []
    for subject in sorted(subjects):
        where, params = of_subject(subject, log_name)
        if conn.execute(f"SELECT 1 FROM vault WHERE {where} LIMIT 1", params).fetchone():
            found.append(subject)
    return found


def actor_entries(conn, log_name: str, forms: list[str]) -> list[int]:
    """The indexes of the hot and archived entries of ``log_name`` sealed with one of ``forms`` as actor id."""
    return sorted(row[0] for row in _by_actor(conn, log_name, forms, "idx"))


def _by_actor(conn, log_name: str, forms: list[str], column: str) -> list[tuple]:
    """``column`` (``actor_id`` or ``idx``) of the hot and archived entries of ``log_name`` whose actor id is
    one of ``forms``, each value once. PostgreSQL finds them through ``entries_by_actor``; SQLite through the
    search index's actor table, plus the entries it does not hold yet; ``pruned`` has no actor index (one
    pass over the log's rows)."""
    if is_postgres(conn):
        return conn.execute(f"SELECT {column} FROM entries WHERE log = ? AND actor_id = ANY(?) UNION SELECT "
                            f"{column} FROM pruned WHERE log = ? AND state != 'expired' AND actor_id = ANY(?)",
                            (log_name, forms, log_name, forms)).fetchall()
    wanted = json.dumps(forms)
    upto = _indexed_upto(conn)
    among = "IN (SELECT value FROM json_each(?))"
    sql = [f"SELECT {column} FROM entries WHERE seq > ? AND log = ? AND actor_id {among}",
           f"SELECT {column} FROM pruned WHERE log = ? AND state != 'expired' AND actor_id {among}"]
    params: list[Any] = [upto, log_name, wanted, log_name, wanted]
    if upto:
        found = "a.actor FROM entries_actor a" if column == "actor_id" else \
            f"e.{column} FROM entries_actor a JOIN entries e ON e.seq = a.seq"
        sql.append(f"SELECT {found} WHERE a.log = ? AND a.actor {among}")
        params += [log_name, wanted]
    return conn.execute(" UNION ".join(sql), params).fetchall()


def _indexed_upto(conn) -> int:
    """The last entries.seq the SQLite search index holds (0 without one)."""
    if conn.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('entries_actor', 'query_state')"
                    ).fetchone()[0] < 2:
        return 0
    from trailseal.query.index import indexed_up_to

    return indexed_up_to(conn)


def _delete(conn, log_name: str, subjects: list[str]) -> int:
    """Delete the subjects' vault rows in ``log_name`` (inside the caller's transaction)."""
    if not subjects:
        return 0
    if is_postgres(conn):
        from trailseal.store.postgres import erase_subjects

        return erase_subjects(conn.raw, subjects, log_name)
    from trailseal.store.sqlite import erase_subject

    return sum(erase_subject(conn, subject, log_name) for subject in subjects)

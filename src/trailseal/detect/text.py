"""Keyword search: an event's raw text and one RE2 pass for every keyword of every rule.

The raw text of a sealed event is its canonical JSON (sorted keys, no whitespace, without the
ledger ``index``), followed - when JSON had to escape anything - by every string value in the
event, unescaped, one per line. The JSON lets a keyword match a key and its value together; the
unescaped values let ``onload="`` or a backslash path match although JSON escapes them.
Keywords are case-insensitive (RE2 Unicode case folding) unless ``|cased``. The same pass also answers which rules'
necessary literals occur (literals.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import re2

_encode = msgspec.json.Encoder(order="sorted").encode
_NONE: tuple[()] = ()


def string_values(node: object, out: list[str]) -> list[str]:
    """Every string inside node, depth first."""
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, dict):
        for value in node.values():
            string_values(value, out)
    elif isinstance(node, list):
        for value in node:
            string_values(value, out)
    return out


def raw_text(event: dict, canonical: bytes | None = None) -> bytes:
    """The text keywords are searched in, UTF-8 (see module docstring).

    `canonical` is the event's sealed bytes when the caller has them (the ledger entry itself);
    otherwise the event is encoded here the same way (sorted keys, compact).
    """
    if canonical is None:
        canonical = _encode(_without_index(event))
    if b"\\" not in canonical:  # nothing was escaped: every string already appears verbatim
        return canonical
    values = "\n".join(string_values(_without_index(event), []))
    return canonical + b"\n" + values.encode("utf-8", "surrogatepass")


def _without_index(event: dict) -> dict:
    """The event as sealed: without the ledger index detection adds."""
    return {k: v for k, v in event.items() if k != "index"} if "index" in event else event


class _PatternSet:
    """RE2 patterns compiled into one set; match() answers which of them occur in a text."""

    def __init__(self, cased: bool) -> None:
        self.cased = cased
        self.patterns: list[str] = []
        self._set = None

    def add(self, pattern: str) -> int:
        self._set = None
        self.patterns.append(pattern)
        return len(self.patterns) - 1

    def match(self, text: bytes) -> list[int] | tuple[()]:
        if not self.patterns:
            return _NONE
        if self._set is None:
            self._set = self._compile()
        return self._set._set.Match(text) or _NONE  # the wrapper only re-encodes str; text is bytes

    def _compile(self):
        return _compile_set(self.patterns, self.cased, 256 << 20)


def _compile_set(patterns: list[str], cased: bool, max_mem: int):
    options = re2.Options()
    options.dot_nl = True
    options.case_sensitive = cased
    options.max_mem = max_mem
    compiled = re2.Set.SearchSet(options)
    for pattern in patterns:
        compiled.Add(pattern)
    compiled.Compile()
    return compiled


class Subset:
    """Some of an index's folded patterns in a set of their own (the ones one dispatch key's rules
    use): a smaller automaton scans faster. Hits come back as the index's handles."""

    def __init__(self, index: TextIndex, handles: frozenset[int]) -> None:
        self.index = index
        self.handles = tuple(sorted(handles))
        self.covered = frozenset(handles)
        self._match = _compile_set([index._folded.patterns[h] for h in self.handles], False, 64 << 20)._set.Match

    def hits(self, event: dict, canonical: bytes | None = None) -> Sequence[int]:
        """Folded handles found in the event's raw text; also what the index's keyword tests see."""
        index = self.index
        memo = index._memo
        if memo[0] is event and memo[3] is self.covered:
            return memo[1]
        # the sealed bytes themselves when nothing in them was escaped (raw_text's common case)
        text = canonical if canonical is not None and b"\\" not in canonical else raw_text(event, canonical)
        found = self._match(text)
        folded = [self.handles[i] for i in found] if found else _NONE
        cased = index._cased.match(text) if index._cased.patterns else _NONE
        index._memo = (event, folded, cased, self.covered)
        return folded


class TextIndex:
    """Keyword patterns shared by the rules of one engine, matched once per event."""

    def __init__(self) -> None:
        self._folded = _PatternSet(cased=False)
        self._cased = _PatternSet(cased=True)
        self._memo: tuple = (None, _NONE, _NONE, None)  # event, folded, cased, handles covered (None: all)
        self._subsets: dict[frozenset[int], Subset] = {}

    def add(self, pattern: str, cased: bool = False) -> tuple[bool, int]:
        """Register an RE2 pattern (matched case-insensitively unless cased); returns its handle."""
        target = self._cased if cased else self._folded
        return cased, target.add(pattern)

    def add_literal(self, literal: str) -> int:
        """Register a lower-case literal to look for; returns its handle among folded hits."""
        return self.add(re2.escape(literal))[1]

    def folded_count(self) -> int:
        """How many case-folded patterns are registered (handles are 0 .. count - 1)."""
        return len(self._folded.patterns)

    def subset(self, handles: frozenset[int]) -> Subset:
        """A matcher for just these folded handles (shared by every dispatch key that needs them)."""
        found = self._subsets.get(handles)
        if found is None:
            found = self._subsets[handles] = Subset(self, handles)
        return found

    def hits(self, event: dict, canonical: bytes | None = None,
             wanted: frozenset[int] = frozenset()) -> tuple[Sequence[int], Sequence[int]]:
        """Handles (folded, cased) of the patterns found in the event's raw text (memoized; a
        memo from a Subset serves only when it covers the `wanted` folded handles)."""
        memo = self._memo
        if memo[0] is event and (memo[3] is None or wanted <= memo[3]):
            return memo[1], memo[2]
        text = raw_text(event, canonical)
        folded = self._folded.match(text)
        cased = self._cased.match(text) if self._cased.patterns else _NONE
        self._memo = (event, folded, cased, None)
        return folded, cased

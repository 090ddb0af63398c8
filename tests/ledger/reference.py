"""Independent, recursive RFC 9162 definitions (section 2.1), to check the fast code against."""

import hashlib

from trailseal.ledger import EMPTY_ROOT, root_from_leaf_hashes


def _node(left: bytes, right: bytes) -> bytes:
    """Hash two children, written out again here on purpose."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    """Return the largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes: list[bytes]) -> bytes:
    """MTH over leaf hashes, by the recursive definition."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return _node(mth(hashes[:k]), mth(hashes[k:]))


def path(m: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof of leaf m."""
    if len(hashes) == 1:
        return []
    k = _k(len(hashes))
    if m < k:
        return path(m, hashes[:k]) + [mth(hashes[k:])]
    return path(m - k, hashes[k:]) + [mth(hashes[:k])]


def _subproof(m: int, hashes: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(hashes)
    if m == n:
        return [] if whole else [mth(hashes)]
    k = _k(n)
    if m <= k:
        return _subproof(m, hashes[:k], whole) + [mth(hashes[k:])]
    return _subproof(m - k, hashes[k:], False) + [mth(hashes[:k])]


def consistency(m: int, hashes: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof from the first m leaves."""
    return _subproof(m, hashes, True)


def list_read_hashes(hashes: list[bytes]):
    """Return read_hashes(level, start, end) computed straight from all the leaf hashes."""

    def read_hashes(level: int, start: int, end: int) -> list[bytes]:
        assert (end << level) <= len(hashes), "asked for a subtree outside the tree"
        return [root_from_leaf_hashes(hashes[i << level : (i + 1) << level]) for i in range(start, end)]

    return read_hashes


def leaf_pool(n: int) -> list[bytes]:
    """Return n distinct leaf hashes, the same on every call."""
    global _POOL
    while len(_POOL) < n:
        _POOL += [
            hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(len(_POOL), 2 * len(_POOL) + 1024)
        ]
    return _POOL[:n]


_POOL: list[bytes] = []

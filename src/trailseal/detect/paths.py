"""Reading values out of sealed events by dotted path, fast and without surprises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()

Accessor = Callable[[dict], Any]


def path_getter(path: str) -> Accessor:
    """An accessor for a dotted path: nested keys, literal dotted keys, lists fanned out."""
    parts = tuple(path.split("."))
    if len(parts) == 1:
        key = parts[0]
        return lambda event: event.get(key, MISSING)
    if len(parts) == 2:
        return _two_level(parts[0], parts[1], path)
    return _deep(parts)


def _deep(parts: tuple[str, ...]) -> Accessor:
    """Three or more parts: walk dicts, trying literal dotted keys (longest first) on a miss."""
    size = len(parts)
    dotted = [[(j, ".".join(parts[i:j])) for j in range(size, i + 1, -1)] for i in range(size)]

    def get(event: dict) -> Any:
        node: Any = event
        i = 0
        while i < size:
            child = node.get(parts[i], MISSING)
            if child is MISSING:
                for j, key in dotted[i]:
                    child = node.get(key, MISSING)
                    if child is not MISSING:
                        i = j
                        break
                else:
                    return MISSING
            else:
                i += 1
            if i == size:
                return child
            if type(child) is not dict:
                return _walk(child, parts, i) if type(child) is list else MISSING
            node = child
        return node

    return get


def _two_level(first: str, second: str, whole: str) -> Accessor:
    """The common case, `actor.ip`, as one closure."""

    def get(event: dict) -> Any:
        node = event.get(first, MISSING)
        if type(node) is dict:
            value = node.get(second, MISSING)
            return value if value is not MISSING else node.get(whole, MISSING)
        if node is MISSING:
            return event.get(whole, MISSING)
        return _walk(event, (first, second), 0)

    return get


def _walk(node: Any, parts: tuple[str, ...], start: int) -> Any:
    """Follow parts from start; try dotted keys on a miss; fan out over lists."""
    for i in range(start, len(parts)):
        if isinstance(node, list):
            found = [v for item in node if (v := _walk(item, parts, i)) is not MISSING]
            return _flatten(found) if found else MISSING
        if not isinstance(node, dict):
            return MISSING
        child = node.get(parts[i], MISSING)
        if child is MISSING:
            return _dotted_key(node, parts, i)
        node = child
    return node


def _dotted_key(node: dict, parts: tuple[str, ...], start: int) -> Any:
    """Keys that contain dots themselves, e.g. `authorization.k8s.io/decision`."""
    for end in range(len(parts), start + 1, -1):
        child = node.get(".".join(parts[start:end]), MISSING)
        if child is not MISSING:
            return child if end == len(parts) else _walk(child, parts, end)
    return MISSING


def _flatten(values: list) -> list:
    """One level of list nesting, as produced by fanning out over lists of lists."""
    out: list = []
    for value in values:
        out.extend(value) if isinstance(value, list) else out.append(value)
    return out


def first_present(accessors: list[Accessor]) -> Accessor:
    """An accessor returning the first value that is present (coalesce)."""
    if len(accessors) == 1:
        return accessors[0]
    chain = tuple(accessors)

    def get(event: dict) -> Any:
        for accessor in chain:
            value = accessor(event)
            if value is not MISSING:
                return value
        return MISSING

    return get

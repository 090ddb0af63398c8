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


UNROLL_PARTS = 6  # paths up to this many parts get generated straight-line code (2^(n-1) branches)


def _deep(parts: tuple[str, ...]) -> Accessor:
    """Three or more parts: walk dicts, trying literal dotted keys (longest first) on a miss."""
    if len(parts) <= UNROLL_PARTS:
        return _unrolled(parts)
    return _looping(parts)


def _unrolled(parts: tuple[str, ...]) -> Accessor:
    """_looping's walk as generated code: every split of the path into keys written out, tried in
    the same order (the next part first, then dotted keys longest first), no loop, no index."""
    lines = ["def get(event):"]
    _emit_step(parts, 0, "event", 0, 1, lines)
    namespace = {"MISSING": MISSING, "_walk": _walk, "parts": parts}
    exec(compile("\n".join(lines), f"<path {'.'.join(parts)}>", "exec"), namespace)  # noqa: S102
    return namespace["get"]


def _emit_step(parts: tuple[str, ...], start: int, node: str, depth: int, indent: int, lines: list[str]) -> None:
    """Code that reads parts[start:] from the dict in variable `node`, returning the value."""
    pad = "    " * indent
    child = f"c{depth}"
    size = len(parts)
    for end in [start + 1, *range(size, start + 1, -1)]:
        key = ".".join(parts[start:end])
        lines.append(f"{pad}{child} = {node}.get({key!r}, MISSING)")
        lines.append(f"{pad}if {child} is not MISSING:")
        inner = "    " * (indent + 1)
        if end == size:
            lines.append(f"{inner}return {child}")
            continue
        lines.append(f"{inner}if type({child}) is not dict:")
        lines.append(f"{inner}    return _walk({child}, parts, {end}) if type({child}) is list else MISSING")
        _emit_step(parts, end, child, depth + 1, indent + 1, lines)
    lines.append(f"{pad}return MISSING")


def _looping(parts: tuple[str, ...]) -> Accessor:
    """The walk as a loop, for long paths."""
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
    if len(accessors) == 2:
        return _either(*accessors)
    if len(accessors) == 3:
        return _one_of_three(*accessors)
    chain = tuple(accessors)

    def get(event: dict) -> Any:
        for accessor in chain:
            value = accessor(event)
            if value is not MISSING:
                return value
        return MISSING

    return get


def _either(first: Accessor, second: Accessor) -> Accessor:
    """first's value if present, else second's."""

    def get(event: dict) -> Any:
        value = first(event)
        return value if value is not MISSING else second(event)

    return get


def _one_of_three(first: Accessor, second: Accessor, third: Accessor) -> Accessor:
    """The first present of three values."""

    def get(event: dict) -> Any:
        value = first(event)
        if value is not MISSING:
            return value
        value = second(event)
        return value if value is not MISSING else third(event)

    return get

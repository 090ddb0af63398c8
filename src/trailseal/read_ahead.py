"""An iterator run in a thread of its own, a few items ahead of its consumer: ``read_ahead``.

For work that mostly releases the GIL (SQLite reading and concatenating a page of entries in one step)
beside a consumer's Python work on the items before (joining vault values, writing the file), so the two
share the machine's cores instead of taking turns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_ITEM, _DONE, _FAILED = range(3)
_PUT_WAIT = 0.1  # seconds a blocked producer waits before it looks whether the consumer has stopped


def read_ahead(make: Callable[[], Iterator[T]], depth: int = 2) -> Iterator[T]:
    """What ``make()`` yields, in order, made in a background thread (which calls ``make`` itself, so a
    SQLite connection opened there is used only there) at most ``depth`` items ahead. An error raised
    there is raised here; closing this generator stops the thread after the item it is making."""
    items: queue.Queue[tuple[int, Any]] = queue.Queue(depth)
    stop = threading.Event()
    thread = threading.Thread(
        target=_produce, args=(make, items, stop), name="trailseal-read-ahead", daemon=True
    )
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == _DONE:
                return
            if kind == _FAILED:
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _produce(make: Callable[[], Iterator[Any]], items: queue.Queue, stop: threading.Event) -> None:
    """The thread: put each item made, then the end (or the error that ended it), until told to stop."""
    try:
        iterator = make()
        try:
            for item in iterator:
                if not _put(items, (_ITEM, item), stop):
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
        _put(items, (_FAILED, error), stop)
        return
    _put(items, (_DONE, None), stop)


def _put(items: queue.Queue, entry: tuple[int, Any], stop: threading.Event) -> bool:
    """Put an entry when there is room; False if the consumer stopped first."""
    while not stop.is_set():
        try:
            items.put(entry, timeout=_PUT_WAIT)
            return True
        except queue.Full:
            continue
    return False

"""trailseal: audit-ready access logs, sealed in a verifiable Merkle log.

    import trailseal
    log = trailseal.open("./trailseal-data")
    receipts = log.append([event, ...])
    print(log.checkpoint()); print(log.prove(receipts[0].index)); log.verify()
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "Event", "EventError", "Receipt", "Trail", "init", "open"]

_LAZY = {"Trail": "trailseal.datadir", "init": "trailseal.datadir", "open": "trailseal.datadir",
         "Client": "trailseal.sdk.client", "AsyncClient": "trailseal.sdk.client",
         "Event": "trailseal.event", "EventError": "trailseal.event", "Receipt": "trailseal.store.base"}


def __getattr__(name: str) -> Any:
    """Import on first use, so `import trailseal.event` stays light."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("event",):
        return importlib.import_module(f"trailseal.{name}")
    raise AttributeError(f"module 'trailseal' has no attribute {name!r}")

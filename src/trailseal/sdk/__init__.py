"""The Python SDK: log audit events from applications, with hooks for logging, web frameworks and databases.

    from trailseal.sdk import Client
    client = Client("https://trailseal.example", token, source="billing-api", spool_dir="/var/spool/billing")
    client.log(category="data_access", action="report.export", actor="alice", target="report-7", rows=120)

Submodules import their framework only when used: ``asgi`` (Starlette, FastAPI), ``wsgi`` (Flask, Django,
any WSGI app), ``handler`` (logging), ``dbapi`` (DB-API 2), ``sqlalchemy``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AsyncClient", "Client", "ClientError", "Stats", "TrailsealHandler", "acting_as", "current_actor",
           "set_actor"]

_LAZY = {"Client": "client", "AsyncClient": "client", "ClientError": "client", "Stats": "client",
         "TrailsealHandler": "handler", "set_actor": "context", "current_actor": "context", "acting_as": "context"}


def __getattr__(name: str) -> Any:
    """Import on first use, so `import trailseal.sdk.transport` (the CLI) stays light."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"trailseal.sdk.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'trailseal.sdk' has no attribute {name!r}")

"""The web console at /ui (server-rendered; see docs/UI.md)."""

from __future__ import annotations

routes: list = []

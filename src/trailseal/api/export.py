"""Streaming exports and evidence bundles over HTTP."""

from __future__ import annotations

routes: list = []

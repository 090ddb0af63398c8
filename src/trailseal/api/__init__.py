"""The HTTP API: one router per surface (ingest, read, tlog, ops), tokens and roles."""

from trailseal.api.app import create_app

__all__ = ["create_app"]

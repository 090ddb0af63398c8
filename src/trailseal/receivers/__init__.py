"""Receivers: the ways logs reach trailseal besides POST /v1/events.

HTTP receivers (OTLP/HTTP logs, the Kubernetes audit webhook, Elasticsearch ``_bulk``, Splunk HEC)
live in :mod:`trailseal.api.receivers`; the socket and file receivers live here:

- :func:`trailseal.receivers.syslog.run_syslog` — RFC 5424/3164 over UDP, TCP and TLS;
- :func:`trailseal.receivers.tail.tail` — follow log files across restarts and rotation.

This package imports nothing heavy at import time: ``trailseal.config`` reads its settings from
:mod:`trailseal.receivers.settings`. See docs/receivers.md.
"""

"""Alerts: detection on the sealed stream, alerts sealed as `finding` events, and sinks."""

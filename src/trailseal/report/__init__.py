"""Compliance reports computed from measured state (frameworks as data, measurements, rendering)."""

from trailseal.report.build import Report, ReportError, build_report, parse_period
from trailseal.report.frameworks import FRAMEWORKS

__all__ = ["FRAMEWORKS", "Report", "ReportError", "build_report", "parse_period"]

"""Detection: Sigma rules and correlations over the sealed stream (see docs/detection.md)."""

from trailseal.detect.correlate import CorrelationSpec, Correlator, Match
from trailseal.detect.engine import Alert, Engine, offhours_placeholders
from trailseal.detect.fields import FieldPipeline
from trailseal.detect.sigma import CompileContext, compile_rule
from trailseal.detect.testing import RulesTestReport, rules_test
from trailseal.detect.watch import SilentSourceWatch

__all__ = [
    "Alert",
    "CompileContext",
    "CorrelationSpec",
    "Correlator",
    "Engine",
    "FieldPipeline",
    "Match",
    "RulesTestReport",
    "SilentSourceWatch",
    "compile_rule",
    "offhours_placeholders",
    "rules_test",
]

"""Process settings for long-running trailseal servers (never applied to a library user's process)."""

from __future__ import annotations

import gc

# Collect the youngest generation every 50,000 allocations instead of 700: a server allocates short-lived
# containers for every event, and at the default each burst ran many collections that found nothing.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what start-up allocated (modules, rules, config: never garbage) out of the collector's sight,
    and collect young objects less often. Measured in `serve` with batch ingest: 12% less CPU per event."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

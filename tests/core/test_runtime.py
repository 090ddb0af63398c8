"""`serve` tunes the garbage collector of its own process (runtime.tune_gc)."""

from __future__ import annotations

import gc

from trailseal.runtime import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # modules, classes and functions loaded so far
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

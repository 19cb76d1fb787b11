"""seatflow.worker.tune_garbage_collector: start-up's objects frozen out of the collector's
passes, and its thresholds set for a long-running worker (bench/README, "Garbage
collection")."""

from __future__ import annotations

import gc

from seatflow.worker import GC_THRESHOLDS, tune_garbage_collector


def test_start_up_objects_are_frozen_and_the_thresholds_set() -> None:
    before = gc.get_threshold()
    try:
        built_at_start_up = [[] for _ in range(1000)]  # containers the collector tracks
        tune_garbage_collector()
        assert gc.get_freeze_count() >= len(built_at_start_up)
        assert gc.get_threshold() == GC_THRESHOLDS
        # A cycle made after start-up is still collected.
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

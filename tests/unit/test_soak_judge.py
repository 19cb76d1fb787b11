"""The soak's pass rules (bench.soak.judge): consuming on pace is not enough when the
allocator falls behind."""

from __future__ import annotations

from typing import Any

from bench.soak import NEVER_TRIED, judge


def soak_result(*, last_over_first: float, tail_p50_ms: int, never_tried: int) -> dict[str, Any]:
    windows = [{"t_s": t, "n": 1000, "p50_ms": 900, "p99_ms": 1500} for t in range(0, 900, 30)]
    windows += [{"t_s": t, "n": 1000, "p50_ms": tail_p50_ms, "p99_ms": tail_p50_ms * 2}
                for t in range(900, 1000, 30)]
    return {
        "first_10pct_changes_per_s": 500.0,
        "last_10pct_changes_per_s": 500.0 * last_over_first,
        "last_over_first": last_over_first,
        "fell_behind_at_s": None,
        "latency": windows,
        "unconfirmed_timed_creates": never_tried + 50,
        "unconfirmed_timed_creates_by_state": {NEVER_TRIED: never_tried,
                                               "pending/exhausted/attempts 4/no_capacity": 50},
        "target": "an earlier run's single target",
    }


def test_a_soak_that_kept_pace_and_confirmed_on_time_passes() -> None:
    result = judge(soak_result(last_over_first=0.95, tail_p50_ms=1200, never_tried=3))
    assert [t["met"] for t in result["targets"]] == [True, True, True]
    assert result["target_met"] is True
    assert "target" not in result


def test_consuming_on_pace_while_the_allocator_falls_behind_fails() -> None:
    result = judge(soak_result(last_over_first=0.92, tail_p50_ms=51_000, never_tried=14_558))
    assert [t["met"] for t in result["targets"]] == [True, False, False]
    assert result["targets"][1]["value"] == 51_000
    assert result["target_met"] is False


def test_consuming_slower_at_the_end_fails() -> None:
    result = judge(soak_result(last_over_first=0.7, tail_p50_ms=1200, never_tried=0))
    assert [t["met"] for t in result["targets"]] == [False, True, True]
    assert result["target_met"] is False

"""The session summary's comparison with its own warm-up: honest when it cannot say."""

from __future__ import annotations

import math

from autotune.daemon.loop import ratio_ci95


def test_a_steady_warm_up_bounds_the_ratio() -> None:
    lo, hi = ratio_ci95([400.0, 410.0, 390.0, 405.0], [100.0, 102.0, 98.0, 101.0])
    assert 3.7 < lo < 4.0 < hi < 4.3


def test_a_warm_up_whose_mean_may_be_zero_has_no_upper_bound() -> None:
    # A warm-up taken while the job started: its resamples put the ratio at 1e14.
    lo, hi = ratio_ci95([480.0, 500.0, 470.0, 520.0], [64.0, 0.0, 0.0, 320.0])
    assert math.isinf(hi) and lo > 1.0


def test_too_few_intervals_say_nothing() -> None:
    assert ratio_ci95([400.0], [100.0, 101.0]) == (1.0, 1.0)

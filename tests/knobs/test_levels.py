"""Knob values ↔ ladder indices, and the default setting by name."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.knobs import KNOBS, READAHEAD_DEFAULT_KB, KnobRangeError, default_values
from autotune.knobs.levels import levels_to_values, values_to_levels


def test_round_trip_over_every_level() -> None:
    for i in range(max(k.levels for k in KNOBS)):
        levels = np.array([min(i, k.levels - 1) for k in KNOBS], dtype=np.int64)
        assert np.array_equal(values_to_levels(levels_to_values(levels)), levels)


def test_off_ladder_values_take_the_nearest_level() -> None:
    values = {**default_values(), "readahead": 100.0}
    levels = values_to_levels(values)
    assert levels_to_values(levels)["readahead"] == 128.0


def test_a_level_outside_the_ladder_is_refused() -> None:
    levels = np.zeros(len(KNOBS), dtype=np.int64)
    levels[0] = KNOBS[0].levels
    with pytest.raises(KnobRangeError, match="outside"):
        levels_to_values(levels)


def test_default_values_take_the_machine_readahead() -> None:
    assert default_values()["readahead"] == READAHEAD_DEFAULT_KB
    assert default_values(readahead_kb=8192.0)["readahead"] == 8192.0
    assert {k: v for k, v in default_values().items() if k != "readahead"} == {
        k.name: k.default for k in KNOBS if k.default is not None
    }

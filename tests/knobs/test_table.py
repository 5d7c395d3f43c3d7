"""The knob table: ladders are ordered, bounds enforced, lookups clear."""

from __future__ import annotations

import pytest

from autotune.errors import UserError
from autotune.knobs import KNOBS, KnobRangeError, by_name, default_levels, describe


def test_ladders_ascend_and_names_unique() -> None:
    assert len({k.name for k in KNOBS}) == len(KNOBS)
    for k in KNOBS:
        assert list(k.ladder) == sorted(k.ladder)
        assert k.levels >= 2
        if k.default is not None:
            assert k.check(k.default) == k.default


def test_check_refuses_values_off_the_ladder() -> None:
    ra = by_name("readahead")
    assert ra.check(128) == 128
    with pytest.raises(KnobRangeError, match=r"readahead=100 is not allowed.*16, 32"):
        ra.check(100)
    with pytest.raises(KnobRangeError):
        by_name("weight.trainer").check(16)


def test_index_and_value() -> None:
    ra = by_name("readahead")
    assert ra.value(ra.index(8192)) == 8192
    assert ra.index(100) == ra.index(128)  # nearest on a log scale
    with pytest.raises(KnobRangeError, match=r"outside 0\.\.10"):
        ra.value(11)


def test_unknown_knob() -> None:
    with pytest.raises(UserError, match="unknown knob 'nope'"):
        by_name("nope")


def test_default_levels_use_machine_readahead() -> None:
    levels = default_levels(readahead_kb=128)
    names = [k.name for k in KNOBS]
    assert by_name("readahead").ladder[levels[names.index("readahead")]] == 128
    assert by_name("weight.trainer").ladder[levels[names.index("weight.trainer")]] == 1.0


def test_describe_covers_every_knob() -> None:
    rows = describe()
    assert [r["knob"] for r in rows] == [k.name for k in KNOBS]

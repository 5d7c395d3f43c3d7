"""The --explore schedule: inside the ladders, distinct settings of every knob, reproducible."""

from __future__ import annotations

import itertools

from autotune.knobs import KNOBS, by_name
from autotune.trace.explore import schedule, spread


def test_spread_visits_ends_first_and_skips_the_start() -> None:
    ladder = (1.0, 2.0, 4.0, 8.0, 16.0)
    assert spread(ladder, 1.0) == [16.0, 4.0, 2.0, 8.0]
    assert sorted(spread(ladder, 3.0)) == list(ladder)


def test_schedule_starts_as_found_then_moves_one_knob_at_a_time() -> None:
    start = {"weight.trainer": 1.0, "cpus.loader": 1.0, "readahead": 4.0}  # 4 KiB: off-ladder
    steps = list(itertools.islice(schedule(start), 10))
    base = steps[0]
    assert base == {"weight.trainer": 1.0, "cpus.loader": 1.0, "readahead": 16.0}
    for step in steps[1:]:
        changed = [k for k in step if step[k] != base[k]]
        assert len(changed) == 1
    touched = {k for step in steps[1:] for k in step if step[k] != base[k]}
    assert touched == set(start)  # every knob family visited within the first round
    assert len({tuple(sorted(s.items())) for s in steps}) == len(steps)  # all distinct


def test_schedule_stays_on_the_ladders_and_is_seeded() -> None:
    start = {k.name: k.ladder[0] for k in KNOBS}
    a = list(itertools.islice(schedule(start, seed=5), 60))
    b = list(itertools.islice(schedule(start, seed=5), 60))
    assert a == b
    for step in a:
        for name, value in step.items():
            assert by_name(name).check(value) == value

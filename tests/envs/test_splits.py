"""One definition of the split parts and of the seeds that validate and evaluate."""

from __future__ import annotations

import numpy as np

from autotune.envs import splits


def test_parts_are_contiguous_disjoint_and_cover_the_trace() -> None:
    for n in (2, 7, 100, 1062):
        part = splits.part_of_rows(n)
        assert len(part) == n
        assert (np.diff(part) >= 0).all()  # train, then validation, then test
        lo, hi = splits.bounds(n, splits.TEST)
        assert hi == n and lo >= int(0.8 * n) - 1
    assert splits.TRAIN[1] == splits.VALIDATION[0]
    assert splits.VALIDATION[1] == splits.TEST[0]
    assert splits.TRAIN[0] == 0.0 and splits.TEST[1] == 1.0


def test_evaluation_and_validation_seeds_are_never_training_seeds() -> None:
    train = [*range(50), splits.EVAL_SEED_BASE]
    seeds = splits.eval_seeds(5, exclude=train)
    assert len(seeds) == 5 == len(set(seeds))
    assert not set(seeds) & set(train)
    assert all(s >= splits.EVAL_SEED_BASE for s in seeds)
    validation = {splits.validation_seed(s) for s in range(50)}
    assert not validation & set(seeds)
    assert not validation & set(range(splits.EVAL_SEED_BASE))

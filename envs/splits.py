"""How every recording is split for evaluation, and which seeds evaluate: one definition.

Each trace is cut into three contiguous blocks of time:

========== ============ ================================================================
part        rows          used for
========== ============ ================================================================
train       first 60 %    calibrating the replay model, and the agent's learning
validation  next 20 %     choosing the checkpoint and stopping early
test        last 20 %     the figures (`autotune eval`, `make demo`, the benches) and
                          nothing else
========== ============ ================================================================

Blocks of time, not rows drawn at random: neighbouring rows share a phase, and a row's demand is
pooled with its neighbours', so a random split would put near copies of test rows in training.
The test part comes last, as the job a tuner meets is the one that runs after what it learned
from. 60/20/20: the bundled recordings are about three minutes (720 rows at 250 ms); a fifth
is 36 s, more than twice the 15 s window of the worst-regression figure and long enough to hold
a phase change of the workloads that have them, while training keeps most of the settings an
``--explore`` recording visits (the calibration needs them).

Seeds: training seeds are below :data:`EVAL_SEED_BASE`; the replay seeds that validate
(:func:`validation_seed`) and evaluate (:func:`eval_seeds`) are above it, so no figure is
measured with the seed a policy was trained with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import numpy.typing as npt

Part = Literal["train", "validation", "test", "all"]
PARTS: dict[str, tuple[float, float]] = {
    "train": (0.0, 0.6),
    "validation": (0.6, 0.8),
    "test": (0.8, 1.0),
    "all": (0.0, 1.0),
}
TRAIN = PARTS["train"]
VALIDATION = PARTS["validation"]
TEST = PARTS["test"]

EVAL_SEED_BASE = 1_000_000  # training seeds are below; evaluation seeds start here
VALIDATION_SEED_BASE = 2_000_000  # validation seeds: this plus the training seed


def bounds(n: int, fractions: tuple[float, float]) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of a trace of ``n`` rows that a part covers (at least two rows)."""
    lo = min(int(fractions[0] * n), n - 2)
    hi = max(int(fractions[1] * n), lo + 2)
    return lo, hi


def part_of_rows(n: int) -> npt.NDArray[np.int64]:
    """For each of ``n`` rows, which part it is in (0 train, 1 validation, 2 test): demand is
    never pooled across a part's edge, so no test row leaks into a training row's demand."""
    out = np.zeros(n, dtype=np.int64)
    for i, name in enumerate(("train", "validation", "test")):
        lo, hi = PARTS[name]
        out[int(lo * n) : int(hi * n)] = i
    return out


def validation_seed(train_seed: int) -> int:
    """The replay seed a training run validates with (never one it trains or is tested with)."""
    return VALIDATION_SEED_BASE + train_seed


def eval_seeds(n: int, exclude: Iterable[int] = ()) -> list[int]:
    """``n`` replay seeds for the figures, none of them in ``exclude`` (training seeds)."""
    skip = set(exclude)
    out: list[int] = []
    s = EVAL_SEED_BASE
    while len(out) < n:
        if s not in skip:
            out.append(s)
        s += 1
    return out

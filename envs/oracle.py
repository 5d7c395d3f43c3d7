"""The replay answered exhaustively over the knob ladders: the per-row oracle (the best setting
for each interval, changes free) and the best single fixed setting, on any rows of a workload.

Every setting of every knob (the product of the ladders, 25,344 today) through the vectorized
model (:func:`autotune.envs.model.respond_rates`), noise off, scaled per row exactly as
:class:`~autotune.envs.replay.ReplayEnv` scales its answers to the recorded row. A few
milliseconds a row.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from autotune.envs.model import KnobGrid, Knobs, cpu_io_rates, loaders_of, pipeline_rates, respond
from autotune.envs.workload import Workload
from autotune.knobs import KNOBS

_PREFETCH = "prefetch.loader"


@cache
def settings() -> tuple[npt.NDArray[np.int64], KnobGrid]:
    """Every setting: ladder indices ``(S, knobs)`` and the same as a :class:`KnobGrid`."""
    levels = np.array(list(itertools.product(*(range(k.levels) for k in KNOBS))), np.int64)
    values = {k.name: np.asarray(k.ladder, np.float64)[levels[:, i]] for i, k in enumerate(KNOBS)}
    return levels, KnobGrid.from_values(values)


@cache
def _factored() -> tuple[KnobGrid, npt.NDArray[np.float64]]:
    """The settings without the prefetch depth (the last knob), and its ladder: the CPU and
    device rates do not depend on it, so they are computed once for all its levels."""
    if KNOBS[-1].name != _PREFETCH:
        raise RuntimeError("the oracle expects the prefetch depth last in the knob table")
    levels, grid = settings()
    depth = KNOBS[-1].levels
    head = {k.name: np.asarray(getattr(grid, _FIELD[k.name]))[::depth] for k in KNOBS[:-1]}
    head[_PREFETCH] = np.zeros(len(levels) // depth)
    return KnobGrid.from_values(head), np.asarray(KNOBS[-1].ladder, np.float64)


_FIELD = {
    "weight.trainer": "weight_trainer",
    "weight.loader": "weight_loader",
    "cpus.trainer": "cpus_trainer",
    "cpus.loader": "cpus_loader",
    "readahead": "readahead_kb",
    "prefetch.loader": "prefetch",
}


def rates(wl: Workload, i: int) -> npt.NDArray[np.float64]:
    """Row ``i``'s model rate at every setting, in the order of :func:`settings`."""
    head, prefetch = _factored()
    d = wl.demands_cached()[i]
    p_cpu, p_io = cpu_io_rates(d, head, wl.params, wl.ncpus)
    return pipeline_rates(
        p_cpu[:, None], p_io[:, None], prefetch[None, :], wl.params, loaders_of(d)
    ).reshape(-1)


@dataclass(frozen=True)
class Headroom:
    """Progress relative to the default knobs over some rows (sums of rates, as evaluated).

    Attributes:
        per_row_oracle: the best setting chosen separately for every row, changes free.
        best_fixed: the best single setting held over all the rows.
        best_levels: that setting's ladder indices.
        rows: how many rows.
    """

    per_row_oracle: float
    best_fixed: float
    best_levels: npt.NDArray[np.int64]
    rows: int

    @property
    def ratio(self) -> float:
        return self.per_row_oracle / self.best_fixed if self.best_fixed > 0 else float("nan")


def headroom(wl: Workload, rows: Sequence[int] | npt.NDArray[np.int64]) -> Headroom:
    """The per-row oracle and the best fixed setting of ``wl`` over ``rows``."""
    levels, _ = settings()
    demands = wl.demands_cached()
    defaults = Knobs.from_values(wl.defaults)
    total = np.zeros(len(levels))
    oracle = default = 0.0
    for i in rows:
        d = demands[i]
        recorded = respond(
            d, Knobs.from_values({**wl.defaults, **wl.knobs[i]}), wl.params, wl.ncpus
        )
        if recorded.rate > 0:
            scale = float(wl.rate[i]) / recorded.rate
            row = rates(wl, i) * scale
            default += respond(d, defaults, wl.params, wl.ncpus).rate * scale
        else:  # the env answers such a row with the recorded rate whatever the knobs
            row = np.full(len(levels), float(wl.rate[i]))
            default += float(wl.rate[i])
        total += row
        oracle += float(row.max())
    if default <= 0:
        return Headroom(1.0, 1.0, levels[0], len(rows))
    best = int(np.argmax(total))
    return Headroom(oracle / default, float(total[best]) / default, levels[best], len(rows))

"""The evaluation protocol: every policy, trained or not, judged the same way.

For each workload, on its held-out rows (the last quarter of its trace), each policy runs one
episode per seed across the whole held-out part (the seed drives the replay's noise). Per
episode: mean progress relative to what the default knobs make on the same rows, knob changes
per minute, and the worst regression (one minus the lowest progress ratio over any window of
:data:`WINDOW_S` seconds). Across seeds: the mean with a 95 % Student-t interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from autotune.envs.replay import HELDOUT_ROWS, ReplayEnv
from autotune.envs.workload import Workload

WINDOW_S = 15.0  # the window over which a regression counts: a few seconds of noise do not


class Predictor(Protocol):
    def predict(
        self,
        obs: npt.ArrayLike,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[npt.NDArray[np.int64], Any]: ...


@dataclass(frozen=True)
class EpisodeResult:
    """One policy on one workload with one seed."""

    policy: str
    workload: str
    seed: int
    progress_vs_default: float
    knob_changes_per_min: float
    worst_regression: float
    steps: int


@dataclass(frozen=True)
class Summary:
    """Across seeds: mean, 95 % interval, n."""

    policy: str
    workload: str
    mean: float
    low: float
    high: float
    n: int
    changes_per_min: float
    worst_regression: float


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95 % Student-t interval of ``values``."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < 2 or float(x.std(ddof=1)) == 0.0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def run_episode(
    policy: Predictor, wl: Workload, seed: int, name: str, rows: tuple[float, float] = HELDOUT_ROWS
) -> EpisodeResult:
    """One episode over the whole ``rows`` part of the workload."""
    n = len(wl)
    steps = max(1, int((rows[1] - rows[0]) * n) - 2)
    env = ReplayEnv([wl], episode_steps=steps, rows=rows)
    obs, info = env.reset(seed=seed, options={"start": env._bounds(0)[0]})
    interval = float(np.median([s.interval_s for s in wl.samples]))
    rates, defaults, changes = [], [], 0
    done, first = False, True
    while not done:
        action, _ = policy.predict(obs, episode_start=np.array([first]), deterministic=True)
        first = False
        obs, _, _, done, info = env.step(np.asarray(action, dtype=np.int64))
        rates.append(info["rate"])
        defaults.append(info["rate_default"])
        changes += info["changes"]
    r, d = np.asarray(rates), np.asarray(defaults)
    ok = d > 0
    ratio = float(r[ok].sum() / d[ok].sum()) if ok.any() else 1.0
    win = max(1, round(WINDOW_S / interval))
    worst = 0.0
    if ok.sum() >= win:
        cr, cd = (
            np.convolve(r * ok, np.ones(win), "valid"),
            np.convolve(d * ok, np.ones(win), "valid"),
        )
        good = cd > 0
        if good.any():
            worst = max(0.0, 1.0 - float((cr[good] / cd[good]).min()))
    minutes = len(rates) * interval / 60.0
    return EpisodeResult(
        name, wl.name, seed, ratio, changes / max(minutes, 1e-9), worst, len(rates)
    )


def evaluate(
    policies: dict[str, Callable[[Workload], Predictor]],
    workloads: Sequence[Workload],
    seeds: Sequence[int],
    progress: Callable[[str], None] | None = None,
) -> list[EpisodeResult]:
    """Run every policy on every workload with every seed.

    Args:
        policies: name → factory building the policy for a workload (baselines such as
            static-best are per workload; trained policies ignore the argument).
        workloads: the workloads, evaluated on their held-out rows.
        seeds: replay seeds.
        progress: called with a short label before each (policy, workload).
    """
    out: list[EpisodeResult] = []
    for wl in workloads:
        for name, factory in policies.items():
            if progress:
                progress(f"{name} on {wl.name}")
            policy = factory(wl)
            for seed in seeds:
                out.append(run_episode(policy, wl, seed, name))
    return out


def summarize(results: Sequence[EpisodeResult], by_workload: bool = True) -> list[Summary]:
    """Mean and interval per (policy, workload), and per policy over all workloads."""
    groups: dict[tuple[str, str], list[EpisodeResult]] = {}
    for r in results:
        if by_workload:
            groups.setdefault((r.policy, r.workload), []).append(r)
        groups.setdefault((r.policy, "all"), []).append(r)
    out = []
    for (policy, workload), rs in groups.items():
        mean, low, high = t_interval([r.progress_vs_default for r in rs])
        out.append(
            Summary(
                policy=policy,
                workload=workload,
                mean=mean,
                low=low,
                high=high,
                n=len(rs),
                changes_per_min=float(np.mean([r.knob_changes_per_min for r in rs])),
                worst_regression=max(r.worst_regression for r in rs),
            )
        )
    return out


def as_rows(results: Sequence[EpisodeResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]

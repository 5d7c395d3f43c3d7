"""The evaluation protocol: every policy, trained or not, judged the same way.

For each workload, on its test part only (the last 20 % of its trace, :mod:`autotune.envs.splits`),
each policy runs one episode per evaluation seed across the whole part (the seed drives the
replay's noise; evaluation seeds are never training seeds). Per episode: progress relative to
what the default knobs make on the same rows, knob changes per minute, and the worst regression
(one minus the lowest progress ratio over any window of :data:`WINDOW_S` seconds).

A policy may come as several trained models (one per training seed): then a *run* is one
training seed, scored by its mean over the evaluation seeds; a baseline or a single model has
one run per evaluation seed. Across runs, the statistics of ``rliable`` (Agarwal et al., 2021):
the mean with a 95 % stratified-bootstrap interval, the interquartile mean, and the probability
of improvement over each baseline (with its interval), per workload and over all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from autotune.envs import splits
from autotune.envs.replay import ReplayEnv
from autotune.envs.workload import Workload

WINDOW_S = 15.0  # the window over which a regression counts: a few seconds of noise do not
# rliable's bootstrap replications. Each probability of improvement is a Mann-Whitney test per
# workload per replication (about 1 ms), so its interval gets fewer: on 5 runs against 3 its
# value moves in steps of 1/15, far coarser than 200 replications resolve.
BOOTSTRAP_REPS = 1000
POI_REPS = 200
ALL = "all"


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
    run: int = 0  # which trained model of the policy (its training seed's index)


@dataclass(frozen=True)
class Summary:
    """Across runs (rliable): mean and its 95 % interval, interquartile mean, probability of
    improvement over each baseline ``(p, low, high)``; n runs."""

    policy: str
    workload: str
    mean: float
    low: float
    high: float
    n: int
    changes_per_min: float
    worst_regression: float
    iqm: float = float("nan")
    p_improve: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def episode_steps(n: int, rows: tuple[float, float] = splits.TEST) -> int:
    """Steps of an evaluation episode over part ``rows`` of a trace of ``n`` rows: the part's
    rows less two, counted from the part's own bounds (``(1.0 - 0.8) * 585`` is 116.99...)."""
    lo, hi = splits.bounds(n, rows)
    return max(1, hi - lo - 2)


def episode_rows(wl: Workload, rows: tuple[float, float] = splits.TEST) -> range:
    """The rows an evaluation episode over part ``rows`` steps through (it starts on the part's
    first row and scores the rows after it)."""
    lo, hi = splits.bounds(len(wl), rows)
    steps = episode_steps(len(wl), rows)
    return range(lo + 1, min(lo + steps, hi - 1) + 1)


def run_episode(
    policy: Predictor,
    wl: Workload,
    seed: int,
    name: str,
    rows: tuple[float, float] = splits.TEST,
    *,
    run: int = 0,
) -> EpisodeResult:
    """One episode over the whole ``rows`` part of the workload (default: its test part)."""
    steps = episode_steps(len(wl), rows)
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
        name, wl.name, seed, ratio, changes / max(minutes, 1e-9), worst, len(rates), run
    )


Factory = Callable[[Workload], Predictor]


def evaluate(
    policies: Mapping[str, Factory | Sequence[Factory]],
    workloads: Sequence[Workload],
    seeds: Sequence[int],
    progress: Callable[[str], None] | None = None,
) -> list[EpisodeResult]:
    """Run every policy on every workload's test part with every evaluation seed.

    Args:
        policies: name → factory building the policy for a workload (baselines such as
            static-best are per workload; trained policies ignore the argument), or a list of
            factories: the same policy trained with several seeds, one run each.
        workloads: the workloads, evaluated on their test parts.
        seeds: replay seeds (never a training seed: :func:`autotune.envs.splits.eval_seeds`).
        progress: called with a short label before each (policy, workload).
    """
    out: list[EpisodeResult] = []
    for wl in workloads:
        for name, factories in policies.items():
            if progress:
                progress(f"{name} on {wl.name}")
            runs = list(factories) if isinstance(factories, Sequence) else [factories]
            for run, factory in enumerate(runs):
                policy = factory(wl)
                for seed in seeds:
                    out.append(run_episode(policy, wl, seed, name, run=run))
    return out


def score_matrix(results: Sequence[EpisodeResult], workloads: Sequence[str]) -> np.ndarray:
    """One policy's scores as rliable wants them, ``(runs, workloads)``: a run is a trained
    model (mean over evaluation seeds) when there are several, else an evaluation seed."""
    several = len({r.run for r in results}) > 1
    cells: dict[tuple[int, str], list[float]] = {}
    for r in results:
        key = r.run if several else r.seed
        cells.setdefault((key, r.workload), []).append(r.progress_vs_default)
    runs = sorted({k for k, _ in cells})
    return np.array(
        [[float(np.mean(cells.get((k, w), [np.nan]))) for w in workloads] for k in runs]
    )


def _mean_iqm(x: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x)])


def summarize(
    results: Sequence[EpisodeResult],
    baselines: Sequence[str] = ("default", "static-best"),
    reps: int = BOOTSTRAP_REPS,
    poi_reps: int = POI_REPS,
    seed: int = 0,
) -> list[Summary]:
    """Per (policy, workload) and per policy over all workloads: rliable's mean with its 95 %
    stratified-bootstrap interval, IQM, and probability of improvement over each baseline."""
    import warnings

    from rliable import library as rly
    from rliable import metrics

    # arch warns that rliable hands it a RandomState; the draws are what we ask for.
    warnings.filterwarnings("ignore", "random_state is deprecated", FutureWarning)

    names = list(dict.fromkeys(r.policy for r in results))
    workloads = list(dict.fromkeys(r.workload for r in results))
    by_policy = {p: [r for r in results if r.policy == p] for p in names}
    scores: dict[tuple[str, str], np.ndarray] = {}
    for p in names:
        full = score_matrix(by_policy[p], workloads)
        # A run missing on some workload (a model not trained for it) counts where it exists.
        scores[(p, ALL)] = full[~np.isnan(full).any(axis=1)]
        for j, w in enumerate(workloads):
            col = full[:, j : j + 1]
            scores[(p, w)] = col[~np.isnan(col[:, 0])]
    rng = np.random.RandomState(seed)
    point, ci = rly.get_interval_estimates(
        {f"{p}|{w}": m for (p, w), m in scores.items()},
        _mean_iqm,
        reps=reps,
        random_state=rng,
    )
    present = [b for b in baselines if b in names]
    pairs = {
        f"{p}|{w}|{b}": (scores[(p, w)], scores[(b, w)])
        for (p, w) in scores
        for b in present
        if b != p
    }
    p_point, p_ci = (
        rly.get_interval_estimates(
            pairs, metrics.probability_of_improvement, reps=poi_reps, random_state=rng
        )
        if pairs
        else ({}, {})
    )
    out = []
    for (p, w), m in scores.items():
        key = f"{p}|{w}"
        rs = [r for r in by_policy[p] if w in (ALL, r.workload)]
        improve = {
            b: (
                float(p_point[f"{key}|{b}"]),
                float(np.ravel(p_ci[f"{key}|{b}"])[0]),
                float(np.ravel(p_ci[f"{key}|{b}"])[1]),
            )
            for b in present
            if b != p
        }
        out.append(
            Summary(
                policy=p,
                workload=w,
                mean=float(point[key][0]),
                low=float(ci[key][0, 0]),
                high=float(ci[key][1, 0]),
                n=int(m.shape[0]),
                changes_per_min=float(np.mean([r.knob_changes_per_min for r in rs])),
                worst_regression=max(r.worst_regression for r in rs),
                iqm=float(point[key][1]),
                p_improve=improve,
            )
        )
    return out


def as_rows(results: Sequence[EpisodeResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]

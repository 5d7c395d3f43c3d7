"""Baselines every trained policy is compared with, behind the same ``predict(obs)`` interface.

* ``default``: the knobs as the machine had them (never changes anything).
* ``random``: now and then (each step with probability :data:`RANDOM_SWITCH`) a uniformly random
  setting, held until the next switch.
* ``static-best``: the best *fixed* setting for the workload, found by Optuna over the replay
  env (the oracle a careful engineer would find by hand, with the held-out part included).
* ``heuristic``: threshold rules in the spirit of bpftune: raise read-ahead when readahead is
  asynchronous (sequential streams) and the job reads, lower it when synchronous misses
  dominate (random access); raise the job's CPU weight while its threads wait in the run queue,
  lower it back when they do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from autotune.envs.replay import ReplayEnv
from autotune.envs.spaces import LEVELS, values_to_levels
from autotune.envs.workload import Workload

from autotune.errors import UserError
from autotune.features import FEATURE_NAMES, knob_levels
from autotune.knobs import KNOBS

NAMES = ("default", "random", "static-best", "heuristic")
RANDOM_SWITCH = 0.1
_F = {name: i for i, name in enumerate(FEATURE_NAMES)}
_K = {k.name: i for i, k in enumerate(KNOBS)}

Levels = npt.NDArray[np.int64]


class Baseline:
    """A policy that needs no training."""

    name = "baseline"

    def reset(self) -> None:
        """Forget the last episode."""

    def decide(self, obs: npt.NDArray[np.float32], current: Levels) -> Levels:
        raise NotImplementedError

    def predict(
        self,
        obs: npt.ArrayLike,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[Levels, Any]:
        """SB3's interface; the levels in effect are read from the observation."""
        if episode_start is not None and bool(np.any(episode_start)):
            self.reset()
        x = np.asarray(obs, dtype=np.float32).reshape(-1)
        return self.decide(x, knob_levels(x)), None


class Default(Baseline):
    name = "default"

    def decide(self, obs: npt.NDArray[np.float32], current: Levels) -> Levels:
        return current


class Random(Baseline):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def decide(self, obs: npt.NDArray[np.float32], current: Levels) -> Levels:
        if self.rng.random() < RANDOM_SWITCH:
            return np.array([self.rng.integers(0, n) for n in LEVELS], dtype=np.int64)
        return current


class Static(Baseline):
    """A fixed setting."""

    name = "static-best"

    def __init__(self, levels: Levels) -> None:
        self.levels = np.asarray(levels, dtype=np.int64)

    def decide(self, obs: npt.NDArray[np.float32], current: Levels) -> Levels:
        return self.levels.copy()


def search_static_best(wl: Workload, trials: int = 120, seed: int = 0, steps: int = 240) -> Static:
    """Optuna (TPE) over fixed settings, scored by mean progress vs default in the replay env.

    Every trial replays the same episode starts (common random numbers), so settings are
    compared on the same demand.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    env = ReplayEnv([wl], episode_steps=steps, noise=0.0)
    n = len(wl)
    starts = sorted({int(x) for x in np.linspace(0, max(0, n - steps - 2), 3)})

    def score(levels: Levels) -> float:
        total, count = 0.0, 0
        for start in starts:
            env.reset(seed=seed, options={"start": start})
            done = False
            while not done:
                _, _, _, done, info = env.step(levels)
                if info["rate_default"] > 0:
                    total += info["rate"] / info["rate_default"]
                    count += 1
        return total / max(count, 1)

    def objective(trial: optuna.Trial) -> float:
        levels = np.array(
            [trial.suggest_int(k.name, 0, k.levels - 1) for k in KNOBS], dtype=np.int64
        )
        return score(levels)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    default = values_to_levels(wl.defaults)
    study.enqueue_trial({k.name: int(default[i]) for i, k in enumerate(KNOBS)})
    study.optimize(objective, n_trials=trials)
    best = np.array([study.best_params[k.name] for k in KNOBS], dtype=np.int64)
    return Static(best)


class Heuristic(Baseline):
    """Threshold rules, one step per knob at most every :attr:`dwell` steps.

    The thresholds: a role "waits" when more than 20 % of its runnable time is spent in the run
    queue (``*_wait``), and is "fine" under 5 %: CFS's own latency target makes a few percent
    normal. A stream is "sequential" when under 30 % of its readahead events are synchronous
    and "random" above 70 %; the job "reads" above about 1 MB/s (``blk_read_mbps`` > 0.08).
    """

    name = "heuristic"
    WAIT_HIGH, WAIT_LOW = 0.20, 0.05
    SEQ, RAND = 0.30, 0.70
    READS = 0.08

    def __init__(self, dwell: int = 4) -> None:
        self.dwell = dwell
        self.since = 0

    def reset(self) -> None:
        self.since = 0

    def decide(self, obs: npt.NDArray[np.float32], current: Levels) -> Levels:
        self.since += 1
        if self.since < self.dwell:
            return current
        self.since = 0
        out = current.copy()
        top = np.asarray(LEVELS) - 1
        wait = max(obs[_F["trainer_wait"]], obs[_F["loader_wait"]])
        for knob in ("weight.trainer", "weight.loader"):
            i = _K[knob]
            if wait > self.WAIT_HIGH:
                out[i] = min(out[i] + 1, top[i])
            elif wait < self.WAIT_LOW and out[i] > KNOBS[i].index(1.0):
                out[i] -= 1
        if obs[_F["blk_read_mbps"]] > self.READS:
            sync = max(obs[_F["trainer_ra_sync"]], obs[_F["loader_ra_sync"]])
            i = _K["readahead"]
            if sync < self.SEQ:
                out[i] = min(out[i] + 1, top[i])
            elif sync > self.RAND:
                out[i] = max(out[i] - 1, 0)
        return out


def make(name: str, workload: Workload | None = None, seed: int = 0) -> Baseline:
    """Build a baseline by name (``static-best`` needs the workload it is the best for)."""
    factories: dict[str, Callable[[], Baseline]] = {
        "default": Default,
        "random": lambda: Random(seed),
        "heuristic": Heuristic,
    }
    if name == "static-best":
        if workload is None:
            raise UserError("static-best is found per workload: give one")
        return search_static_best(workload, seed=seed)
    if name not in factories:
        raise UserError(f"unknown baseline {name!r}; baselines: {', '.join(NAMES)}")
    return factories[name]()

"""Baselines every trained policy is compared with, behind the same ``predict(obs)`` interface.

* ``default``: the knobs as the machine had them (never changes anything).
* ``random``: now and then (each step with probability :data:`RANDOM_SWITCH`) a uniformly random
  setting, held until the next switch.
* ``static-best``: the best *fixed* setting for the workload on the rows evaluated, in
  hindsight, exhaustively over the ladders in the replay (:mod:`autotune.envs.oracle`).
* ``heuristic``: what an experienced administrator would script (:class:`Heuristic`): more
  weight while other tasks want the CPUs, read-ahead from the sequentiality observed (mmap
  read-around faults included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from autotune.envs import splits
from autotune.envs.spaces import LEVELS
from autotune.envs.workload import Workload
from autotune.errors import UserError
from autotune.features import FEATURE_NAMES, knob_levels
from autotune.knobs import KNOBS

NAMES = ("default", "random", "static-best", "heuristic")
RANDOM_SWITCH = 0.1
_F = {name: i for i, name in enumerate(FEATURE_NAMES)}
_K = {k.name: i for i, k in enumerate(KNOBS)}
_L1E4, _L1E5 = math.log1p(1e4), math.log1p(1e5)  # the schema's scales of MB/s and faults/s

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


def search_static_best(wl: Workload, rows: tuple[float, float] = splits.PARTS["all"]) -> Static:
    """The best fixed setting of ``wl`` on its ``rows`` part (default: the whole trace),
    exhaustively over the ladders (:mod:`autotune.envs.oracle`), in hindsight: the bar a careful
    engineer who tried every setting on this very stretch of the job would set. The evaluation
    protocol asks for the test part's."""
    from autotune.agents.evaluate import episode_rows
    from autotune.envs.oracle import headroom

    return Static(headroom(wl, episode_rows(wl, rows)).best_levels)


class Heuristic(Baseline):
    """What an experienced administrator would script: each knob set straight to the value its
    rule names, once the rule has held for :attr:`dwell` intervals in a row.

    * **Weights**: 4× for trainer and loaders while other tasks want at least half the node's
      CPUs (``other_demand``), back to 1× once they want under a quarter; in between, as they
      are. A heavier job only pays when someone else competes for the CPUs: on a quiet node it
      crowds out the kernel's workers serving its own reads (randread ran at 0.74 of default at
      2×/2× on this project's VM). 4× is ``cpu.shares`` 4096 against 1024, the usual "this job
      first" setting short of starving the rest.
    * **Read-ahead**, from the sequentiality observed while the job reads (over 1 MB/s):
      *random* when its reads are fault-driven (major faults bring in under 2 MiB each: mmap
      read-around, which the kernel does not count as synchronous read-ahead) or when most
      read-ahead is synchronous (over 70 % of the events): 32 KiB, a couple of pages around each
      access; *sequential* when most read-ahead is asynchronous (synchronous under 30 %, faults
      rare): 4 MiB, a streaming size; anything between (small files, say): left as it is.
    * Affinity and the DataLoader's prefetch depth: left as they are.

    Read-ahead goes *up* only after the evidence has held for :attr:`raise_dwell` intervals
    (5 s at 250 ms), four times as long as anything else, and *down* at the first interval of
    random reads (:attr:`lower_dwell`): a large read-ahead under random access is the costliest
    mistake on the table (randread at 1 MiB ran at 0.59 of default in the replay; mixed_io's
    random spells at 1 MiB at 0.36 of 128 KiB for real), a small one under a stream costs little.
    """

    name = "heuristic"
    CONTENDED, QUIET = 0.5, 0.25  # share of the node's CPUs other tasks want
    HEAVY = 4.0
    READS_MBPS = 1.0
    FAULT_BYTES = 2 * 1024 * 1024  # bytes a major fault brings in, below which reads are random
    SEQ, RAND = 0.50, 0.70  # synchronous share of read-ahead events
    RANDOM_KB, STREAM_KB = 32.0, 4096.0

    def __init__(self, dwell: int = 4, raise_dwell: int = 20, lower_dwell: int = 1) -> None:
        self.dwell = dwell
        self.raise_dwell = raise_dwell
        self.lower_dwell = lower_dwell
        self.pending: dict[str, tuple[int, int]] = {}  # knob → (wanted level, intervals held)

    def reset(self) -> None:
        self.pending = {}

    def wants(self, obs: npt.NDArray[np.float32]) -> dict[str, int]:
        """The level each rule asks for now (knobs whose rule is silent are absent)."""
        out: dict[str, int] = {}
        # other_demand is (on-CPU + runnable) / capacity, clipped at 4 and divided by 4.
        other = float(obs[_F["other_demand"]]) * 4.0
        heavy = None
        if other >= self.CONTENDED:
            heavy = self.HEAVY
        elif other < self.QUIET:
            heavy = 1.0
        if heavy is not None:
            for knob in ("weight.trainer", "weight.loader"):
                out[knob] = KNOBS[_K[knob]].index(heavy)
        mbps = math.expm1(float(obs[_F["blk_read_mbps"]]) * _L1E4)
        if mbps > self.READS_MBPS:
            faults = sum(
                math.expm1(float(obs[_F[f"{r}_majflt"]]) * _L1E5) for r in ("trainer", "loader")
            )
            fault_driven = faults > 0 and mbps * 1e6 / faults < self.FAULT_BYTES
            sync = max(obs[_F["trainer_ra_sync"]], obs[_F["loader_ra_sync"]])
            ra = _K["readahead"]
            if fault_driven or sync > self.RAND:
                out["readahead"] = KNOBS[ra].index(self.RANDOM_KB)
            elif sync < self.SEQ:
                out["readahead"] = KNOBS[ra].index(self.STREAM_KB)
        return out

    def decide(self, obs: npt.NDArray[np.float32], current: Levels) -> Levels:
        out = current.copy()
        wants = self.wants(obs)
        for knob in list(self.pending):
            if knob not in wants:
                del self.pending[knob]
        for knob, level in wants.items():
            i = _K[knob]
            if level == current[i]:
                self.pending.pop(knob, None)
                continue
            was, held = self.pending.get(knob, (level, 0))
            held = held + 1 if was == level else 1
            self.pending[knob] = (level, held)
            need = self.dwell
            if knob == "readahead":
                need = self.raise_dwell if level > current[i] else self.lower_dwell
            if held >= need:
                out[i] = level
                del self.pending[knob]
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
        return search_static_best(workload, splits.TEST)
    if name not in factories:
        raise UserError(f"unknown baseline {name!r}; baselines: {', '.join(NAMES)}")
    return factories[name]()

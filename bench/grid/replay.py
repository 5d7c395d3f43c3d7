"""What the grid and the fidelity bench ask of a workload's recording and its replay model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from autotune.errors import UserError
from autotune.knobs import READAHEAD_DEFAULT_KB, default_values


def recording(name: str) -> tuple[Any, str]:
    """The workload's recording (``autotune.envs.workload.Workload``) and a line saying which,
    or ``(None, why not)`` for a job nobody recorded."""
    from autotune.envs.workload import load

    try:
        wl = load(name)
    except UserError as e:
        return None, f"no usable recording: {e}"
    return wl, f"{wl.path.name}, {len(wl)} rows"


def defaults_of(wl: Any) -> dict[str, float]:
    """Every knob's default: the recording's, else the knob table's."""
    return dict(wl.defaults) if wl is not None else default_values(READAHEAD_DEFAULT_KB)


def visited(wl: Any) -> list[dict[str, float]]:
    """The full settings the recording visited (what calibration saw)."""
    return list(wl.knobs) if wl is not None else []


def replay_pick(wl: Any) -> dict[str, float]:
    """The replay's static-best (:func:`autotune.agents.baselines.search_static_best` on the
    current model) as changes from the workload's defaults. A knob the recording never had in
    effect (prefetch for a job that never acknowledged it) is left out: the job cannot hold it."""
    from autotune.agents.baselines import search_static_best
    from autotune.knobs.levels import levels_to_values

    best = levels_to_values(search_static_best(wl).levels)
    held = {k for s in wl.samples for k in s.knobs}
    return {k: v for k, v in best.items() if v != wl.defaults.get(k) and k in held}


def predict(wl: Any, setting: Mapping[str, float]) -> float:
    """Mean progress rate ReplayEnv gives over the whole trace at one fixed setting (a change
    from the workload's defaults), noise off."""
    from autotune.envs import spaces
    from autotune.envs.replay import ReplayEnv

    env = ReplayEnv([wl], episode_steps=len(wl), noise=0.0)
    levels = spaces.values_to_levels({**wl.defaults, **setting})
    env.reset(seed=0, options={"start": 0})
    rates, done = [], False
    while not done:
        _, _, _, done, info = env.step(levels)
        rates.append(info["rate"])
    return float(np.mean(rates))

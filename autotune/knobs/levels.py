"""Knob values ↔ ladder indices, the form actions and the guard work in.

The Gym envs (``autotune.envs``) and the online tuner (``autotune.daemon``) both speak in ladder
indices (one per knob, in the order of :data:`autotune.knobs.KNOBS`); this is the one
conversion they share.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from autotune.knobs.table import KNOBS, Knob


def levels_to_values(levels: npt.ArrayLike, knobs: tuple[Knob, ...] = KNOBS) -> dict[str, float]:
    """Ladder indices → knob values, by name."""
    idx = np.asarray(levels, dtype=np.int64).reshape(-1)
    return {k.name: k.value(int(i)) for k, i in zip(knobs, idx, strict=True)}


def values_to_levels(
    values: dict[str, float], knobs: tuple[Knob, ...] = KNOBS
) -> npt.NDArray[np.int64]:
    """Knob values by name → ladder indices (nearest level for values off the ladder)."""
    return np.array([k.index(values[k.name]) for k in knobs], dtype=np.int64)

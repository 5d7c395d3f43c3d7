"""Action spaces derived from the knob table, and wrappers for algorithms that need others.

The native action is ``MultiDiscrete([levels of each knob])``: one ladder index per knob, in the
order of :data:`autotune.knobs.KNOBS` (PPO, A2C). :class:`DiscreteStep` offers one knob step per
action (DQN); :class:`BoxLevels` a continuous vector mapped onto the ladders (SAC, TD3).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from autotune.knobs import KNOBS, Knob
from autotune.knobs.levels import levels_to_values, values_to_levels

# The value ↔ level conversions live with the knob table, below both the envs and the online
# tuner; the envs and agents keep reaching them here.
__all__ = [
    "LEVELS",
    "BoxLevels",
    "DiscreteStep",
    "levels_to_values",
    "multidiscrete",
    "values_to_levels",
]

LEVELS: tuple[int, ...] = tuple(k.levels for k in KNOBS)


def multidiscrete(knobs: tuple[Knob, ...] = KNOBS) -> gym.spaces.MultiDiscrete:
    """One ladder index per knob."""
    return gym.spaces.MultiDiscrete(np.array([k.levels for k in knobs], dtype=np.int64))


class DiscreteStep(gym.ActionWrapper[Any, np.int64, np.ndarray]):
    """``Discrete(1 + 2·n)``: 0 keeps every knob; ``1 + 2i`` lowers knob ``i`` one level,
    ``2 + 2i`` raises it (clamped at the ladder's ends). For DQN."""

    def __init__(self, env: gym.Env[Any, np.ndarray]) -> None:
        super().__init__(env)
        self.levels = np.asarray(env.action_space.nvec, dtype=np.int64)  # type: ignore[attr-defined]
        self.action_space = gym.spaces.Discrete(1 + 2 * len(self.levels))
        self._current = np.zeros_like(self.levels)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._current = np.asarray(info["levels"], dtype=np.int64).copy()
        return obs, info

    def action(self, action: np.int64) -> np.ndarray:
        a = int(action)
        if not self.action_space.contains(a):
            raise gym.error.InvalidAction(f"{action!r} is not in {self.action_space}")
        if a > 0:
            i, up = divmod(a - 1, 2)
            self._current[i] = np.clip(self._current[i] + (1 if up else -1), 0, self.levels[i] - 1)
        return self._current.copy()

    def step(self, action: np.int64) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        levels: Any = self.action(action)
        obs, reward, terminated, truncated, info = self.env.step(levels)
        self._current = np.asarray(info["levels"], dtype=np.int64).copy()
        return obs, reward, terminated, truncated, info


class BoxLevels(gym.ActionWrapper[Any, np.ndarray, np.ndarray]):
    """``Box(-1, 1, (n,))`` mapped linearly onto each knob's ladder indices. For SAC and TD3."""

    def __init__(self, env: gym.Env[Any, np.ndarray]) -> None:
        super().__init__(env)
        self.levels = np.asarray(env.action_space.nvec, dtype=np.int64)  # type: ignore[attr-defined]
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(len(self.levels),), dtype=np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return np.rint((a + 1.0) / 2.0 * (self.levels - 1)).astype(np.int64)

"""stable-baselines3 → MLflow: a ``KVWriter`` for SB3's logger, and a callback that adds it.

SB3 collects its numbers in a Logger and hands them to each output format on ``dump()``; adding
:class:`TrackingWriter` to those formats mirrors every dump into a :class:`TrackedRun` without
touching the training loop. Keys are kept as SB3 names them (``train/loss``, ``time/fps``),
except the few that have autotune names (:data:`RENAMES`). Example::

    with tracked_run("train", tags={...}) as run:
        model.learn(total_timesteps=n, callback=TrackingCallback(run))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from autotune.tracking.run import TrackedRun
from autotune.tracking.schema import M_EPISODE_REWARD

# SB3 key → autotune's metric name.
RENAMES = {"rollout/ep_rew_mean": M_EPISODE_REWARD}
# An output format named in a key's exclusion tuple skips that key (SB3's convention).
FORMAT_NAME = "mlflow"


class TrackingWriter(KVWriter):
    """Writes SB3's numeric key/values to a tracked run at SB3's step (the timestep count)."""

    def __init__(self, run: TrackedRun) -> None:
        self.run = run

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        metrics: dict[str, float] = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if FORMAT_NAME in excluded:
                continue
            # Strings, videos, figures and images are not metrics; bools are not either.
            if isinstance(value, bool | str) or not isinstance(value, int | float | np.number):
                continue
            v = float(value)
            if math.isfinite(v):
                metrics[RENAMES.get(key, key)] = v
        if metrics:
            self.run.log_metrics(metrics, step=int(step))

    def close(self) -> None:
        """Nothing to close: the run belongs to whoever opened it."""


class TrackingCallback(BaseCallback):
    """Adds a :class:`TrackingWriter` to the model's logger for the length of ``learn()``."""

    def __init__(self, run: TrackedRun, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.run = run
        self.writer = TrackingWriter(run)

    def _on_training_start(self) -> None:
        formats = self.model.logger.output_formats
        if self.writer not in formats:
            formats.append(self.writer)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        formats = self.model.logger.output_formats
        if self.writer in formats:
            formats.remove(self.writer)

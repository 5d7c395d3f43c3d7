"""The training progress view: timesteps, the training rate in steps per second, and the latest
validation score, on stderr (rich)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from stable_baselines3.common.callbacks import BaseCallback

UPDATE_S = 0.5  # redraw at most twice a second: the bar must not cost the training


class RateProgress(BaseCallback):
    """A progress bar for ``model.learn`` that says how fast training goes."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        super().__init__()
        self.total = total
        self.console = console or Console(stderr=True)
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.t0 = 0.0
        self.last = 0.0
        self.score = "-"

    def _on_training_start(self) -> None:
        self.bar = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"),
            TextColumn("validation {task.fields[score]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.bar.start()
        self.task = self.bar.add_task("training", total=self.total, rate="-", score=self.score)
        self.t0 = self.last = time.perf_counter()

    def rate(self) -> float:
        """Timesteps per second since training started (validation time included)."""
        return self.num_timesteps / max(time.perf_counter() - self.t0, 1e-9)

    def set_score(self, score: float) -> None:
        """Show the latest validation score (progress vs default)."""
        self.score = f"{score:.3f}"

    def _on_step(self) -> bool:
        now = time.perf_counter()
        if now - self.last >= UPDATE_S:
            self.last = now
            self._draw()
        return True

    def _draw(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(
                self.task,
                completed=self.num_timesteps,
                rate=f"{self.rate():,.0f}",
                score=self.score,
            )

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self._draw()
            self.bar.stop()
            self.bar = None

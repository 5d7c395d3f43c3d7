"""LiveEnv: real telemetry and real actuators on a real job, one step per control interval."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from autotune.config import Settings
from autotune.config import load as load_settings
from autotune.envs import spaces
from autotune.envs.replay import CHANGE_COST, DEFAULT_EPISODE_STEPS
from autotune.errors import UserError
from autotune.features import N_FEATURES, featurize, progress_rate
from autotune.knobs import default_values
from autotune.target import Target

if TYPE_CHECKING:
    from autotune.job import JobSession

BASELINE_STEPS = 8  # intervals at the default knobs that set the reward's reference rate


class LiveEnv(gym.Env[npt.NDArray[np.float32], npt.NDArray[np.int64]]):
    """Tune the knobs of a running job on this machine.

    ## Description

    Each step applies the action through the actuators (bounded, journalled, verified), waits
    one control interval, and observes the eBPF telemetry of that interval. The job runs in an
    :class:`autotune.job.JobSession`, as under `autotune record` and `autotune tune`. On
    ``close()`` every knob is put back, and a job the env started is stopped (SIGTERM, then
    SIGKILL after :data:`autotune.job.STOP_GRACE_S`; :mod:`autotune.job.stop`).

    ## Action Space

    The same ``MultiDiscrete`` as :class:`~autotune.envs.replay.ReplayEnv`: one ladder index per
    knob of :data:`autotune.knobs.KNOBS`. A knob the actuators had to give up (a person changed
    it, a write did not stick, no backend here) keeps its value whatever the action says.

    ## Observation Space

    ``Box(0, 1, (N_FEATURES,), float32)``, the schema of :mod:`autotune.features`, from the
    real telemetry of the interval.

    ## Rewards

    As in ReplayEnv: ``rate / rate_default - 1 - 0.01 × knobs changed``, where ``rate_default``
    is the job's progress over the first :data:`BASELINE_STEPS` intervals at the default knobs
    (the machine as it was), measured at the first reset.

    ## Starting State

    The first ``reset()`` starts the job held stopped (or attaches to it), opens the collectors
    and the actuators, lets the job run, and measures the default rate; every ``reset()`` puts
    the knobs back at their defaults.

    ## Episode End

    Terminated when the job exits; truncated after ``episode_steps`` steps.

    ## Arguments

    * ``command`` / ``pid`` / ``cgroup``: the job: a command to start, or one already running.
    * ``interval_ms``: the control interval (default: settings, 250 ms).
    * ``dry_run``: decide and log, but write nothing.
    * ``episode_steps``: steps before truncation.
    * ``devices``: block devices whose read-ahead is the prefetch knob (default: found from the
      job's open files).
    * ``settings``: autotune settings (journal path, cgroup parent).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        pid: int | None = None,
        cgroup: str | None = None,
        interval_ms: int | None = None,
        dry_run: bool = False,
        episode_steps: int = DEFAULT_EPISODE_STEPS,
        devices: Sequence[str] | None = None,
        settings: Settings | None = None,
    ) -> None:
        given = [x is not None for x in (command, pid, cgroup)]
        if sum(given) != 1:
            raise UserError("LiveEnv needs exactly one of command, pid or cgroup")
        self.settings = settings or load_settings({"interval_ms": interval_ms})
        self.interval_s = (interval_ms or self.settings.interval_ms) / 1000.0
        self.command, self.pid, self.cgroup = command, pid, cgroup
        self.dry_run = dry_run
        self.episode_steps = episode_steps
        self.devices = devices
        self.action_space = spaces.multidiscrete()
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(N_FEATURES,), dtype=np.float32)
        self._job: JobSession | None = None
        self.target: Target | None = None
        self.rate_default = 0.0
        self._levels = np.zeros(len(spaces.LEVELS), dtype=np.int64)
        self._defaults: dict[str, float] = {}
        self._steps = 0
        self._next_tick = 0.0

    # --- lifecycle -----------------------------------------------------------------------

    def _start(self) -> None:
        from autotune.actuators import DecisionLog
        from autotune.job import JobSession

        job = JobSession(self.settings, command=self.command, pid=self.pid, cgroup=self.cgroup)
        try:
            # A command is held stopped until its telemetry and actuators are ready.
            job.start()
            self.target, self.progress = job.target, job.progress
            self.collector = job.open_telemetry(self.interval_s)
            self.log = DecisionLog()
            self.act = job.open_actuators(dry_run=self.dry_run, log=self.log, devices=self.devices)
            job.run()
        except BaseException:
            job.close()
            raise
        self._job = job
        # Knobs with no backend here (no block device for read-ahead, say) still need a level
        # in the action and the observation: the table's default, or the kernel's read-ahead.
        self._defaults = {**default_values(), **self.act.defaults()}

    def close(self) -> None:
        """Restore every knob, detach the collectors, stop a job this env started."""
        if self._job is not None:
            job, self._job = self._job, None
            job.close()
        super().close()

    # --- one interval --------------------------------------------------------------------

    def _observe(self) -> tuple[npt.NDArray[np.float32], float, bool]:
        now = time.monotonic()
        if self._next_tick <= now:
            self._next_tick = now + self.interval_s
        time.sleep(max(0.0, self._next_tick - now))
        self._next_tick += self.interval_s
        self.act.follow()
        alive = self.target is not None and self.target.alive()
        s = self.collector.sample()
        s.knobs = {**self._defaults, **(self.act.current() if alive else {})}
        return featurize(s), progress_rate(s), alive

    def _apply(self, levels: npt.NDArray[np.int64], reason: str) -> None:
        wanted = spaces.levels_to_values(levels)
        self.act.apply({k: v for k, v in wanted.items() if k not in self.act.disabled}, reason)

    # --- Gymnasium API -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        first = self._job is None
        if first:
            self._start()
        self._levels = spaces.values_to_levels(self._defaults)
        self._apply(self._levels, "reset to defaults")
        self._steps = 0
        self._next_tick = time.monotonic()
        obs, rate, alive = self._observe()
        if first:
            rates = [rate]
            for _ in range(BASELINE_STEPS - 1):
                if not alive:
                    break
                obs, rate, alive = self._observe()
                rates.append(rate)
            self.rate_default = float(np.mean(rates))
        return obs, self._info(rate, 0)

    def step(
        self, action: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        if self._job is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        levels = np.asarray(action, dtype=np.int64)
        if not self.action_space.contains(levels):
            raise gym.error.InvalidAction(f"{action!r} is not in {self.action_space}")
        changed = int((levels != self._levels).sum())
        self._levels = levels.copy()
        if self.target is not None and self.target.alive():
            self._apply(levels, "agent")
        obs, rate, alive = self._observe()
        self._steps += 1
        reward = -CHANGE_COST * changed
        if self.rate_default > 0:
            reward += rate / self.rate_default - 1.0
        truncated = self._steps >= self.episode_steps
        return obs, float(reward), not alive, truncated, self._info(rate, changed)

    def _info(self, rate: float, changed: int) -> dict[str, Any]:
        return {
            "levels": self._levels.copy(),
            "knobs": spaces.levels_to_values(self._levels),
            "rate": rate,
            "rate_default": self.rate_default,
            "changes": changed,
            "disabled": dict(self.act.disabled) if self._job else {},
        }

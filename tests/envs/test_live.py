"""LiveEnv for real: real telemetry and real actuators on a small multi-process job."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils import env_checker as gc
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from autotune import config
from autotune.envs.live import LiveEnv
from autotune.system import cgroups

JOB = Path(__file__).resolve().parent / "job.py"
pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]


def check_live_env(env: LiveEnv) -> None:
    """Gymnasium's check_env, less its two determinism checks: the same seed cannot make a real
    machine's telemetry repeat itself (the replay env passes the full check)."""
    gc.check_action_space(env.action_space)
    gc.check_observation_space(env.observation_space)
    gc.check_space_limit(env.observation_space, "observation")
    gc.check_reset_return_info_deprecation(env)
    gc.check_reset_return_type(env)
    gc.check_reset_options(env)
    gc.env_reset_passive_checker(env)
    gc.env_step_passive_checker(env, env.action_space.sample())
    gc.check_returned_data_not_reused(env)


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    return config.load(
        {
            "journal": tmp_path / "journal.json",
            "runs_dir": tmp_path / "runs",
            "cgroup_parent": f"autotune-live-{os.getpid()}",
            "interval_ms": 100,
        }
    )


def test_live_env_on_a_real_job(settings: config.Settings) -> None:
    env = LiveEnv(command=[sys.executable, str(JOB), "120"], settings=settings, episode_steps=50)
    parent = cgroups.mounts().v1["cpu"] / settings.cgroup_parent
    try:
        check_live_env(env)
        sb3_check_env(env)
        _, info = env.reset(seed=0)
        assert info["rate_default"] > 0  # the job reports progress through autotune.client
        action = info["levels"].copy()
        action[0] = 5  # weight.trainer 8x
        _, reward, terminated, _, info = env.step(action)
        assert not terminated
        assert np.isfinite(reward)
        assert info["knobs"]["weight.trainer"] == 8.0
        assert env.target is not None
        assert settings.cgroup_parent in str(cgroups.cgroup_of(env.target.pid, "cpu"))
        job = env.target
    finally:
        env.close()
    assert not job.alive()  # a job the env started is stopped
    assert not parent.exists()  # and every knob put back

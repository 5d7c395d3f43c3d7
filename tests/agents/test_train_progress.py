"""The training progress view says how fast training goes."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from stable_baselines3 import PPO
from workload_kit import bundled

from autotune.agents.progress import RateProgress
from autotune.envs.replay import ReplayEnv
from autotune.envs.workload import list_bundled


@pytest.mark.skipif(not list_bundled(), reason="no bundled workloads")
def test_progress_view_shows_steps_per_second() -> None:
    out = io.StringIO()
    bar = RateProgress(256, console=Console(file=out, width=160, force_terminal=False))
    env = ReplayEnv(bundled(1))
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [8]},
    )
    bar.set_score(1.234)
    model.learn(256, callback=bar)
    text = out.getvalue()
    assert "steps/s" in text
    assert "256/256" in text
    assert "validation 1.234" in text
    assert bar.rate() > 0

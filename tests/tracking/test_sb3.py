"""SB3's logger → a tracked run, through the KVWriter added by the callback (real PPO)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
from stable_baselines3 import PPO

from autotune.tracking import schema, store, tracked_run
from autotune.tracking.sb3 import TrackingCallback, TrackingWriter


def test_ppo_learn_logs_through_the_callback(runs: Path, sqlite_uri: str) -> None:
    env = gym.make("CartPole-v1")
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [16]},
        device="cpu",
    )
    with tracked_run("train", tracking_uri=sqlite_uri, runs_dir=runs) as run:
        cb = TrackingCallback(run)
        model.learn(total_timesteps=256, callback=cb)
        assert cb.writer not in model.logger.output_formats, "removed after learn()"
    c = store.client(sqlite_uri)
    got = c.get_run(run.id).data.metrics
    assert schema.M_EPISODE_REWARD in got, sorted(got)
    assert "rollout/ep_rew_mean" not in got, "renamed, not duplicated"
    assert "train/loss" in got and "time/fps" in got
    steps = sorted(m.step for m in c.get_metric_history(run.id, "time/fps"))
    assert steps == [64, 128, 192, 256], "SB3's step is the timestep count"


def test_writer_skips_strings_excluded_keys_and_non_finite(runs: Path, sqlite_uri: str) -> None:
    with tracked_run("train", tracking_uri=sqlite_uri, runs_dir=runs) as run:
        TrackingWriter(run).write(
            {"a/num": 1.5, "a/text": "x", "a/hidden": 2.0, "a/nan": float("nan"), "a/flag": True},
            {"a/num": None, "a/text": None, "a/hidden": ("mlflow",), "a/nan": None, "a/flag": None},
            step=7,
        )
    assert store.client(sqlite_uri).get_run(run.id).data.metrics == {"a/num": 1.5}

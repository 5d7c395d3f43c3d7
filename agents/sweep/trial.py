"""One sweep trial, run by Ray Tune in a worker: `autotune train`'s training function, reporting.

The trial builds the same :class:`~autotune.agents.train.TrainConfig` as `autotune train` and
calls :func:`~autotune.agents.train.train` (no loop of its own). :class:`ReportToTune` runs
after each held-out evaluation and reports the score to Ray Tune, where ASHA decides whether the
trial goes on. A trial ASHA stops ends its training at that evaluation and still exports, logs
and ends its MLflow run: :class:`Trial` waits for that (at most :data:`STOP_GRACE_S`) before
Ray removes the worker, where Ray's own function trainable would not wait at all.
"""

from __future__ import annotations

import inspect
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ray import tune
from ray.train._internal.session import get_session
from ray.tune.trainable.function_trainable import wrap_function
from stable_baselines3.common.callbacks import BaseCallback

from autotune.tracking.schema import TAG_SWEEP_TRIAL

STOP_GRACE_S = 120.0  # a stopped trial's last evaluation, export and upload; seconds here
THREAD_TIMEOUT_ENV = "TUNE_FUNCTION_THREAD_TIMEOUT_S"  # read by Ray's reset_config, each call
NODE = "node"  # result key: the Ray node the trial ran on
HOST = "host"
WORKER_PID = "worker_pid"  # result key: the worker process (reused from trial to trial)


@dataclass(frozen=True)
class Budget:
    """What every trial of a sweep shares (the sampled keys come with each trial's config)."""

    timesteps: int
    eval_freq: int
    patience: int
    n_envs: int
    tiny: bool
    tracking_uri: str
    experiment: str
    runs_dir: str
    out_dir: str
    parent_run: str | None
    default_workloads: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReportToTune(BaseCallback):
    """Reports each held-out evaluation of :func:`~autotune.agents.train.train` to Ray Tune.

    It runs as ``train``'s ``after_eval`` callback (``self.parent`` is the evaluating callback).
    When Ray stops the trial, its ``report`` raises ``SystemExit`` in this thread; training then
    stops here, cleanly, instead of dying in the middle of SB3's loop.
    """

    def __init__(self, static: dict[str, Any]) -> None:
        super().__init__()
        self.static = static
        self.stopped = False

    def _on_step(self) -> bool:
        p: Any = self.parent  # train()'s evaluating callback
        if p is None:
            return True
        metrics = {
            "score": float(p.last_score),
            "best": float(p.best_score),
            "timesteps": int(p.num_timesteps),
            **self.static,
        }
        try:
            tune.report(metrics)
        except SystemExit:
            self.stopped = True
            return False
        return True


def _accepted(algo_name: str) -> set[str]:
    from autotune.agents import algos

    cls = algos.get(algo_name).load_class()
    return set(inspect.signature(cls.__init__).parameters)


def hyperparameters(config: dict[str, Any], tiny: bool) -> tuple[dict[str, Any], list[str]]:
    """The SB3 overrides of a sampled config for its algorithm, and the keys it does not take."""
    from autotune.agents import algos
    from autotune.agents.sweep.spec import HYPERPARAMETERS

    algo = config.get("algo", "ppo")
    accepted = _accepted(algo)
    overrides: dict[str, Any] = {}
    ignored: list[str] = []
    for key in HYPERPARAMETERS:
        if key not in config:
            continue
        if key == "net_arch":
            base = algos.get(algo).hyperparameters(tiny).get("policy_kwargs", {})
            overrides["policy_kwargs"] = {**base, "net_arch": list(config[key])}
        elif key in accepted:
            overrides[key] = config[key]
        else:
            ignored.append(key)
    return overrides, ignored


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Train one sampled configuration, exactly as `autotune train` does, reporting to Tune."""
    import ray

    from autotune.agents import select
    from autotune.agents.train import TrainConfig, train

    budget = Budget(**config["budget"])
    trial_id = tune.get_context().get_trial_id() or "trial"
    node = ray.get_runtime_context().get_node_id()
    overrides, ignored = hyperparameters(config, budget.tiny)
    subset = config.get("workloads")
    patterns = [subset] if isinstance(subset, str) else list(subset or budget.default_workloads)
    workloads = select.workloads(patterns)
    cfg = TrainConfig(
        algo=config.get("algo", "ppo"),
        timesteps=budget.timesteps,
        seed=int(config.get("seed", 0)),
        n_envs=int(config.get("n_envs", budget.n_envs)),
        frame_stack=int(config.get("frame_stack", 1)),
        tiny=budget.tiny,
        eval_freq=min(budget.eval_freq, budget.timesteps),
        patience=budget.patience,
        out_dir=Path(budget.out_dir) / trial_id,
        tracking_uri=budget.tracking_uri,
        experiment=budget.experiment,
        runs_dir=Path(budget.runs_dir),
        progress_bar=False,
        overrides=overrides,
        parent_run=budget.parent_run,
        tags={
            TAG_SWEEP_TRIAL: trial_id,
            **({"autotune.ignored": ",".join(ignored)} if ignored else {}),
        },
    )
    static = {NODE: node, HOST: socket.gethostname(), WORKER_PID: os.getpid()}
    reporter = ReportToTune(static)
    result = train(cfg, workloads, after_eval=reporter)
    final = {
        "score": result.history[-1].score if result.history else float("nan"),
        "best": result.best_score,
        "timesteps": result.timesteps,
        "run_id": result.run_id,
        "stopped_early": result.stopped_early,
        **static,
    }
    if reporter.stopped:
        # Ray has stopped this trial (ASHA, its budget, Ctrl-C): its run has ended; the thread
        # ends as Ray's own report ends a stopped one. Returning would go through the trainable's
        # last report, which for a stopped trial waits for a go-ahead that never comes: a worker
        # kept for the next trial (reuse_actors) then could not be reset, and Ray dropped that
        # trial without a word.
        raise SystemExit(0)
    return final


class Trial(wrap_function(run_trial)):  # type: ignore[misc]
    """:func:`run_trial` as a Ray Tune trainable whose stop waits for the run to end cleanly.

    The sweep reuses a worker for the next trial (``reuse_actors``): Ray then calls
    :meth:`reset_config` instead of :meth:`cleanup`, and gives the trial's thread 2 s to end
    before it gives up on reusing the worker. A trial ASHA stopped is still ending its run
    (export, upload) by then, so it gets :data:`STOP_GRACE_S` here too.
    """

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        os.environ[THREAD_TIMEOUT_ENV] = str(int(STOP_GRACE_S))
        return bool(super().reset_config(new_config))

    def cleanup(self) -> None:
        session = get_session()
        thread = getattr(session, "training_thread", None)
        try:
            super().cleanup()
        finally:
            if thread is not None and thread.is_alive():
                thread.join(STOP_GRACE_S)

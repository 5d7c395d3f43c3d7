"""Offline training in ReplayEnv, with validation, early stopping, checkpoints and MLflow
tracking.

The agent learns on each trace's training part and is validated on its validation part with a
replay seed it never trained with (:mod:`autotune.envs.splits`); the test part is left for the
figures. One call of :func:`train` is one MLflow run (kind ``train``): the hyperparameters as
params, SB3's logger mirrored into metrics (``train/episode_reward`` among them), the validation
score ``eval/progress_vs_default`` at every evaluation, and the best policy exported
(:mod:`autotune.agents.export`) as the ``policy/`` artifact and the run's model.

Threads: torch's intra-op threads wait on each other when another task holds a core, and the
policies here are small (two layers of 64), so training runs on one thread unless told
otherwise (PPO 8,192 steps beside ``stress-ng --cpu 2``: 109 s with torch's default threads,
44 s with one; on a quiet node 27.7 s against 23.2 s).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autotune import policy as runtime
from autotune.agents import algos
from autotune.agents.evaluate import run_episode
from autotune.agents.export import export
from autotune.agents.progress import RateProgress
from autotune.envs import splits
from autotune.envs.replay import CHANGE_COST, OFF_DEFAULT_COST, ReplayEnv
from autotune.envs.workload import Workload
from autotune.errors import UserError
from autotune.tracking.schema import DEFAULT_EXPERIMENT, DEFAULT_TRACKING_URI

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import BaseCallback

MIN_IMPROVEMENT = 0.002  # progress-vs-default an evaluation must gain to count as better


@dataclass
class TrainConfig:
    """What to train, on what, for how long."""

    algo: str = "ppo"
    timesteps: int = 500_000
    seed: int = 0
    n_envs: int = 8
    frame_stack: int = 1
    tiny: bool = False
    eval_freq: int = 10_000
    patience: int = 15
    out_dir: Path = Path("runs/training")
    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment: str = DEFAULT_EXPERIMENT
    runs_dir: Path = Path("runs")
    progress_bar: bool = True
    threads: int = 1
    change_cost: float = CHANGE_COST  # the replay's reward cost per knob changed in a step
    # ... and per knob held off its default in a step (ReplayEnv ``off_default_cost``)
    off_default_cost: float = OFF_DEFAULT_COST
    # Domain randomization: each training episode answers with one of the workload's bootstrap
    # parameter sets (ReplayEnv ``randomize``); validation stays on the best fit.
    randomize: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    parent_run: str | None = None  # the MLflow run this one nests under (a sweep's)
    tags: dict[str, str] = field(default_factory=dict)  # added to the run's own


@dataclass
class EvalPoint:
    timesteps: int
    wall_s: float
    score: float


@dataclass
class TrainResult:
    """The outcome: where the best policy is, and how evaluation went."""

    run_id: str
    policy_dir: Path
    best_score: float
    timesteps: int
    wall_s: float
    history: list[EvalPoint]
    stopped_early: bool

    @property
    def steps_per_s(self) -> float:
        """The training rate, validation included."""
        return self.timesteps / max(self.wall_s, 1e-9)

    def to_time_to(self, fraction: float = 0.95) -> EvalPoint | None:
        """The first evaluation reaching ``fraction`` of the final gain over default."""
        if not self.history:
            return None
        final = self.history[-1].score
        for p in self.history:
            if p.score - 1.0 >= fraction * (final - 1.0):
                return p
        return self.history[-1]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and without distribution argument
    checks, then put both back."""
    import torch

    before = torch.get_num_threads()
    validate = torch.distributions.Distribution._validate_args
    torch.set_num_threads(n)
    # The action distributions are built from the policy's own logits; checking their arguments
    # on every step cost a tenth of PPO's rollouts.
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.distributions.Distribution.set_default_validate_args(validate)


def _make_env(
    workloads: Sequence[Workload],
    algo: algos.Algo,
    seed: int,
    *,
    change_cost: float = CHANGE_COST,
    randomize: bool = False,
    off_default_cost: float = OFF_DEFAULT_COST,
) -> Any:
    from stable_baselines3.common.monitor import Monitor

    def build() -> Any:
        env: Any = ReplayEnv(
            list(workloads),
            rows=splits.TRAIN,
            change_cost=change_cost,
            randomize=randomize,
            off_default_cost=off_default_cost,
        )
        if algo.wrapper is not None:
            env = algo.wrapper(env)
        return Monitor(env)

    return build


def validation_score(
    policy: runtime.Policy, workloads: Sequence[Workload], train_seed: int
) -> float:
    """Mean progress vs default of a policy over every workload's validation part, with the
    validation seed of ``train_seed``."""
    seed = splits.validation_seed(train_seed)
    return float(
        np.mean(
            [
                run_episode(
                    policy, w, seed, "validation", rows=splits.VALIDATION
                ).progress_vs_default
                for w in workloads
            ]
        )
    )


def train(
    cfg: TrainConfig, workloads: Sequence[Workload], *, after_eval: BaseCallback | None = None
) -> TrainResult:
    """Train, evaluate on held-out rows as it goes, keep the best policy, track everything.

    ``after_eval`` (an SB3 ``BaseCallback``, as for SB3's ``EvalCallback``) runs after every
    evaluation with ``parent`` set to the evaluating callback, whose ``last_score``,
    ``best_score`` and ``num_timesteps`` it may read; returning False stops training.
    """
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    from autotune.tracking import schema as ts
    from autotune.tracking.run import tracked_run
    from autotune.tracking.sb3 import TrackingCallback

    if not workloads:
        raise UserError("no workloads to train on")
    if cfg.timesteps < 1 or cfg.n_envs < 1 or cfg.frame_stack < 1 or cfg.threads < 1:
        raise UserError("timesteps, n-envs, frame-stack and threads must be at least 1")
    if not 0 <= cfg.seed < splits.EVAL_SEED_BASE - cfg.n_envs:
        raise UserError(
            f"seed must be 0 to {splits.EVAL_SEED_BASE - cfg.n_envs - 1}: the seeds above are "
            "kept for validation and evaluation"
        )
    algo = algos.get(cfg.algo)
    if algo.recurrent and cfg.frame_stack > 1:
        raise UserError("recurrent-ppo keeps its own memory: use --frame-stack 1 with it")
    hp = {**algo.hyperparameters(cfg.tiny), **cfg.overrides}
    names = [w.name for w in workloads]
    params = {
        "algo": cfg.algo,
        "timesteps": cfg.timesteps,
        "seed": cfg.seed,
        "n_envs": cfg.n_envs,
        "frame_stack": cfg.frame_stack,
        "tiny": cfg.tiny,
        "threads": cfg.threads,
        "change_cost": cfg.change_cost,
        "off_default_cost": cfg.off_default_cost,
        "randomize": cfg.randomize,
        "splits": json.dumps(
            {"train": splits.TRAIN, "validation": splits.VALIDATION, "test": splits.TEST}
        ),
        "workloads": ",".join(names),
        **{k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in hp.items()},
    }
    run_name = f"{cfg.algo}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = cfg.out_dir / run_name
    out.mkdir(parents=True, exist_ok=True)
    tags = {ts.TAG_ALGO: cfg.algo, ts.TAG_WORKLOADS: ",".join(names), **cfg.tags}
    with (
        tracked_run(
            ts.TRAIN,
            name=run_name,
            tags=tags,
            params=params,
            tracking_uri=cfg.tracking_uri,
            experiment=cfg.experiment,
            runs_dir=cfg.runs_dir,
            parent=cfg.parent_run,
        ) as run,
        torch_threads(cfg.threads),
    ):
        venv: Any = DummyVecEnv(
            [
                _make_env(
                    workloads,
                    algo,
                    cfg.seed + i,
                    change_cost=cfg.change_cost,
                    randomize=cfg.randomize,
                    off_default_cost=cfg.off_default_cost,
                )
                for i in range(cfg.n_envs)
            ]
        )
        if cfg.frame_stack > 1:
            venv = VecFrameStack(venv, cfg.frame_stack)
        venv.seed(cfg.seed)
        model = algo.load_class()(algo.policy, venv, seed=cfg.seed, verbose=0, **hp)
        # A logger with no folder and no output: left to itself, SB3 makes an empty
        # /tmp/SB3-<date> folder at every learn() (250 of them after a day of tests). What it
        # logs reaches MLflow through TrackingCallback's writer.
        model.set_logger(Logger(folder=None, output_formats=[]))
        best_dir = out / "policy"
        state: dict[str, Any] = {"best": -np.inf, "stale": 0, "history": [], "stopped": False}
        t0 = time.perf_counter()
        extra = {"trained_on": names, "timesteps": 0, "train_run": run_name, "seed": cfg.seed}
        bar = RateProgress(cfg.timesteps) if cfg.progress_bar else None

        def evaluate_now(timesteps: int) -> bool:
            with tempfile.TemporaryDirectory() as tmp:
                folder = export(
                    model,
                    Path(tmp) / "p",
                    algo=cfg.algo,
                    frame_stack=cfg.frame_stack,
                    extra={**extra, "timesteps": timesteps},
                )
                score = validation_score(runtime.load(folder), workloads, cfg.seed)
                if bar is not None:
                    bar.set_score(score)
                state["history"].append(EvalPoint(timesteps, time.perf_counter() - t0, score))
                run.log_metrics({ts.M_EVAL_PROGRESS: score}, step=timesteps)
                if score > state["best"] + MIN_IMPROVEMENT or not best_dir.exists():
                    state["best"] = max(state["best"], score)
                    state["stale"] = 0
                    if best_dir.exists():
                        shutil.rmtree(best_dir)
                    shutil.copytree(folder, best_dir)
                else:
                    state["stale"] += 1
            if state["stale"] >= cfg.patience:
                state["stopped"] = True
                return False
            return True

        class Validate(BaseCallback):
            """Validate every ``eval_freq`` timesteps; stop when validation stops improving."""

            def __init__(self) -> None:
                super().__init__()
                self.next = cfg.eval_freq
                self.last_score = float("nan")
                self.best_score = float("nan")

            def _init_callback(self) -> None:
                if after_eval is not None:
                    after_eval.init_callback(self.model)
                    after_eval.parent = self

            def _on_step(self) -> bool:
                if self.num_timesteps >= self.next:
                    self.next += cfg.eval_freq
                    go_on = evaluate_now(self.num_timesteps)
                    self.last_score = state["history"][-1].score
                    self.best_score = float(state["best"])
                    if after_eval is not None:
                        go_on = after_eval.on_step() and go_on
                    return go_on
                return True

        checkpoints = CheckpointCallback(
            save_freq=max(cfg.eval_freq // cfg.n_envs, 1),
            save_path=str(out / "checkpoints"),
            name_prefix=cfg.algo,
        )
        steps = [Validate(), checkpoints, TrackingCallback(run)]
        callbacks = CallbackList([*steps, bar] if bar is not None else steps)
        model.learn(cfg.timesteps, callback=callbacks)
        if not state["stopped"]:
            evaluate_now(model.num_timesteps)
        wall = time.perf_counter() - t0
        run.log_metrics(
            {
                "train/wall_s": wall,
                "train/steps_per_s": model.num_timesteps / max(wall, 1e-9),  # validation included
                "train/best_progress_vs_default": state["best"],
            }
        )
        (out / "history.json").write_text(json.dumps([asdict(p) for p in state["history"]]))
        run.log_artifact(out / "history.json")
        run.log_policy(best_dir)
        return TrainResult(
            run_id=run.id,
            policy_dir=best_dir,
            best_score=float(state["best"]),
            timesteps=int(model.num_timesteps),
            wall_s=wall,
            history=state["history"],
            stopped_early=bool(state["stopped"]),
        )

"""`autotune train`."""

from __future__ import annotations

from pathlib import Path

import click

from autotune import config
from autotune.tracking.schema import DEFAULT_EXPERIMENT

ALGO_NAMES = ("ppo", "a2c", "dqn", "sac", "recurrent-ppo")


@click.command()
@click.option(
    "--workload",
    "workloads",
    multiple=True,
    metavar="NAME|PATH|GLOB",
    help="Recorded workloads to train on (repeatable; default: the bundled ones).",
)
@click.option("--algo", type=click.Choice(ALGO_NAMES), default="ppo", show_default=True)
@click.option("--timesteps", type=click.IntRange(min=1), default=500_000, show_default=True)
@click.option(
    "--seed",
    type=click.IntRange(0, 99_999),
    default=0,
    show_default=True,
    help="Training seed (validation and evaluation use seeds of their own).",
)
@click.option(
    "--n-envs",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Replay envs stepped together: the policy acts on all of them in one batch.",
)
@click.option(
    "--frame-stack",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Observations stacked as input (lets the agent see phase changes coming).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="torch threads. One suits the small policies here and a busy node: more threads wait "
    "on each other whenever another task holds a core.",
)
@click.option(
    "--change-cost",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Reward cost per knob changed in a replay step, in units of progress relative to "
    "default: a change must buy that much more progress to pay for itself.  [default: the "
    "replay env's CHANGE_COST]",
)
@click.option(
    "--off-default-cost",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Reward cost per knob held away from its default in a replay step: a knob moves only "
    "for a modelled gain larger than that (the replay extrapolates settings the recording never "
    "ran, and a real node often charges a few per cent for a knob the model calls "
    "free).  [default: the replay env's OFF_DEFAULT_COST]",
)
@click.option(
    "--randomize",
    is_flag=True,
    help="Domain randomization: each training episode replays its workload on one of the "
    "calibration's bootstrap parameter sets (a node the recording cannot rule out) instead of "
    "the best fit; validation stays on the best fit.",
)
@click.option("--tiny", is_flag=True, help="Tiny network and rollouts (tests, smoke runs).")
@click.option(
    "--eval-freq",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Timesteps between evaluations on the validation part.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="Evaluations without improvement before stopping early (the validation score is "
    "noisy and still climbs slowly at 400,000 timesteps: a short patience stops too soon).",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Where checkpoints go.")
@click.option(
    "--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment."
)
@click.option("--tracking-uri", help="MLflow tracking URI (default: settings).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "--register",
    is_flag=True,
    help="Register the policy in the MLflow Model Registry as autotune-policy (see --alias).",
)
@click.option(
    "--alias", default="champion", show_default=True, help="Registry alias --register moves."
)
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
def train(  # noqa: PLR0917 - one parameter per click option
    workloads: tuple[str, ...],
    algo: str,
    timesteps: int,
    seed: int,
    n_envs: int,
    frame_stack: int,
    threads: int,
    change_cost: float | None,
    off_default_cost: float | None,
    randomize: bool,
    tiny: bool,
    eval_freq: int,
    patience: int,
    out_dir: Path | None,
    experiment: str,
    tracking_uri: str | None,
    no_progress: bool,
    register: bool,
    alias: str,
    config_file: str | None,
) -> None:
    """Train an agent offline against recorded workloads (ReplayEnv), tracked in MLflow.

    Learns on each trace's training part (its first 60 %), evaluates on its validation part
    (the next 20 %) every --eval-freq timesteps, keeps the best policy, stops early when
    validation stops improving, and exports the policy (weights + JSON, no pickle) as the run's
    `policy/` artifact for `autotune eval` and `autotune tune`. The last 20 % is left for
    `autotune eval`. The progress bar shows the training rate (steps/s).
    """
    from rich.console import Console

    from autotune.agents import select
    from autotune.agents.train import TrainConfig
    from autotune.agents.train import train as run_training
    from autotune.envs.replay import CHANGE_COST, OFF_DEFAULT_COST
    from autotune.tracking import registry

    settings = config.load({"tracking_uri": tracking_uri}, config_file)
    if register:
        registry.check_alias(alias)  # before training, not after
    loaded = select.workloads(workloads)
    cfg = TrainConfig(
        algo=algo,
        timesteps=timesteps,
        seed=seed,
        n_envs=n_envs,
        frame_stack=frame_stack,
        threads=threads,
        change_cost=CHANGE_COST if change_cost is None else change_cost,
        off_default_cost=OFF_DEFAULT_COST if off_default_cost is None else off_default_cost,
        randomize=randomize,
        tiny=tiny,
        eval_freq=min(eval_freq, timesteps),
        patience=patience,
        out_dir=out_dir or settings.runs_dir / "training",
        tracking_uri=settings.tracking_uri,
        experiment=experiment,
        runs_dir=settings.runs_dir,
        progress_bar=not no_progress,
    )
    console = Console(stderr=True)
    console.print(
        f"training {algo} on {', '.join(w.name for w in loaded)} for {timesteps} timesteps"
    )
    result = run_training(cfg, loaded)
    reached = result.to_time_to(0.95)
    console.print(
        f"best validation progress vs default: {result.best_score:.3f} "
        f"({result.timesteps} timesteps in {result.wall_s:.0f} s, "
        f"{result.steps_per_s:,.0f} steps/s"
        + (", stopped early" if result.stopped_early else "")
        + ")"
    )
    if reached is not None:
        console.print(
            f"95% of the final gain after {reached.timesteps} timesteps ({reached.wall_s:.0f} s)"
        )
    click.echo(f"run: {result.run_id}")
    click.echo(f"policy: {result.policy_dir}")
    if register:
        version = registry.register(result.run_id, settings.tracking_uri, alias=alias)
        click.echo(f"registered: {version.uri} (models:/{version.name}@{alias})")

"""`autotune sweep`."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

from autotune import config


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so that Ray is stopped on the way out, as on Ctrl-C


@click.command()
@click.option(
    "--config",
    "sweep_file",
    type=click.Path(path_type=Path),
    help="Sweep file (TOML): budget, ASHA, registration, search space. Default: a small "
    "space over ppo/a2c, seeds, learning rate and gamma.",
)
@click.option("--trials", type=click.IntRange(1, 10_000), help="Trials (default: the file's, 8).")
@click.option(
    "--address",
    metavar="ray://HOST:PORT|HOST:PORT|auto",
    help="An existing Ray cluster (default: an embedded Ray, started and stopped here).",
)
@click.option("--tracking-uri", help="MLflow tracking URI (default: settings).")
@click.option("--experiment", help="MLflow experiment (default: the file's, autotune).")
@click.option(
    "--num-cpus",
    type=click.IntRange(1, 1024),
    help="CPUs the embedded Ray may use (default: all of this node's).",
)
@click.option("--no-register", is_flag=True, help="Do not register the champion.")
@click.option("--no-live", is_flag=True, help="One line per event instead of a live table.")
@click.option("--settings", "settings_file", type=click.Path(), help="Settings file (TOML).")
def sweep(  # noqa: PLR0917 - one parameter per click option
    sweep_file: Path | None,
    trials: int | None,
    address: str | None,
    tracking_uri: str | None,
    experiment: str | None,
    num_cpus: int | None,
    no_register: bool,
    no_live: bool,
    settings_file: str | None,
) -> int:
    """Train many agents at once on Ray Tune and register the best one.

    Each trial trains in the replay env exactly as `autotune train` does, with a configuration
    drawn from the sweep file's space (algorithm, seed, hyperparameters, workload subset). ASHA
    stops weak trials early from the held-out evaluations made during training. Every trial is
    an MLflow run nested under the sweep's run. The champion (best held-out score, never a test
    part) is registered as models:/autotune-policy@champion for `autotune tune --model`.
    """
    from rich.console import Console

    from autotune.agents.sweep import spec as sweep_spec
    from autotune.agents.sweep.run import SweepRequest, run_sweep

    settings = config.load({"tracking_uri": tracking_uri}, settings_file)
    spec = sweep_spec.load(sweep_file)
    if trials is not None:
        spec.trials = trials
    if experiment is not None:
        spec.experiment = experiment
    console = Console(stderr=True, soft_wrap=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    result = run_sweep(
        SweepRequest(
            spec=spec,
            address=address,
            tracking_uri=settings.tracking_uri,
            runs_dir=settings.runs_dir,
            num_cpus=num_cpus,
            register=not no_register,
            live=False if no_live else None,
        ),
        console,
    )
    console.print(
        f"{len(result.trials)} trials in {result.wall_s:.0f} s on {result.nodes} "
        f"node{'s' if result.nodes != 1 else ''}: {result.stopped_early} stopped early, "
        f"{result.errors} failed",
        highlight=False,
    )
    for t in result.trials:
        if t["status"] == "failed":
            console.print(f"trial {t['trial_id']} failed: {t['error']}", highlight=False)
    click.echo(f"sweep: {result.run_id}")
    if result.champion_run_id is None:
        click.echo("champion: none (no trial finished with a policy)")
        return 1
    click.echo(f"champion: {result.champion_run_id} ({result.champion_score:.3f} held-out)")
    if result.model_uri:
        click.echo(
            f"registered: {result.model_uri} (models:/{spec.registry.name}@{spec.registry.alias})"
        )
    return 0

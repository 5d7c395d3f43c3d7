"""`autotune eval`."""

from __future__ import annotations

from pathlib import Path

import click

from autotune import config
from autotune.tracking.schema import DEFAULT_EXPERIMENT

BASELINE_NAMES = ("default", "random", "static-best", "heuristic")


def _baselines(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if names == ["all"]:
        return list(BASELINE_NAMES)
    if names == ["none"]:
        return []
    bad = [n for n in names if n not in BASELINE_NAMES]
    if bad:
        raise click.BadParameter(
            f"unknown baseline {bad[0]!r}; choose from {', '.join(BASELINE_NAMES)}, all, none"
        )
    return names


@click.command(name="eval")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="RUN_ID|PATH",
    help="Trained policies to evaluate (MLflow run id or exported folder; repeatable). Models "
    "of one algorithm trained on the same workloads with different seeds are one policy, with "
    "one run per seed.",
)
@click.option("--workload", "workloads", multiple=True, metavar="NAME|PATH|GLOB")
@click.option(
    "--baselines",
    default="all",
    show_default=True,
    help="Comma-separated: default, random, static-best, heuristic (or all, none).",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="Evaluation (replay) seeds; never a seed the models were trained with.",
)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="PNG to write.")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True)
@click.option("--tracking-uri", help="MLflow tracking URI (default: settings).")
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
def evaluate(  # noqa: PLR0917 - one parameter per click option
    models: tuple[str, ...],
    workloads: tuple[str, ...],
    baselines: str,
    seeds: int,
    plot_path: Path | None,
    experiment: str,
    tracking_uri: str | None,
    config_file: str | None,
) -> None:
    """Evaluate policies and baselines on each trace's test part, the same protocol for all.

    Each workload's test part (the last 20 % of its trace, never trained or validated on),
    N evaluation seeds: progress relative to the default knobs, as the mean with a 95 %
    stratified-bootstrap interval over runs (one per training seed when several models of a
    policy are given), the interquartile mean and the probability of improvement over the
    baselines (rliable); knob changes per minute, worst regression. Prints a table, writes a PNG
    plot, logs both to MLflow (one eval run, a child run per result).
    """
    from autotune.agents.run_eval import run

    settings = config.load({"tracking_uri": tracking_uri}, config_file)
    run(
        models=list(models),
        workload_patterns=list(workloads),
        baseline_names=_baselines(baselines),
        seeds=seeds,
        plot_path=plot_path,
        experiment=experiment,
        settings=settings,
    )

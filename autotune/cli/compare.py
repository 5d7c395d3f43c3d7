"""`autotune compare`: training runs, evaluations and tuning sessions side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from autotune import config
from autotune.errors import UserError
from autotune.fsutil import write_text_atomic

FORMATS = ("table", "csv", "json", "html")
REPORT = Path("reports") / "compare.html"  # under runs_dir


def _split(values: tuple[str, ...]) -> list[str]:
    return [v for item in values for v in item.replace(",", " ").split()]


@click.command()
@click.option("--experiment", help="Experiment to read (default: autotune).")
@click.option("--runs", "run_ids", multiple=True, help="Compare these run ids (repeat, or commas).")
@click.option("--metric", default="progress_vs_default", show_default=True)
@click.option(
    "--group-by",
    type=click.Choice(["policy", "algo", "workload", "host"]),
    default="policy",
    show_default=True,
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write: the HTML report for table and html (default "
    "runs/reports/compare.html), the CSV or JSON for those (default stdout).",
)
@click.option("--tracking-uri", help="MLflow tracking URI (default: settings).")
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
def compare(  # noqa: PLR0917 (click passes one argument per option)
    experiment: str | None,
    run_ids: tuple[str, ...],
    metric: str,
    group_by: str,
    fmt: str,
    output: Path | None,
    tracking_uri: str | None,
    config_file: str | None,
) -> int:
    """Compare runs: mean, 95% interval and n per group, best marked, and an HTML report.

    The table format prints the table and writes the report (plots of progress vs default per
    workload and policy, knob trajectories of tuning sessions, learning curves; sessions linked
    to the training runs of their models).
    """
    from autotune.compare import comparison as out
    from autotune.compare import fetch
    from autotune.compare.groups import check_metric
    from autotune.tracking.schema import DEFAULT_EXPERIMENT

    settings = config.load({"tracking_uri": tracking_uri}, config_file)
    ids = _split(run_ids)
    if ids and experiment:
        raise UserError("give --experiment or --runs, not both")
    c = fetch.open_store(settings.tracking_uri)
    if ids:
        runs = fetch.named_runs(c, ids)
        where = f"{len(ids)} named run(s)"
    else:
        name = experiment or DEFAULT_EXPERIMENT
        runs = fetch.experiment_runs(c, name)
        where = f"experiment {name!r}"
    check_metric(runs, metric, named=bool(ids), where=where)
    cmp = out.Comparison.of(runs, metric, group_by, where)  # type: ignore[arg-type]

    if fmt in {"csv", "json"}:
        text = out.to_csv(cmp) if fmt == "csv" else out.to_json(cmp) + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            _write(output, text)
        return 0

    from autotune.compare import report

    page = report.render(cmp, c)
    target = output or settings.runs_dir / REPORT
    _write(target, page)
    if fmt == "table":
        from rich.console import Console

        Console().print(out.to_table(cmp))
    click.echo(f"report: {target}")
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from e

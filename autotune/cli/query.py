"""`autotune query "SQL" [TRACE...]`: SQL over recordings, as a table, CSV or JSON."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from autotune.errors import UserError


def _cell(value: Any) -> Any:
    """A value CSV and JSON can hold: NaN as null, lists and structs as JSON text (CSV)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        # Six significant digits, but never an exponent for Unix times.
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.3f}"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _print_table(rows: list[dict[str, Any]], names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for name in names:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(_text(row[n]) for n in names))
    console = Console()
    if not console.is_terminal:  # a pipe or a file: no terminal width to fold the columns into
        console = Console(width=100_000)
    console.print(table)
    click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", err=True)


def _print_csv(rows: list[dict[str, Any]], names: list[str]) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(names)
    for row in rows:
        out.writerow(
            ""
            if (v := _cell(row[n])) is None
            else json.dumps(v)
            if isinstance(v, list | dict)
            else v
            for n in names
        )


def _print_json(rows: list[dict[str, Any]]) -> None:
    clean = [{k: _cell(v) for k, v in row.items()} for row in rows]
    click.echo(json.dumps(clean, indent=1, default=str))


@click.command()
@click.argument("sql")
@click.argument("traces", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
def query(sql: str, traces: tuple[Path, ...], fmt: str, config_file: str | None) -> int:
    """Run SQL over recordings: one table `trace`, one row per interval, with a `file` column.

    TRACE is a trace file (.parquet, or the .partial of a recording cut short) or a folder of
    them; default: every trace under <runs_dir>/workloads. Columns: the raw counters
    ({role}_oncpu_ns, {role}_runq_hist, blk_read_bytes, devices, …), the observation (f_*),
    the knobs in effect (knob_*), progress, t, t_wall, interval_s, source.

    Example: autotune query "SELECT file, avg(f_trainer_cpu) FROM trace GROUP BY file"
    """
    from autotune import config
    from autotune.cli.oneline import warnings_as_lines
    from autotune.trace import query as tq

    settings = config.load({}, config_file)
    with warnings_as_lines():
        default = tq.workloads_dir(settings.runs_dir)
        if not traces and not default.is_dir():
            raise UserError(f"no traces found in {default}; record one with `autotune record`")
        paths = tq.find_traces(traces or [default])
        result = tq.run(sql, paths)
    rows = result.to_pylist()
    names = result.column_names
    if fmt == "csv":
        _print_csv(rows, names)
    elif fmt == "json":
        _print_json(rows)
    else:
        _print_table(rows, names)
    return 0

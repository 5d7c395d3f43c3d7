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


# The widest a cell is shown in a terminal table before it is cut with "…" (DuckDB's shell cuts
# long values the same way); --format csv|json always gives every value whole.
CELL_MAX = 24
# Room a column takes besides its text in rich's default table: a border and padding each side.
COLUMN_EDGE = 3
ELIDED = "…"


def fit_columns(widths: list[int], room: int) -> tuple[list[int], list[int]]:
    """Which columns fit a terminal ``room`` characters wide, as DuckDB's shell picks them.

    Columns are taken alternately from the left and the right end until the next would not fit
    beside a one-character column standing for the ones left out. Returns the indexes kept on
    the left and on the right (the right ones in order); together all columns when all fit.
    """
    if sum(w + COLUMN_EDGE for w in widths) + 1 <= room:
        return list(range(len(widths))), []
    used = 1 + (len(ELIDED) + COLUMN_EDGE)
    left: list[int] = []
    right: list[int] = []
    lo, hi = 0, len(widths) - 1
    take_left = True
    while lo <= hi:
        i = lo if take_left else hi
        if used + widths[i] + COLUMN_EDGE > room:
            break
        used += widths[i] + COLUMN_EDGE
        if take_left:
            left.append(i)
            lo += 1
        else:
            right.insert(0, i)
            hi -= 1
        take_left = not take_left
    if not left and widths:  # even the first column is too wide: show it, cut by the terminal
        left = [0]
    return left, right


def _short(text: str) -> str:
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + ELIDED


def _print_table(rows: list[dict[str, Any]], names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    cells = [[_text(row[n]) for n in names] for row in rows]
    if console.is_terminal:
        cells = [[_short(c) for c in line] for line in cells]
        widths = [
            max([len(_short(n)), *(len(line[j]) for line in cells)]) for j, n in enumerate(names)
        ]
        left, right = fit_columns(widths, console.width)
    else:  # a pipe or a file: no terminal width to fit, every column whole
        console = Console(width=100_000)
        left, right = list(range(len(names))), []
    shown = [*left, *right]
    elided = len(shown) < len(names)
    table = Table(show_lines=False)
    for j in left:
        table.add_column(_short(names[j]) if console.is_terminal else names[j], overflow="fold")
    if elided:
        table.add_column(ELIDED, justify="center")
    for j in right:
        table.add_column(_short(names[j]), overflow="fold")
    for line in cells:
        values = [line[j] for j in left] + ([ELIDED] if elided else []) + [line[j] for j in right]
        table.add_row(*values)
    console.print(table)
    count = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    if elided:
        count += (
            f", {len(names)} columns: {len(shown)} shown, {len(names) - len(shown)} left out"
            " to fit the terminal; --format csv or json for all"
        )
    click.echo(f"({count})", err=True)


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

"""`autotune doctor`."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from autotune import config
from autotune import doctor as checks


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
@click.option("--tracking-uri", help="MLflow tracking URI to report.")
def doctor(as_json: bool, config_file: str | None, tracking_uri: str | None) -> int:
    """What this node supports and what the tuner will use.

    Loads a real tracepoint program to prove BPF works, and lists kernel headers, BTF, sched_ext,
    cgroups, block devices, CPU topology, GPUs, the MLflow tracking URI and the knob backends.
    Exits 0 when the node can run offline training; nonzero only for a broken install.
    """
    settings = config.load({"tracking_uri": tracking_uri}, config_file)
    report = checks.run(settings.tracking_uri)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        table = Table(title="autotune doctor", title_justify="left")
        table.add_column("capability")
        table.add_column("")
        table.add_column("found / why not")
        for c in report.checks:
            mark = "[green]yes[/]" if c.ok else "[yellow]no[/]"
            text = c.found if c.ok else f"{c.reason}" + (f" — {c.fix}" if c.fix else "")
            table.add_row(c.name, mark, text)
        Console().print(table)
        if not report.ok:
            Console(stderr=True).print("[red]broken install:[/] run scripts/bootstrap.sh")
    return 0 if report.ok else 1

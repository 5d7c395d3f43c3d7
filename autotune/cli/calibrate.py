"""`autotune calibrate`."""

from __future__ import annotations

import click


@click.command()
@click.argument("traces", nargs=-1, required=True, metavar="TRACE|NAME...")
def calibrate(traces: tuple[str, ...]) -> None:
    """Fit the replay model of each recorded workload; writes TRACE's .calib.json beside it.

    Recordings made with `autotune record --explore` carry several settings of every knob and
    calibrate best. Prints how well the model explains the recording.
    """
    from rich.console import Console
    from rich.table import Table

    from autotune.envs import calibrate as cal
    from autotune.envs.workload import load

    table = Table(title="calibration", title_justify="left")
    for col in ("workload", "rows", "settings", "median error", "residual sd", "file"):
        table.add_column(col)
    for name in traces:
        wl = load(name)
        params, report = cal.calibrate(wl)
        path = cal.save(wl, params, report)
        table.add_row(
            wl.name,
            str(report["rows"]),
            str(report["settings"]),
            f"{report['median_abs_error']:.1%}",
            f"{report['residual_sd']:.3f}",
            str(path),
        )
    Console().print(table)

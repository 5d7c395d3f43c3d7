"""`autotune calibrate`."""

from __future__ import annotations

import click


@click.command()
@click.argument("traces", nargs=-1, required=True, metavar="TRACE|NAME...")
def calibrate(traces: tuple[str, ...]) -> None:
    """Fit the replay model of each recorded workload; writes TRACE's .calib.json beside it.

    Recordings made with `autotune record --explore` carry several settings of every knob and
    calibrate best: the knobs' effects are fitted on pairs of neighbouring explored settings of
    the training part. Prints how well the model explains the recording and, per knob family,
    how many explored rows (and pairs of settings) identified it; an under-visited family is
    named, and its parameters stay near their priors (record it again with --explore).
    """
    from rich.console import Console
    from rich.table import Table

    from autotune.envs import calibrate as cal
    from autotune.envs.workload import load

    table = Table(title="calibration", title_justify="left")
    families = tuple(cal.FAMILY_PARAMS)
    for col in ("workload", "rows", "settings", "median error", "pair error", *families, "file"):
        table.add_column(col)
    under: list[str] = []
    for name in traces:
        wl = load(name)
        params, report = cal.calibrate(wl)
        path = cal.save(wl, params, report)
        explored = report["explored"]
        pair = report["pair_median_abs_error"]
        table.add_row(
            wl.name,
            str(report["rows"]),
            str(report["settings"]),
            f"{report['median_abs_error']:.1%}",
            "-" if pair is None else f"{pair:.1%}",
            *(
                f"{explored[f]['rows']} ({explored[f]['pairs']})"
                + ("" if explored[f]["identified"] else " !")
                for f in families
            ),
            str(path),
        )
        under += [f"{wl.name}: {f}" for f in families if not explored[f]["identified"]]
    console = Console()
    console.print(table)
    console.print(
        f"per family: explored training rows off its default (pairs of neighbouring settings "
        f"that differ in it); ! under-visited (fewer than {cal.MIN_EXPLORED_ROWS} rows or "
        f"{cal.MIN_PAIRS} pairs)"
    )
    if under:
        console.print("under-visited, parameters left near their priors: " + ", ".join(under))

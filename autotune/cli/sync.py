"""`autotune sync`: upload runs kept in the local spool."""

from __future__ import annotations

import click

from autotune import config
from autotune.errors import UserError


@click.command()
@click.option(
    "--tracking-uri",
    help="Upload here instead of to the store each run was started with.",
)
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
def sync(tracking_uri: str | None, config_file: str | None) -> int:
    """Upload the runs kept in runs/spool (logged while the tracking store was down).

    Safe to repeat: a run or metric already uploaded is not uploaded again. Runs still being
    written by a live process are left to it.
    """
    from autotune.tracking import store
    from autotune.tracking.schema import SPOOL_DIR
    from autotune.tracking.sync import sync_all

    settings = config.load({}, config_file)
    target = store.normalize(tracking_uri) if tracking_uri else None
    report = sync_all(settings.runs_dir, target)
    for local_id, run_id in report.uploaded.items():
        click.echo(f"uploaded {local_id} as run {run_id}")
    for local_id, why in report.rejected.items():
        click.echo(f"{local_id}: the store refused {len(why)} item(s): {why[0]}", err=True)
    for local_id in report.busy:
        click.echo(f"left {local_id}: a running process is still writing it")
    if report.failed:
        first = next(iter(report.failed.values()))
        raise UserError(
            f"{len(report.failed)} run(s) not uploaded: the tracking store "
            f"{target or 'they were started with'} failed ({first}); they stay in "
            f"{settings.runs_dir / SPOOL_DIR}"
        )
    if not (report.uploaded or report.busy):
        click.echo(f"nothing to upload in {settings.runs_dir / SPOOL_DIR}")
    return 0

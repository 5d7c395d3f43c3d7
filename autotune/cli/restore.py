"""`autotune restore`: put back every knob a crashed tuning run left changed."""

from __future__ import annotations

import click

from autotune import config
from autotune.actuators.decisions import DecisionLog
from autotune.actuators.restore import restore_journal
from autotune.errors import UserError


@click.command()
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False),
    help="Journal to replay (default: the journal setting).",
)
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
@click.option("--force", is_flag=True, help="Also replay sessions whose tuner still runs.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), help="Append to this JSONL.")
def restore(
    journal_path: str | None, config_file: str | None, force: bool, log_path: str | None
) -> int:
    """Put back every knob a crashed tuning run left changed.

    Replays the journal: each device, thread and process the run touched gets its original value
    back, and its cgroups are removed, unless someone else changed the value after the run (that
    value is kept). Safe to run twice: the second run finds nothing to do. Sessions whose tuner
    still runs are skipped (it restores when it ends) unless --force.
    """
    settings = config.load({"journal": journal_path}, config_file)
    path = settings.journal
    if not path.exists():
        click.echo(f"nothing to restore: no journal at {path}")
        return 0
    with DecisionLog(log_path) as log:
        report = restore_journal(path, log, force=force)
    for sid in report.restored:
        click.echo(f"restored session {sid}")
    if report.incomplete:
        click.echo(
            f"autotune: could not restore everything in session(s) {', '.join(report.incomplete)};"
            f" they stay in {path} (see the lines above, then run `autotune restore` again)",
            err=True,
        )
        return 1
    if report.running:
        raise UserError(
            f"session(s) {', '.join(report.running)} in {path} belong to a tuner that still runs "
            "(it restores when it ends); stop it first, or use --force"
        )
    if not report.restored:
        click.echo(f"nothing to restore in {path}")
    return 0

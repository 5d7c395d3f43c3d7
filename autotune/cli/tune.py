"""`autotune tune`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from autotune import config
from autotune.errors import UserError
from autotune.tracking.schema import DEFAULT_EXPERIMENT


@click.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "--model",
    required=True,
    metavar="RUN_ID|PATH|models:/NAME@ALIAS",
    help="Policy to deploy: a training run, a policy folder, or a registered version.",
)
@click.option("--pid", type=int, help="Tune a running process (and its children).")
@click.option("--cgroup", type=click.Path(), help="Tune every process of a cgroup.")
@click.option(
    "--interval",
    "interval_ms",
    type=int,
    help="Control interval in ms, 50 to 5000 (default 500; the guard's windows are in seconds, "
    "the policy's features per second, so it may differ from the recordings' 250).",
)
@click.option("--dry-run", is_flag=True, help="Decide and log every change; write nothing.")
@click.option("--tracking-uri", help="MLflow tracking URI (default: settings).")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True)
@click.option("--decisions", type=click.Path(path_type=Path), help="Decision log (JSONL) to write.")
@click.option("--device", "devices", multiple=True, help="Block device for read-ahead.")
@click.option("--no-view", is_flag=True, help="No live view (decision lines only).")
@click.option(
    "--adapt",
    is_flag=True,
    help="Keep learning from the job's own progress: try settings one rung around the "
    "policy's, keep what is faster; every change still guarded (setting: adapt).",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Service mode (with --cgroup PATH or a slice name): tune every job that appears under "
    "it until stopped (docs/service.md).",
)
@click.option(
    "--metrics-port", type=click.IntRange(1, 65535), help="With --follow: serve Prometheus metrics."
)
@click.option("--progress-socket", type=click.Path(path_type=Path), hidden=True)
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def tune(  # noqa: PLR0917 - one parameter per click option
    model: str,
    pid: int | None,
    cgroup: str | None,
    interval_ms: int | None,
    dry_run: bool,
    tracking_uri: str | None,
    experiment: str,
    decisions: Path | None,
    devices: tuple[str, ...],
    no_view: bool,
    adapt: bool,
    follow: bool,
    metrics_port: int | None,
    progress_socket: Path | None,
    config_file: str | None,
    command: tuple[str, ...],
) -> int:
    """Tune a running training job with a trained policy, guarded, explained, tracked.

    Give the job as `-- CMD...` (autotune starts it, ends when it ends and passes its exit
    status through), --pid PID or --cgroup PATH. --model is an MLflow run id (resolved through
    the tracking URI), an exported policy folder, or a version in the MLflow Model Registry
    (models:/autotune-policy@champion, models:/autotune-policy/3), recorded in the session's
    run. Every change is bounded, journalled and undone on exit, SIGTERM, the job's end or
    (after a crash) `autotune restore`; a change that makes progress worse is rolled back, and
    a session doing worse than the default knobs falls back to them.
    """
    from autotune.daemon.session import TuneRequest, run_session

    if follow or metrics_port is not None:
        from autotune.service.cli import follow_slice

        return follow_slice(
            model,
            follow=follow,
            cgroup=cgroup,
            pid=pid,
            command=command,
            interval_ms=interval_ms,
            tracking_uri=tracking_uri,
            dry_run=dry_run,
            devices=devices,
            metrics_port=metrics_port,
            config_file=config_file,
        )
    given = [pid is not None, cgroup is not None, bool(command)]
    if sum(given) != 1:
        raise UserError("give exactly one target: --pid PID, --cgroup PATH or -- CMD...")
    settings = config.load(
        {"tracking_uri": tracking_uri, "tune_interval_ms": interval_ms, "adapt": adapt or None},
        config_file,
    )
    request = TuneRequest(
        model=model,
        pid=pid,
        cgroup=cgroup,
        command=list(command),
        dry_run=dry_run,
        experiment=experiment,
        decisions=decisions,
        devices=list(devices),
        view=not no_view and sys.stdout.isatty(),
        progress_socket=progress_socket,
    )
    status = run_session(request, settings) or 0  # the job's status, 128 + N for signal N
    # Everything is restored, closed and said: leave now. A normal exit would wait for a BPF
    # compile the job's end left behind (seconds; abandoned_opens), and tear down the
    # interpreter (0.3 s), while the person waits for the job's status.
    from autotune.job.session import leave_now

    leave_now(status)

"""`autotune record`: telemetry of a job, one row per interval, into a trace (and its summary)."""

from __future__ import annotations

import re
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from autotune.errors import UserError
from autotune.trace.explore import DEFAULT_HOLD_S

if TYPE_CHECKING:
    from autotune.actuators import DecisionLog
    from autotune.job import JobSession


def _default_output(folder: Path, stem: str) -> Path:
    """``<folder>/<stem>-<YYYYmmdd-HHMMSS>.parquet``, with a suffix if that exists."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "trace"
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        path = folder / f"{name}.parquet"
        try:
            if not path.exists() and not Path(f"{path}.partial").exists():
                return path
        except PermissionError:
            raise UserError(f"cannot write in {folder}: permission denied; choose -o") from None
    raise UserError(f"too many recordings named {base}* in {folder}")


def _short(text: str, width: int = 60) -> str:
    """A target's description on one short line (a `python -c` script spans many)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _summary(path: Path) -> int:
    from rich.console import Console

    from autotune.cli.oneline import warnings_as_lines
    from autotune.trace import load_trace
    from autotune.trace.display import render_summary
    from autotune.trace.summary import summarize

    with warnings_as_lines():
        table, meta = load_trace(path)
    Console().print(render_summary(summarize(table, meta)))
    return 0


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trace file to write (default: <runs_dir>/workloads/<name>-<time>.parquet).",
)
@click.option(
    "--interval", "interval_ms", type=int, help="Control interval in ms, 50 to 5000 (default 250)."
)
@click.option(
    "--create-dirs",
    is_flag=True,
    help="Make the folder of -o FILE when it is missing (the default folder is always made).",
)
@click.option("--duration", type=float, help="Stop after this many seconds.")
@click.option("--pid", type=int, help="Record a running process (and its children).")
@click.option("--cgroup", type=click.Path(path_type=Path), help="Record every process of a cgroup.")
@click.option(
    "--explore",
    is_flag=True,
    help="Perturb the knobs inside the knob table's ladders while recording; restored at the end.",
)
@click.option(
    "--explore-hold",
    type=float,
    default=DEFAULT_HOLD_S,
    show_default=True,
    help="Seconds each explored setting is held.",
)
@click.option(
    "--summary",
    "summary_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Print a summary of a recorded trace and exit.",
)
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
def record(  # noqa: PLR0917 (click passes every option positionally)
    command: tuple[str, ...],
    output: Path | None,
    interval_ms: int | None,
    create_dirs: bool,
    duration: float | None,
    pid: int | None,
    cgroup: Path | None,
    explore: bool,
    explore_hold: float,
    summary_file: Path | None,
    config_file: str | None,
) -> int:
    """Record a job's telemetry, one row per interval, into a trace.

    Give the job as --pid PID, --cgroup PATH, or a command after `--` (`autotune record -- python
    train.py`): then it is launched with the progress channel in its environment, the recording
    ends when it ends, and its exit status is passed through. --duration stops earlier (a launched
    job is then stopped too). While recording, rows go to FILE.partial, synced every few seconds;
    a recording cut short stays loadable there. `--summary FILE` prints a recording's figures.
    """
    from autotune import config

    settings = config.load({"interval_ms": interval_ms}, config_file)
    given = [name for name, v in (("--pid", pid), ("--cgroup", cgroup), ("COMMAND", command)) if v]
    if summary_file is not None:
        if given or output is not None or duration is not None or explore:
            raise click.UsageError("--summary FILE takes no target, -o, --duration or --explore")
        return _summary(summary_file)
    if len(given) != 1:
        raise click.UsageError("give exactly one target: --pid PID, --cgroup PATH or -- COMMAND")
    if duration is not None and not duration > 0:
        raise click.UsageError(f"--duration must be more than 0 seconds, not {duration:g}")
    if not explore_hold > 0:
        raise click.UsageError(f"--explore-hold must be more than 0 seconds, not {explore_hold:g}")
    return _record(
        settings=settings,
        command=list(command),
        output=output,
        create_dirs=create_dirs or output is None,
        duration=duration,
        pid=pid,
        cgroup=cgroup,
        explore_hold=explore_hold if explore else None,
    )


def _record(
    *,
    settings: Any,
    command: list[str],
    output: Path | None,
    create_dirs: bool,
    duration: float | None,
    pid: int | None,
    cgroup: Path | None,
    explore_hold: float | None,
) -> int:
    from rich.console import Console

    from autotune.cli.oneline import warnings_as_lines
    from autotune.job import JobSession
    from autotune.trace import TraceWriter
    from autotune.trace import meta as trace_meta
    from autotune.trace.display import LiveView
    from autotune.trace.query import workloads_dir
    from autotune.trace.recorder import Recording

    interval_s = settings.interval_ms / 1000.0
    # A PID or cgroup is checked first; then the output, before any job is launched.
    job = JobSession(settings, command=command or None, pid=pid, cgroup=cgroup)
    if pid is not None:
        stem = f"pid{pid}"
    elif cgroup is not None:
        stem = cgroup.name or "cgroup"
    else:
        stem = Path(command[0]).name
    path = output or _default_output(workloads_dir(settings.runs_dir), stem)
    err = Console(stderr=True)
    # Flushed from a thread: an fsync under load must not make a row late.
    writer = TraceWriter(path, create_dirs=create_dirs, background=True)
    try:
        # The job is held stopped until its telemetry is attached: recorded from its first
        # instruction.
        with warnings_as_lines(), job:
            collector = job.open_telemetry(interval_s)
            target = job.target
            writer.begin(
                trace_meta.build(
                    target=target.description,
                    command=target.command,
                    interval_s=interval_s,
                    explore=explore_hold is not None,
                    source=collector.source,
                    extra={"explore_hold_s": explore_hold} if explore_hold else None,
                )
            )
            click.echo(
                f"autotune: recording {_short(target.description)} to {path} "
                f"(until it ends: {writer.partial})",
                err=True,
            )
            knobs, log = _knob_source(job, settings=settings, explore_hold=explore_hold)
            # SIGINT is not passed on to the job: from a terminal it has received it already.
            job.stop_on_signals((signal.SIGINT, signal.SIGTERM))
            with LiveView(err, _short(target.description), str(path)) as view:
                job.run()
                ending = Recording(
                    writer=writer,
                    collector=collector,
                    target=target,
                    knobs=knobs,
                    interval_s=interval_s,
                    duration_s=duration,
                    on_row=view.update,
                    stop=job.stopping,
                    rt_priority=settings.record_rt_priority,
                ).run()
            job.restore()  # before the trace closes: its decisions include the restore
            status = job.finish()
            if ending.reason == "duration" and status is not None:
                status = 0  # the job was stopped because --duration asked for it
            extra = {"decisions": [asdict(d) for d in log.decisions]} if log else {}
            writer.close({"ended": ending.reason, "exit_status": status, **extra})
    except BaseException:
        _salvage(writer)
        raise
    return _report(
        ending=ending,
        path=path,
        target=target,
        launched=job.launched,
        status=status,
        duration=duration,
        received=job.signal,
    )


def _knob_source(
    job: JobSession, *, settings: Any, explore_hold: float | None
) -> tuple[Any, DecisionLog | None]:
    """The knob values in effect: read back, or (exploring) driven through the actuators; and
    the decision log of every change when exploring."""
    from autotune.trace.recorder import ReadBack

    if explore_hold is None:
        from autotune.trace.knobs import KnobReader

        return ReadBack(KnobReader(job.target, job.progress, settings.cgroup_parent)), None
    from autotune.actuators import DecisionLog
    from autotune.trace.explore import Explorer

    log = DecisionLog()
    return Explorer(job.open_actuators(log=log), hold_s=explore_hold), log


def _salvage(writer: Any) -> None:
    """After a failure: finish the trace if it had begun, else remove the empty partial."""
    if not writer.partial.exists():
        return
    if writer.rows == 0 and not writer.path.exists():
        writer.discard()
        return
    try:
        writer.close({"ended": "error"})
    except Exception:
        click.echo(f"autotune: the rows recorded so far are in {writer.partial}", err=True)


def _report(
    *,
    ending: Any,
    path: Path,
    target: Any,
    launched: bool,
    status: int | None,
    duration: float | None,
    received: int | None,
) -> int:
    done = f"{ending.rows} rows ({ending.elapsed_s:.1f} s) in {path}"
    if received is not None:
        click.echo(f"autotune: interrupted; recorded {done}", err=True)
        return status if status is not None else 128 + received
    if launched:
        click.echo(f"autotune: recorded {done}", err=True)
        return status or 0
    if ending.reason == "target exited" and duration is not None:
        raise UserError(
            f"{_short(target.description)} exited after {ending.elapsed_s:.1f} s, before "
            f"--duration {duration:g} s; recorded {done}"
        )
    click.echo(f"autotune: recorded {done}", err=True)
    return 0

"""`autotune record`: telemetry of a job, one row per interval, into a trace (and its summary)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from autotune.errors import UserError
from autotune.trace.explore import DEFAULT_HOLD_S

if TYPE_CHECKING:
    from autotune.target import Target

# Seconds a launched job gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 5.0


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


def _stop_job(target: Target) -> None:
    """SIGTERM a job we launched and its descendants; SIGKILL what outlives the grace period."""
    proc = target.process
    if proc is None or proc.poll() is not None:
        return
    tree = [proc.pid, *target.members().loader_pids]
    _signal_all(tree, signal.SIGTERM)
    _signal_all(tree[:1], signal.SIGCONT)  # a job still paused must wake to end
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_all(tree, signal.SIGKILL)
        proc.wait()


def _signal_all(pids: list[int], signum: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signum)


def _short(text: str, width: int = 60) -> str:
    """A target's description on one short line (a `python -c` script spans many)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _exit_status(returncode: int) -> int:
    """A job's status as a shell reports it (killed by signal N → 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


@contextlib.contextmanager
def _signals_stop(stop: threading.Event, target: Target) -> Iterator[list[int]]:
    """SIGINT and SIGTERM end the recording cleanly; SIGTERM is passed on to a launched job.

    SIGINT is not passed on: from a terminal the job has received it already.
    """
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        job = target.process
        if signum == signal.SIGTERM and job is not None and job.poll() is None:
            _signal_all([job.pid, *target.members().loader_pids], signal.SIGTERM)

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


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
    from autotune.target import Target
    from autotune.telemetry.collector import open_collector
    from autotune.telemetry.progress import ProgressServer
    from autotune.trace import TraceWriter
    from autotune.trace import meta as trace_meta
    from autotune.trace.display import LiveView
    from autotune.trace.query import workloads_dir
    from autotune.trace.recorder import Recording

    interval_s = settings.interval_ms / 1000.0
    # A PID or cgroup is checked first; then the output, before any job is launched.
    target: Target | None = None
    if pid is not None:
        target = Target.from_pid(pid)
        stem = f"pid{pid}"
    elif cgroup is not None:
        target = Target.from_cgroup(cgroup)
        stem = cgroup.name or "cgroup"
    else:
        stem = Path(command[0]).name
    path = output or _default_output(workloads_dir(settings.runs_dir), stem)
    err = Console(stderr=True)
    writer = TraceWriter(path, create_dirs=create_dirs)
    try:
        with warnings_as_lines(), ProgressServer() as progress:
            if target is None:
                # Paused until the telemetry is attached: recorded from its first instruction.
                target = Target.launch(command, env=progress.env, paused=True)
            job = target.process
            try:
                collector = open_collector(
                    target, progress=progress, interval_s=interval_s, prefer_bpf=True
                )
            except BaseException:
                _stop_job(target)
                raise
            extra: dict[str, Any] = {}
            try:
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
                stop = threading.Event()
                with contextlib.ExitStack() as stack:
                    knobs = _knob_source(
                        stack,
                        target=target,
                        settings=settings,
                        progress=progress,
                        explore_hold=explore_hold,
                        extra=extra,
                    )
                    # After the actuators: their signal handlers come back when this one ends.
                    received = stack.enter_context(_signals_stop(stop, target))
                    view = stack.enter_context(LiveView(err, _short(target.description), str(path)))
                    target.resume()
                    ending = Recording(
                        writer=writer,
                        collector=collector,
                        target=target,
                        knobs=knobs,
                        interval_s=interval_s,
                        duration_s=duration,
                        on_row=view.update,
                        stop=stop,
                    ).run()
            finally:
                collector.close()
            status = _finish_job(target, ending.reason)
            writer.close({"ended": ending.reason, "exit_status": status, **extra})
    except BaseException:
        _salvage(writer)
        raise
    return _report(
        ending=ending,
        path=path,
        target=target,
        launched=job is not None,
        status=status,
        duration=duration,
        received=received,
    )


def _knob_source(
    stack: contextlib.ExitStack[bool | None],
    *,
    target: Any,
    settings: Any,
    progress: Any,
    explore_hold: float | None,
    extra: dict[str, Any],
) -> Any:
    """The knob values in effect: read back, or (exploring) driven through the actuators.

    When exploring, ``extra`` gains the decision log (every change, restore included) once the
    actuators have closed.
    """
    from autotune.trace.recorder import ReadBack

    if explore_hold is None:
        from autotune.trace.knobs import KnobReader

        return ReadBack(KnobReader(target, progress, settings.cgroup_parent))
    from dataclasses import asdict

    from autotune.actuators import Actuators, DecisionLog
    from autotune.trace.explore import Explorer

    log = DecisionLog()

    def keep_decisions() -> None:
        extra["decisions"] = [asdict(d) for d in log.decisions]

    stack.callback(keep_decisions)  # runs after the actuators have restored (LIFO)
    act = stack.enter_context(Actuators(target, settings, log=log, progress=progress))
    return Explorer(act, hold_s=explore_hold)


def _finish_job(target: Target, reason: str) -> int | None:
    """The launched job's exit status (stopped first when --duration ended the recording)."""
    job = target.process
    if job is None:
        return None
    if reason == "duration":
        _stop_job(target)
        return 0
    with contextlib.suppress(subprocess.TimeoutExpired):
        job.wait(STOP_GRACE_S)
    return None if job.returncode is None else _exit_status(job.returncode)


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
    received: list[int],
) -> int:
    done = f"{ending.rows} rows ({ending.elapsed_s:.1f} s) in {path}"
    if received:
        click.echo(f"autotune: interrupted; recorded {done}", err=True)
        return status if status is not None else 128 + received[0]
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

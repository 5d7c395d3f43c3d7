"""Entry point of the `autotune` command.

Subcommands live in their own modules and are imported only when called, so `autotune --help`
does not pay for torch or MLflow. Every person's mistake ends here as one line on stderr and exit
status 2: click's usage errors, :class:`~autotune.errors.UserError`, and bad settings.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from autotune.errors import UserError

# name → (module:attribute, one-line help shown by `autotune --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("autotune.cli.train:train", "Train an agent offline on recorded workloads."),
    "sweep": ("autotune.cli.sweep:sweep", "Train many agents on Ray Tune; register the best."),
    "calibrate": (
        "autotune.cli.calibrate:calibrate",
        "Fit the replay model of recorded workloads.",
    ),
    "eval": ("autotune.cli.eval:evaluate", "Evaluate policies and baselines on held-out traces."),
    "tune": ("autotune.cli.tune:tune", "Tune a running training job with a trained policy."),
    "compare": (
        "autotune.cli.compare:compare",
        "Compare training runs, evaluations and tuning sessions (table, CSV, JSON, HTML).",
    ),
    "server": (
        "autotune.cli.server:server",
        "Run an MLflow tracking server that several nodes log to.",
    ),
    "sync": (
        "autotune.cli.sync:sync",
        "Upload runs kept locally while the tracking server was down.",
    ),
    "doctor": (
        "autotune.cli.doctor:doctor",
        "What this node supports and what the tuner will use.",
    ),
    "status": (
        "autotune.cli.status:status",
        "What the running service tunes now (jobs, knobs, decisions, guard).",
    ),
    "restore": ("autotune.cli.restore:restore", "Put back every knob a crashed run left changed."),
    "scx": ("autotune.cli.scx:scx_group", "Our sched_ext scheduler: status, load, unload."),
    "record": (
        "autotune.cli.record:record",
        "Record a job's telemetry into a trace (or --summary FILE).",
    ),
    "query": (
        "autotune.cli.query:query",
        "Run SQL (DuckDB) over recorded traces, as table `trace`.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attr = entry[0].partition(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="autotune", prog_name="autotune")
def cli() -> None:
    """Tune scheduler weights, CPU affinity and prefetch depth for AI training jobs.

    eBPF telemetry is the observation, the job's progress the reward; agents are trained offline
    on recorded workloads and run online beside the job, guarded, and every run is tracked in
    MLflow. Start with `autotune doctor`.
    """


def fail(message: str, code: int = 2) -> None:
    """Print ``autotune: <message>`` on stderr and exit with ``code``."""
    click.echo(f"autotune: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; map people's mistakes to one line and exit status 2."""
    try:
        return _main(argv)
    except SystemExit as e:
        _leave_now_if_compiling(e.code)
        raise
    except BaseException:  # a defect's traceback, then the same exit as Python's
        if _compiling():
            import traceback

            traceback.print_exc()
            _leave_now_if_compiling(1)
        raise


def _compiling() -> bool:
    session = sys.modules.get("autotune.job.session")  # not imported: no compile was started
    return session is not None and bool(session.abandoned_opens())


def _leave_now_if_compiling(code: Any) -> None:
    """Exit at once, with ``code``, when a BPF compile this process stopped waiting for still
    runs in a thread (a signal or error ended `autotune tune` while its telemetry compiled).

    The interpreter's normal exit would run the compiler's global destructors under that
    compile: a segfault, not the status the session chose (:func:`autotune.job.session.leave_now`).
    """
    if not _compiling():
        return
    from autotune.job.session import leave_now  # already imported: _compiling found it

    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    leave_now(code or 0)


def _main(argv: list[str] | None) -> Any:
    try:
        rv = cli.main(args=argv, prog_name="autotune", standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else str(e))
        sys.exit(0)
    except click.UsageError as e:
        hint = f" (see 'autotune {e.ctx.info_name} --help')" if e.ctx and e.ctx.parent else ""
        fail(f"{e.format_message()}{hint}")
    except click.ClickException as e:
        fail(e.format_message(), e.exit_code)
    except click.exceptions.Abort:
        fail("interrupted", 130)
    except UserError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(0)
    return None


if __name__ == "__main__":
    main()

"""A tuning session from a request: load the policy, start or find the job, open telemetry and
actuators, run the loop, track it, restore everything, pass the job's exit status through.

Nothing on the node is touched before the policy has loaded and the target has been checked: a
missing, corrupt or foreign model ends the command with exit status 2 and the knobs as they were.

A job the session starts runs at once, at the default knobs, while the tuner compiles and
attaches its BPF programs in a thread (a second or more) and then takes the knobs: the guard's
warm-up runs at the default knobs anyway, and starts once the telemetry is up. Beside a busy
node (other tasks took ``guard_min_contention`` of the CPU time the job and the tuner left them
in the job's first 0.1 s, from ``/proc``) the job's weights go up to ``guard_start_weight`` at
once instead, and the warm-up at default knobs is owed
(:meth:`~autotune.daemon.guard.Guard.start_at`). A job that ends before that leaves the compile
behind (`autotune tune` exits without waiting for it). The MLflow client is loaded by the upload
process, at ``SCHED_IDLE``, never on the job's path. When the job ends, the loop wakes at once,
the telemetry starts detaching, the knobs are restored, and the session does not wait for the
last upload (:data:`UPLOAD_WAIT_S`): the upload process finishes it after the command has exited
(what does not go up stays in the spool for `autotune sync`).
"""

from __future__ import annotations

import contextlib
import math
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from autotune.config import Settings
from autotune.daemon.guard import GuardConfig
from autotune.tracking.schema import DEFAULT_EXPERIMENT

# The most the session's end waits for the upload process's last upload: none. It goes on in
# the background (its own session) after the command exits; the upload process notices the
# run's end within a second and loads the MLflow client first if it has not yet, so a short
# wait (0.3 s, once) almost never saw it finish and only delayed the command's exit.
UPLOAD_WAIT_S = 0.0
# A session that has tuned this long collapses the tuner's heap into huge pages (see
# autotune.system.hugepages): 0.6 s of CPU once, which the 10-25 % it saves of the tuner's ~2 %
# of a core earns back after two to five minutes. At the start (where it was) every short job
# paid it, beside the job's own start-up.
HUGEPAGES_AFTER_S = 120.0
T = TypeVar("T")


@dataclass
class TuneRequest:
    """What `autotune tune` (or :func:`autotune.tuning`) was asked to do."""

    model: str
    pid: int | None = None
    cgroup: str | None = None
    command: list[str] = field(default_factory=list)
    dry_run: bool = False
    experiment: str = DEFAULT_EXPERIMENT
    decisions: Path | None = None
    devices: list[str] = field(default_factory=list)
    view: bool = False
    progress_socket: Path | None = None
    guard: GuardConfig | None = None


def run_session(req: TuneRequest, settings: Settings) -> int | None:
    """Run one tuning session; returns the launched job's exit status as a shell reports it
    (128 + N for signal N; None for --pid/--cgroup).

    Raises:
        UserError: a bad model, target or setting (before anything is changed).
    """
    # What the job's start needs, only: the rest (the actuators, the loop, tracking) is
    # imported once it runs, off its path.
    from autotune import policy as runtime
    from autotune.job import JobSession
    from autotune.tracking import schema as ts
    from autotune.tracking.models import resolve_model_info

    resolved = resolve_model_info(req.model, settings.tracking_uri, settings.runs_dir)
    folder = resolved.path
    pol = runtime.load(folder)
    interval_s = settings.tune_interval_ms / 1000.0
    model_run = pol.meta.get("train_run_id") or (req.model if not Path(req.model).exists() else "")
    work = Path(tempfile.mkdtemp(prefix="autotune-tune-"))
    decisions = req.decisions or work / ts.DECISIONS_ARTIFACT
    with contextlib.ExitStack() as stack:
        stack.callback(_rmtree, work)
        # A command runs at once, at the default knobs; the tuner joins once telemetry is up.
        job = stack.enter_context(
            JobSession(
                settings,
                command=req.command or None,
                pid=req.pid,
                cgroup=req.cgroup,
                progress_socket=req.progress_socket,
            )
        )
        target = job.target
        # SIGTERM and SIGHUP end the session the orderly way from now on: the loop stops, the
        # knobs are restored, the summary logged and a job we started stopped (the actuators'
        # own handlers stay as the backstop, and SIGINT raises KeyboardInterrupt through them).
        job.stop_on_signals((signal.SIGTERM, signal.SIGHUP))
        busy = None
        if job.launched:
            job.run(before_telemetry=True)  # its first instruction, at the default knobs
            if settings.guard_start_weight > 1 and not req.dry_run:
                from autotune.system.busy import OthersBusy

                busy = OthersBusy(lambda: job.target.members().all_pids)
        from autotune.features.progress import StartupProxy
        from autotune.system.priority import renice_thread

        # The job (already forked) keeps its nice value; this thread and those it starts from
        # now on (the compile's, the job's watcher) take the tuner's.
        if settings.tune_nice:
            renice_thread(settings.tune_nice)
        # The warm-up's first rates, from /proc while the telemetry compiles.
        startup = StartupProxy(target.roots, interval_s) if settings.guard_warmup_proc else None
        from autotune.actuators import DecisionLog
        from autotune.daemon.adapt import AdaptConfig
        from autotune.daemon.loop import TuneLoop, write_summary
        from autotune.knobs import KNOBS
        from autotune.tracking.run import tracked_run

        tags: dict[str, Any] = {
            ts.TAG_TARGET_COMMAND: " ".join(target.command or []) or target.description,
            ts.TAG_MODEL_RUN_ID: model_run,
            ts.TAG_ALGO: pol.algo,
            **resolved.tags,  # models:/NAME@ALIAS: the registered version this session runs
        }
        params = {
            "interval_ms": settings.tune_interval_ms,
            "dry_run": req.dry_run,
            "model": req.model,
            "adapt": settings.adapt,
        }
        log = DecisionLog(decisions, keep=False)  # the file holds them; a tune may last days

        def open_actuators() -> Any:
            opened = job.open_actuators(dry_run=req.dry_run, log=log, devices=req.devices or None)
            # The actuators took SIGTERM and SIGHUP (an exception mid-statement); the session's
            # orderly stop takes them back. Opened beside a busy node, before the telemetry, they
            # would otherwise end a compile's wait with SystemExit, and the interpreter's exit
            # would tear down the compiler under the abandoned compile (a segfault, 1 in 20).
            job.stop_on_signals((signal.SIGTERM, signal.SIGHUP))
            return opened

        # Beside a busy node, the job's weights go up now, not once the telemetry is up (their
        # decisions kept for the live view, which opens once the telemetry is).
        started: list[Any] = []
        log.add_listener(started.append)
        try:
            act, start = _start_weights(job, busy, settings, open_actuators)
        finally:
            log.remove_listener(started.append)
        run = stack.enter_context(
            tracked_run(
                ts.TUNE,
                name=f"tune-{pol.algo}-{target.pid}",
                tags=tags,
                params=params,
                tracking_uri=settings.tracking_uri,
                experiment=req.experiment,
                runs_dir=settings.runs_dir,
                uploader="process",  # keeps the MLflow client (~85 MB) out of the tuner
                end_timeout_s=UPLOAD_WAIT_S,
                live_upload_s=settings.tracking_live_upload_s,
            )
        )
        collector = job.open_telemetry_unless_ended(interval_s, startup.poll if startup else None)
        if collector is not None and act is None:
            act = _unless_ended(job, open_actuators)
        if collector is None or act is None:  # the job ended (or a signal came) first
            job.restore()  # the start's weights, if set: logged before the log closes
            log.close()
            why = STOPPED_EARLY if job.stopping.is_set() else ENDED_EARLY
            run.set_tags({"autotune.ended_by": why})
            exit_code = job.finish()
            _say_early(req.dry_run, why)
            return exit_code
        view = None
        if req.view:
            from autotune.daemon.view import LiveView

            view = stack.enter_context(
                LiveView(f"autotune tune · {pol.algo} · {target.description}")
            )
            for d in started:
                view.decision(d)
            log.add_listener(view.decision)
        step = {"n": 0}

        def on_tick(t: Any) -> None:
            step["n"] += 1
            metrics = {
                ts.M_PROGRESS_RATE: t.rate,
                ts.M_LOOP_CPU: t.cpu_percent,
                "loop_ms": t.loop_ms,
            }
            metrics.update(
                {ts.knob_metric(k.name): t.knobs[k.name] for k in KNOBS if k.name in t.knobs}
            )
            metrics.update(t.adapt_metrics)  # the online adapter's, when on
            run.log_metrics(metrics, step=step["n"])
            if view is not None:
                view.tick(t)

        guard = req.guard or GuardConfig.for_interval(interval_s, settings)
        adapt = AdaptConfig.for_interval(interval_s, guard, settings) if settings.adapt else None
        loop = TuneLoop(
            pol,
            collector,
            act,
            interval_s,
            guard=guard,
            on_tick=on_tick,
            adapt=adapt,
            hugepages_after_s=HUGEPAGES_AFTER_S,
            warmup_rates=startup.rates if startup else None,
            start=start,
        )
        job.on_stop(loop.stop)
        if job.stopping.is_set():  # a signal while the telemetry was opened
            loop.stop()
        job.on_exit(loop.wake)  # the job's end ends the loop's wait at once
        if req.progress_socket is not None:  # autotune.tuning() waits for this
            ready = req.progress_socket.with_name(req.progress_socket.name + ".ready")
            ready.touch()
            stack.callback(ready.unlink, missing_ok=True)
        summary = loop.run()
        collector.close_in_background()  # its detach goes on while the rest ends
        job.restore()  # now, so that the summary and decisions include the restore
        ratio, ci = summary.progress_vs_warmup, summary.progress_vs_warmup_ci95
        vs_warmup = {
            ts.M_PROGRESS_VS_WARMUP: ratio,
            # The same figure under the name `autotune compare` ranks sessions by beside
            # training runs (schema.py says what it is).
            ts.M_PROGRESS_VS_DEFAULT: ratio,
            f"{ts.M_PROGRESS_VS_WARMUP}_ci95_low": ci[0] if ci else None,
            f"{ts.M_PROGRESS_VS_WARMUP}_ci95_high": ci[1] if ci else None,
        }
        run.log_metrics(
            {
                # Only what was measured, and bounded: no warm-up, no figure.
                **{k: v for k, v in vs_warmup.items() if v is not None and math.isfinite(v)},
                "reference_rate": summary.reference_rate,
                "mean_rate": summary.mean_rate,
                "rollbacks": float(summary.rollbacks),
                "fallbacks": float(summary.fallbacks),
                "loop_cpu_percent_mean": summary.loop_cpu_percent,
                "loop_ms_p99": summary.loop_ms_p99,
                "rss_mb": summary.rss_mb,
            }
        )
        run.set_tags({"autotune.ended_by": summary.ended_by})
        log.close()
        if decisions.exists():
            run.log_artifact(decisions)
        run.log_artifact(write_summary(summary, work / "summary.json"))
        exit_code = job.finish()
        _say(summary, req.dry_run)
    return exit_code


def _start_weights(
    job: Any, busy: Any, settings: Settings, open_actuators: Callable[[], Any]
) -> tuple[Any, dict[str, float]]:
    """The job's roles at ``guard_start_weight`` from now, when other tasks took
    ``guard_min_contention`` of the CPU time it and the tuner left them since it started
    (``busy``, an :class:`~autotune.system.busy.OthersBusy`; None: not asked). Returns the
    actuators (opened for it; None when not) and the weights set, for the guard to begin from.

    Without it, a job started beside a CPU-bound neighbour spent its start-up (importing torch,
    forking its loaders) at the default weight while the telemetry compiled: 2-3 s at a third
    or less of the CPU it gets once tuned.
    """
    share = busy.share() if busy is not None else None
    if share is None or share < settings.guard_min_contention:
        return None, {}
    act = _unless_ended(job, open_actuators)
    if act is None:
        return None, {}
    w = settings.guard_start_weight
    why = (
        f"start: other tasks took {share:.0%} of the CPU time left them as the job started; its "
        f"weights at {w:g}x until the policy's first change (the warm-up at default knobs is owed)"
    )
    names = [n for n in ("weight.trainer", "weight.loader") if n not in act.disabled]
    act.apply(dict.fromkeys(names, w), why)
    return act, {n: w for n in names if n not in act.disabled}


ENDED_EARLY = "job ended before its telemetry was up"
STOPPED_EARLY = "session was stopped before its telemetry was up"


def _unless_ended(job: Any, opener: Callable[[], T]) -> T | None:
    """``opener()`` (the job's telemetry, its actuators), or None when a job the session started
    has ended before it (or while it ran: a UserError for a target that is not running)."""
    from autotune.errors import UserError

    if job.launched and not job.alive():
        return None
    try:
        return opener()
    except UserError:
        if job.launched and not job.alive():
            return None
        raise


def _say_early(dry_run: bool, why: str) -> None:
    import sys

    mode = " (dry run: nothing was written)" if dry_run else ""
    sys.stderr.write(f"autotune: tuned 0 intervals{mode}: the {why}; nothing changed\n")


def _say(summary: Any, dry_run: bool) -> None:
    import sys

    mode = " (dry run: nothing was written)" if dry_run else ""
    ratio, ci = summary.progress_vs_warmup, summary.progress_vs_warmup_ci95
    if ratio is None or ci is None:
        vs = "no warm-up at default knobs to compare progress with (the job ended first)"
    else:
        bound = "no upper bound" if math.isinf(ci[1]) else f"{ci[1]:.2f}"
        vs = f"progress {ratio:.2f}× its own warm-up at default knobs (95 % {ci[0]:.2f}–{bound})"
    sys.stderr.write(
        f"autotune: tuned {summary.intervals} intervals{mode}: {vs}, "
        f"{summary.changes} changes, "
        f"{summary.rollbacks} rolled back, {summary.fallbacks} fallbacks; "
        f"tuner {summary.loop_cpu_percent:.1f}% CPU, {summary.rss_mb:.0f} MB; {summary.ended_by}\n"
    )


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)

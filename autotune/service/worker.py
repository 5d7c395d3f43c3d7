"""One job under the service: its own session, telemetry, actuators, guard and tuning loop.

A worker runs :class:`~autotune.daemon.loop.TuneLoop` on one :class:`~autotune.job.JobSession`
attached to the job's root process until the job ends or the service asks it to stop; leaving the
session restores the job's knobs whatever ended it. The worker's own thread attaches and restores;
the loop's intervals run in the service's :class:`~autotune.service.ticker.Ticker`, in the
service's own wake (or in the worker's thread, without one). It keeps its
:class:`~autotune.service.state.JobState` up to date for the service's state file and metrics.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.actuators.decisions import SET, Decision
from autotune.errors import UserError
from autotune.service.state import (
    AT_DEFAULT,
    FALLEN_BACK,
    HELD_OFF,
    RECENT,
    TRYING,
    TUNED,
    WARMING_UP,
    DecisionState,
    JobState,
)

if TYPE_CHECKING:
    from autotune.config import Settings
    from autotune.daemon.guard import Guard, GuardConfig, Verdict
    from autotune.daemon.loop import Tick, TuneLoop
    from autotune.policy import Policy
    from autotune.service.ticker import Ticker

log = logging.getLogger("autotune.service")
# Jobs are attached one at a time: each compiles and loads its BPF programs (bcc's compiler is
# not known to be safe from two threads at once), and it spreads the start-up's CPU.
_ATTACH = threading.Lock()
# How often a job's loop lists the job and reads its knobs back when no process came or went (a
# process that does is followed at the next pass whatever this says; TuneLoop's docstring). Four
# times `autotune tune`'s second: the follow-up was a third of a job's interval on the service's
# CPU, and a job under a node service runs for hours. What waits for it: a knob set behind our
# back, read-ahead on a disk the job first opens mid-run, each seen up to 4 s later.
FOLLOW_S = 4.0


def guard_state(guard: Guard, verdict: Verdict) -> str:
    """What the guard is doing with the job, in the words of `autotune status`."""
    if guard.warming_up or verdict.event in ("warmup", "restart"):
        return WARMING_UP
    if verdict.event == "fallback" or guard.t < guard.fallback_until:
        return FALLEN_BACK
    if guard.canary is not None:
        return TRYING
    if (guard.levels != guard.defaults).any():
        return TUNED
    if verdict.event == "rollback" or any(until > guard.t for until in guard.held.values()):
        return HELD_OFF
    return AT_DEFAULT


class JobWorker:
    """Tunes one job in a thread (see the module docstring).

    Args:
        pid: the job's root process.
        start: its start time (a PID reused before the worker attaches is not the job).
        command: what the job runs (for people).
        settings: journal and cgroup parent for the actuators.
        policy: the deployed policy (shared: deciding only reads it).
        interval_s: the control interval.
        guard: the guard's windows.
        decisions: JSONL file the job's decisions are appended to.
        dry_run: decide and log, write nothing.
        devices: block devices for read-ahead (default: found from the job's files).
        on_decision: called with each decision (the service's console line and totals).
        ticker: steps the loop's intervals (in the service's wake, with every other job's);
            None: the worker's own thread runs them.
    """

    def __init__(
        self,
        pid: int,
        start: int,
        command: str,
        *,
        settings: Settings,
        policy: Policy,
        interval_s: float,
        guard: GuardConfig,
        decisions: Path,
        dry_run: bool = False,
        devices: list[str] | None = None,
        on_decision: Callable[[JobWorker, Decision], None] | None = None,
        ticker: Ticker | None = None,
    ) -> None:
        self.pid = pid
        self.start = start
        self.settings = settings
        self.policy = policy
        self.interval_s = interval_s
        self.guard_config = guard
        self.decisions = decisions
        self.dry_run = dry_run
        self.devices = devices
        self.on_decision = on_decision
        self.ticker = ticker
        self.state = JobState(pid=pid, start=start, command=command)
        self.lock = threading.Lock()
        self.error = ""  # one line: why the worker ended other than by the job's end or a stop
        self.ended_by = ""
        self._stop = threading.Event()
        self._loop: TuneLoop | None = None
        self.thread = threading.Thread(target=self._run, name=f"autotune-job-{pid}")

    def begin(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Ask the job's loop to end after its current interval (its knobs are then restored)."""
        self._stop.set()
        loop = self._loop
        if loop is not None:
            loop.stop()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def snapshot(self) -> JobState:
        with self.lock:
            # Shallow: this worker replaces a field's value (a new knobs dict, a new recent
            # list), never changes one in place, so the copy cannot change under its reader; a
            # deep copy of every job every interval was half of the service's own thread's CPU.
            return self.state.model_copy()

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._tune()
        except UserError as e:
            self.error = str(e)
        except Exception as e:
            log.debug("job %d failed", self.pid, exc_info=True)
            self.error = f"{type(e).__name__}: {e}"

    def _tune(self) -> None:
        from autotune.actuators import DecisionLog
        from autotune.daemon.loop import TuneLoop
        from autotune.job import JobSession
        from autotune.target import start_time

        with _ATTACH:
            if self._stop.is_set():
                return
            if start_time(self.pid) != self.start:
                raise UserError("its process ended before it could be attached")
            job = JobSession(self.settings, pid=self.pid).start()
            try:
                collector = job.open_telemetry(self.interval_s)
                with self.lock:
                    self.state.telemetry = collector.source
                decisions = DecisionLog(
                    self.decisions, console=False, keep=False, tags={"pid": self.pid}
                )
                decisions.add_listener(self._decided)
                act = job.open_actuators(dry_run=self.dry_run, log=decisions, devices=self.devices)
            except BaseException:
                job.close()  # restores whatever was opened
                raise
        with job:  # already started: leaving restores, detaches, closes
            loop = TuneLoop(
                self.policy,
                collector,
                act,
                self.interval_s,
                guard=self.guard_config,
                on_tick=self._tick,
                follow_s=FOLLOW_S,
            )
            self._loop = loop
            if self._stop.is_set():
                loop.stop()
            if self.ticker is None:
                summary = loop.run()
            else:
                entry = self.ticker.add(loop)
                entry.done.wait()
                if entry.error is not None:
                    raise entry.error
                summary = loop.end(entry.ended)
            self.ended_by = summary.ended_by
            job.restore()

    def _decided(self, d: Decision) -> None:
        entry = DecisionState.of(self.pid, d)
        with self.lock:
            self.state.decisions += d.event == SET
            self.state.recent = [*self.state.recent, entry][-RECENT:]
        if self.on_decision is not None:
            self.on_decision(self, d)

    def _tick(self, t: Tick) -> None:
        loop = self._loop
        if loop is None:
            return
        with self.lock:
            s = self.state
            s.intervals += 1
            s.rate = t.rate
            s.reference_rate = t.reference
            s.knobs = dict(t.knobs)
            s.guard = guard_state(loop.guard, t.verdict)
            s.rollbacks += t.verdict.event == "rollback"
            s.fallbacks += t.verdict.event == "fallback" and bool(t.verdict.reasons)


def say(line: str) -> None:
    """One line for the operator (the service's stderr: systemd's journal)."""
    sys.stderr.write(f"autotune: {line}\n")
    sys.stderr.flush()

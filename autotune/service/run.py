"""The service's main loop: find the slice's jobs, give each a worker, publish the state.

Each interval the service lists the processes under the slice, starts a
:class:`~autotune.service.worker.JobWorker` for each new process tree, forgets the workers whose
job has left (their knobs already restored), runs one interval of every job's tuning loop
(:mod:`autotune.service.ticker`: all jobs in this one wake), and rewrites the state file.
SIGTERM, SIGINT and SIGHUP stop every worker (each restores its job's knobs) and end the service
with status 0; the slice disappearing does the same and ends it with one line and status 2.

Before it tunes anything the service replays what a previous tuner left in the journal (one
killed with ``kill -9``, say), so that every job starts from the node's own settings.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from autotune.errors import NotPermitted, UserError
from autotune.service import lock, slices
from autotune.service import state as st
from autotune.service.ticker import Ticker
from autotune.service.worker import JobWorker, say
from autotune.target import start_time, zombie

if TYPE_CHECKING:
    from autotune.actuators.decisions import Decision
    from autotune.config import Settings
    from autotune.daemon.guard import GuardConfig
    from autotune.policy import Policy

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The state file is rewritten about once a second (every interval when it is longer), and at once
# when a job comes or goes: `autotune status` is a person's view, and the metrics endpoint reads
# the state live. The slice's process trees are worked out again when its processes change, and
# every DISCOVER_S whatever (a process can become a root without any process in the slice coming
# or going: its parent outside the slice ended).
STATE_S = 1.0
DISCOVER_S = 4.0
# How long a worker gets to finish its interval and restore once the service stops.
JOIN_S = 30.0


@dataclass
class ServiceRequest:
    """What `autotune tune --follow` was asked to do."""

    model: str
    cgroup: str
    dry_run: bool = False
    devices: list[str] = field(default_factory=list)
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    guard: GuardConfig | None = None


def run_service(req: ServiceRequest, settings: Settings) -> int:
    """Run the service until a signal (0) or the slice's disappearance (UserError, status 2).

    Raises:
        UserError: a bad model or cgroup, a second service on the slice, the metrics port taken
            (each before anything is changed), or the slice gone while tuned.
    """
    from autotune import policy as runtime
    from autotune.daemon.guard import GuardConfig
    from autotune.tracking.models import resolve_model

    path = slices.resolve(req.cgroup)
    pol = runtime.load(resolve_model(req.model, settings.tracking_uri, settings.runs_dir))
    key = slices.key(path)
    interval_s = settings.tune_interval_ms / 1000.0
    guard = req.guard or GuardConfig.for_interval(interval_s, settings)
    with contextlib.ExitStack() as stack:
        stack.enter_context(lock.hold(settings.state_dir / f"service-{key}.lock", str(path)))
        svc = Service(req, settings, pol, path, guard)
        if req.metrics_port is not None:
            from autotune.service.metrics import serve

            stack.callback(serve(req.metrics_port, req.metrics_addr, svc.snapshot))
        _restore_leftovers(settings)
        for sig in STOP_SIGNALS:
            stack.callback(signal.signal, sig, signal.signal(sig, svc.on_signal))
        return svc.run()
    return 0  # pragma: no cover - the block returns or raises


def _restore_leftovers(settings: Settings) -> None:
    """Replay the journal's sessions whose tuner is gone (a service killed with -9, say)."""
    from autotune.actuators.decisions import DecisionLog
    from autotune.actuators.restore import restore_journal

    if not settings.journal.exists():
        return
    with DecisionLog(console=False) as log:
        report = restore_journal(settings.journal, log)
    if report.restored:
        say(
            f"restored {len(report.restored)} session(s) a previous tuner left in "
            f"{settings.journal} before tuning anew"
        )
    if report.incomplete:
        raise UserError(
            f"could not restore session(s) {', '.join(report.incomplete)} left in "
            f"{settings.journal}; run `autotune restore` and read its lines, then start again"
        )


class Service:
    """Tunes every job under one slice (see the module docstring)."""

    def __init__(
        self,
        req: ServiceRequest,
        settings: Settings,
        policy: Policy,
        path: Path,
        guard: GuardConfig,
    ) -> None:
        self.req = req
        self.settings = settings
        self.policy = policy
        self.path = path
        self.guard = guard
        self.interval_s = settings.tune_interval_ms / 1000.0
        key = slices.key(path)
        self.state_path = st.path_for(settings.state_dir, key)
        self.decisions = settings.state_dir / f"decisions-{key}.jsonl"
        me = os.getpid()
        self.state = st.ServiceState(
            pid=me,
            start=start_time(me) or 0,
            cgroup=str(path),
            model=req.model,
            interval_ms=settings.tune_interval_ms,
            dry_run=req.dry_run,
            metrics_port=req.metrics_port,
        )
        self.workers: dict[int, JobWorker] = {}
        # Jobs whose worker ended while they still run (telemetry stopped, an error): left alone
        # until they end, rather than attached again every interval.
        self.left_alone: dict[int, int] = {}
        self._done = st.Totals()  # counts of the jobs that have left
        self._lock = threading.Lock()
        self._stopping = False
        # A stop signal ends the wait between two intervals at once: its handler writes here
        # (polling a flag instead woke the service ten times a second). Open while run() runs.
        self._wake_r = self._wake_w = -1
        self._cpu = (time.monotonic(), time.process_time())
        self._ticker = Ticker()  # every job's intervals, stepped in this loop
        self._state_every = max(1, round(STATE_S / self.interval_s))
        self._discover_every = max(1, round(DISCOVER_S / self.interval_s))
        self._ticks = 0
        self._last_scan: tuple[frozenset[int], frozenset[int]] | None = None
        self._last_discover = 0

    # --- signals ----------------------------------------------------------------------------

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            say(f"{signal.Signals(signum).name}: restoring every job's knobs and stopping")
        self._stopping = True
        with contextlib.suppress(OSError):  # full: a wake is pending already; -1: not running
            os.write(self._wake_w, b"x")
        for w in list(self.workers.values()):
            w.stop()

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        say(
            f"tuning every job under {self.path} with {self.policy.algo} every "
            f"{self.settings.tune_interval_ms} ms; state in {self.state_path}"
        )
        gone = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            while not self._stopping:
                inside = slices.pids(self.path)
                if inside is None:
                    gone = True
                    break
                changed = self._reap()
                changed |= self._discover(inside)
                self._ticker.step_all()
                if changed or self._ticks % self._state_every == 0:
                    self._publish()
                self._ticks += 1
                self._sleep(self.interval_s)
        finally:
            self._stop_all()
            with contextlib.suppress(OSError):
                self.state_path.unlink()
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1  # before the close: a late signal writes nowhere
            for fd in fds:
                os.close(fd)
        if gone:
            raise UserError(
                f"the cgroup {self.path} disappeared while tuned; every job's knobs were "
                "restored and the service stopped"
            )
        say("stopped; every job's knobs were restored")
        return 0

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping and (left := end - time.monotonic()) > 0:
            if select.select([self._wake_r], [], [], left)[0]:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 64)

    def _discover(self, inside: set[int]) -> bool:
        """Start a worker for each new job; True when one was started."""
        self.left_alone = {
            p: t for p, t in self.left_alone.items() if start_time(p) == t and not zombie(p)
        }
        tuned = {w.pid for w in self.workers.values()} | set(self.left_alone)
        scan = (frozenset(inside), frozenset(tuned))
        if scan == self._last_scan and self._ticks - self._last_discover < self._discover_every:
            return False  # nothing came or went: the same trees as at the last pass
        self._last_scan, self._last_discover = scan, self._ticks
        started = False
        for pid, start in slices.new_jobs(inside, tuned, {os.getpid()}):
            started = True
            cmd = (_cmdline(pid) or f"pid {pid}")[:200]
            worker = JobWorker(
                pid,
                start,
                cmd,
                settings=self.settings,
                policy=self.policy,
                interval_s=self.interval_s,
                guard=self.guard,
                decisions=self.decisions,
                dry_run=self.req.dry_run,
                devices=self.req.devices or None,
                on_decision=self._decided,
                ticker=self._ticker,
            )
            with self._lock:
                self.workers[pid] = worker
                self.state.totals.jobs_seen += 1
            say(f"job {pid} ({cmd}): warming up")
            worker.begin()
            self._last_scan = None  # its tree is tuned now: look again at the next pass
        return started

    def _reap(self) -> bool:
        """Forget the workers that ended; True when one did."""
        reaped = False
        for pid, w in list(self.workers.items()):
            if not w.done():
                continue
            reaped = True
            j = w.state
            with self._lock:
                del self.workers[pid]
                self.state.totals.jobs_done += 1
                self._done.decisions += j.decisions
                self._done.rollbacks += j.rollbacks
                self._done.fallbacks += j.fallbacks
            still = start_time(pid) == w.start and not zombie(pid)
            if still and not self._stopping:
                self.left_alone[pid] = w.start
            if w.error:
                tail = "; left alone until it ends" if still and not self._stopping else ""
                say(f"job {pid} ({j.command}): {w.error}; its knobs were restored{tail}")
            elif still and not self._stopping:
                why = w.ended_by or "its loop ended"
                say(f"job {pid} ({j.command}): {why}; knobs restored, left alone until it ends")
            else:
                how = "tuned" if self._stopping and still else "left after"
                say(
                    f"job {pid} ({j.command}) {how} {j.intervals} intervals: "
                    f"{j.decisions} changes, {j.rollbacks} rolled back, {j.fallbacks} fallbacks; "
                    "knobs restored"
                )
        return reaped

    def _decided(self, w: JobWorker, d: Decision) -> None:
        entry = st.DecisionState.of(w.pid, d)
        with self._lock:
            self.state.recent = [*self.state.recent, entry][-st.RECENT :]
        say(f"job {w.pid}: {d.line()}")

    def snapshot(self) -> st.ServiceState:
        """The state now (the metrics endpoint calls this from its own thread)."""
        with self._lock:
            # Shallow but for the totals, changed in place below (see JobWorker.snapshot).
            s = self.state.model_copy(update={"totals": self.state.totals.model_copy()})
            s.jobs = [w.snapshot() for w in self.workers.values()]
            t = s.totals
            t.decisions = self._done.decisions + sum(j.decisions for j in s.jobs)
            t.rollbacks = self._done.rollbacks + sum(j.rollbacks for j in s.jobs)
            t.fallbacks = self._done.fallbacks + sum(j.fallbacks for j in s.jobs)
        s.updated = time.time()
        return s

    def _publish(self) -> None:
        wall, cpu = time.monotonic(), time.process_time()
        w0, c0 = self._cpu
        if wall > w0:
            self.state.tuner_cpu_percent = 100.0 * (cpu - c0) / (wall - w0)
        self._cpu = (wall, cpu)
        self.state.tuner_rss_mb = _rss_mb()
        try:
            st.write(self.state_path, self.snapshot())
        except PermissionError as e:
            raise NotPermitted(f"cannot write the service state {self.state_path}") from e

    def _stop_all(self) -> None:
        for w in self.workers.values():
            w.stop()
        self._ticker.close()  # the loops end as stopped; each worker restores its job
        deadline = time.monotonic() + JOIN_S
        for w in self.workers.values():
            w.thread.join(max(0.0, deadline - time.monotonic()))
        self._reap()


def _cmdline(pid: int) -> str:
    from autotune.fsutil import read_small

    return (read_small(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()


def _rss_mb() -> float:
    from autotune.system.footprint import rss_kb

    return rss_kb() / 1024.0

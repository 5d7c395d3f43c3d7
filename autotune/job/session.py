"""One job under autotune, from its start (or attach) to its end.

`autotune record`, `autotune tune` and the live env (``autotune/Live-v0``) all run their job
through a :class:`JobSession`, the way CompilerGym's service sits under every env::

    with JobSession(settings, command=["python", "train.py"]) as job:  # started, held stopped
        collector = job.open_telemetry(interval_s=0.25)
        act = job.open_actuators(log=DecisionLog(path))   # optional: record only reads knobs
        job.stop_on_signals()                             # a process running one session
        job.run()                                         # the job's first instruction
        while job.alive() and not job.stopping.is_set():
            ...                                           # sample, decide, act
        job.restore()                                     # optional: leaving does it too
        status = job.finish()       # its exit status, as a shell reports it (None: attached)

Leaving the block, whatever ends it (an exception, a signal), restores every knob, detaches the
telemetry, ends a job the session started (:mod:`autotune.job.stop`: one grace policy) and closes
the progress channel, in that order: the job's own shutdown runs under the node's settings. A job
given by ``pid`` or ``cgroup`` is watched and tuned, never stopped.

Only telemetry must come before :meth:`JobSession.run` (unless the caller lets the job run
first, as `autotune tune` does, and accepts that the telemetry misses its first moments; a job
that ends before the telemetry opens has nothing to watch); the actuators, a policy or a tracking
client may be opened after the job runs. A session keeps no process-wide state except the signal
handlers of :meth:`JobSession.stop_on_signals`, which a process running many sessions leaves
alone: it takes the signals once and calls :meth:`JobSession.request_stop` on each session.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, NoReturn, cast

from autotune.errors import UserError
from autotune.job.stop import STOP_GRACE_S, stop_job
from autotune.target import Target

if TYPE_CHECKING:
    from autotune.actuators import Actuators, DecisionLog
    from autotune.config import Settings
    from autotune.telemetry.collector import TelemetryCollector
    from autotune.telemetry.progress import ProgressServer

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Telemetry opens left to finish on their own (JobSession.open_telemetry_unless_ended).
_ABANDONED: list[threading.Thread] = []


def abandoned_opens() -> list[threading.Thread]:
    """Telemetry opens this process stopped waiting for that still run (each closes what it
    opened when it ends), for a caller that wants to wait for them.

    `autotune tune` does not: it leaves with :func:`os._exit`, since a normal exit would wait
    for such a compile (seconds) and then tear down the compiler's state under it. Nothing of
    the node is changed by an open: the kernel drops what it loaded with the process.
    """
    return [t for t in _ABANDONED if t.is_alive()]


def leave_now(status: int) -> NoReturn:
    """Exit at once with ``status``, without the interpreter's exit: beside an abandoned open
    (:func:`abandoned_opens`) that exit would wait for its compile, or run the compiler's global
    destructors under it (a segfault). What such a compile attached meanwhile goes to a helper
    (:func:`~autotune.telemetry.loader.hand_off_perf_events`), whose exit waits for the kernel.
    """
    if abandoned_opens():
        from autotune.telemetry.loader import hand_off_perf_events

        hand_off_perf_events()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class JobSession:
    """A job autotune starts (held stopped until its telemetry is attached) or attaches to.

    Give exactly one of ``command``, ``pid`` or ``cgroup``. A PID or cgroup is checked here (a
    :class:`~autotune.errors.UserError` with one line when there is no such job); a command is
    checked and started by :meth:`start` (or entering the ``with`` block).

    Args:
        settings: ``journal`` and ``cgroup_parent`` go to the actuators.
        command: a command to start.
        pid: a running process to attach to (its descendants are its loaders).
        cgroup: a cgroup whose processes are the job.
        progress_socket: where the job's progress channel binds (default: a new temporary one).
        grace_s: how long a job the session started gets to end once asked.

    Attributes:
        stopping: set when :meth:`request_stop` was called (a signal, say).
        signal: the signal that ended the session, if one did.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        command: Sequence[str] | None = None,
        pid: int | None = None,
        cgroup: str | Path | None = None,
        progress_socket: Path | None = None,
        grace_s: float = STOP_GRACE_S,
    ) -> None:
        if sum(x is not None for x in (command, pid, cgroup)) != 1:
            raise UserError("give exactly one job: a command, a PID or a cgroup")
        self.settings = settings
        self.grace_s = grace_s
        self.stopping = threading.Event()
        self.signal: int | None = None
        self._command = list(command or [])
        self._progress_socket = progress_socket
        self._target: Target | None = None
        if pid is not None:
            # A tuner the job started itself (autotune.tuning()) is not one of its loaders.
            self._target = Target.from_pid(pid, exclude=[os.getpid()])
        elif cgroup is not None:
            self._target = Target.from_cgroup(cgroup)
        self._progress: ProgressServer | None = None
        self._collector: TelemetryCollector | None = None
        self._actuators: Actuators | None = None
        self._listeners: list[Callable[[], None]] = []
        self._stack = contextlib.ExitStack()
        self._started = False
        self._ran = False
        self._finished = False
        self._status: int | None = None

    # --- start ------------------------------------------------------------------------------

    def start(self) -> JobSession:
        """Open the progress channel and start the command, held stopped (attached: nothing to
        start). Raises :class:`~autotune.errors.UserError` for a command that cannot start."""
        if self._started:
            return self
        self._started = True
        from autotune.telemetry.progress import ProgressServer

        try:
            self._progress = self._stack.enter_context(ProgressServer(self._progress_socket))
            if self._target is None:
                self._target = Target.launch(self._command, env=self._progress.env, paused=True)
            # Runs after the telemetry and actuators have closed, before the progress channel.
            self._stack.callback(self.finish)
        except BaseException:
            self._stack.close()
            raise
        return self

    def open_telemetry(
        self, interval_s: float, *, prefer_bpf: bool = True, require_bpf: bool = False
    ) -> TelemetryCollector:
        """Attach the job's telemetry (:func:`~autotune.telemetry.collector.open_collector`)."""
        from autotune.telemetry.collector import open_collector

        self._collector = self._stack.enter_context(
            open_collector(
                self.target,
                progress=self._progress,
                interval_s=interval_s,
                prefer_bpf=prefer_bpf,
                require_bpf=require_bpf,
            )
        )
        return self._collector

    def open_telemetry_unless_ended(
        self, interval_s: float, while_waiting: Callable[[], None] | None = None
    ) -> TelemetryCollector | None:
        """Open the telemetry while the job runs (:meth:`run` with ``before_telemetry``), or
        None when a job the session started ends, or the session is asked to stop, first.

        The BPF programs compile in a thread of their own (a second quiet, several beside a
        busy neighbour) while this one watches the job every 50 ms. When the job wins, the
        compile is left to finish on its own and to close what it opened; a process about to
        exit need not wait for it (:func:`abandoned_opens`). A :class:`UserError` from a
        target that ended meanwhile is None too. ``while_waiting`` is called at each of those
        looks (the guard's warm-up from ``/proc`` meanwhile: :class:`StartupProxy`).
        """
        from autotune.telemetry.collector import open_collector
        from autotune.telemetry.loader import release_stderr

        box: dict[str, object] = {}
        lock = threading.Lock()
        done = threading.Event()

        def opening() -> None:
            try:
                opened = open_collector(self.target, progress=self._progress, interval_s=interval_s)
            except BaseException as e:  # handed to the waiting thread
                box["error"] = e
            else:
                with lock:
                    if "abandoned" not in box:
                        box["collector"] = opened
                if "collector" not in box:
                    opened.close()  # nobody waits for it any more
            finally:
                done.set()

        thread = threading.Thread(target=opening, name="autotune-telemetry-open", daemon=True)
        thread.start()

        def abandon() -> bool:
            with lock:
                if "collector" in box or "error" in box:
                    return False
                box["abandoned"] = True
            _ABANDONED.append(thread)
            release_stderr()  # the compile has fd 2 while it runs: the session's lines need it
            return True

        try:
            while True:  # the job and a stop asked already are looked at before any wait
                ended = self.launched and not self.alive()
                if (ended or self.stopping.is_set()) and abandon():
                    return None
                if done.wait(0.05):
                    break
                if while_waiting is not None:
                    while_waiting()
        except BaseException:  # Ctrl-C while it compiles
            abandon()
            raise
        error = box.get("error")
        if isinstance(error, BaseException):
            if isinstance(error, UserError) and self.launched and not self.alive():
                return None
            raise error
        collector = cast("TelemetryCollector", box["collector"])
        self._collector = self._stack.enter_context(collector)
        return self._collector

    def open_actuators(
        self,
        *,
        dry_run: bool = False,
        log: DecisionLog | None = None,
        devices: Sequence[str] | None = None,
    ) -> Actuators:
        """Take the knobs: :class:`~autotune.actuators.Actuators` on this job, journalled under
        the settings' journal. The session closes ``log`` after the actuators have restored."""
        from autotune.actuators import Actuators

        if log is not None:
            self._stack.callback(log.close)
        self._actuators = self._stack.enter_context(
            Actuators(
                self.target,
                self.settings,
                dry_run=dry_run,
                log=log,
                progress=self._progress,
                devices=devices,
            )
        )
        return self._actuators

    def stop_on_signals(self, signals: Sequence[int] = STOP_SIGNALS) -> None:
        """Let ``signals`` end the session the orderly way (:meth:`request_stop`) until it closes.

        For a process that runs this one session, from its main thread (elsewhere: nothing).
        Taken after the actuators, whose own handlers come back when the session closes.
        """
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self.request_stop(signum)

        for sig in signals:
            self._stack.callback(signal.signal, sig, signal.signal(sig, handler))

    def run(self, *, before_telemetry: bool = False) -> None:
        """Let a job the session started run; its first instruction comes after the telemetry,
        unless ``before_telemetry``: then it runs now, and the telemetry, opened afterwards,
        sees it from then on (`autotune tune`, whose warm-up runs at the default knobs anyway,
        so that the job does not wait the seconds the BPF programs take to compile)."""
        if self._collector is None and not before_telemetry:
            raise RuntimeError("open the job's telemetry before it runs")
        self._ran = True
        self.target.resume()

    def on_exit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from another thread: keep it short) as soon as a job the session
        started ends, so that its owner need not poll for it (nothing for an attached job)."""
        if self._target is None or self._target.process is None:
            return
        proc = self._target.process
        try:
            # Not reaped while poll() says it runs: the PID is still the job's, not reused.
            fd = os.pidfd_open(proc.pid) if proc.poll() is None else -1
        except OSError:
            fd = -1
        if fd < 0 or proc.poll() is not None:  # it has ended already: at once
            if fd >= 0:
                os.close(fd)
            listener()
            return

        def watch() -> None:
            try:
                select.select([fd], [], [])
            finally:
                os.close(fd)
            listener()

        threading.Thread(target=watch, name="autotune-job-exit", daemon=True).start()

    # --- while it runs ----------------------------------------------------------------------

    @property
    def target(self) -> Target:
        """The job (its roles' processes and threads)."""
        if self._target is None:
            raise RuntimeError("the job session has not started")
        return self._target

    @property
    def progress(self) -> ProgressServer | None:
        """The job's progress channel (None before :meth:`start`)."""
        return self._progress

    @property
    def launched(self) -> bool:
        """Whether the session started the job (and so ends it, and has its exit status)."""
        return self._target is None or self._target.process is not None

    def alive(self) -> bool:
        """Whether the job still runs."""
        return self.target.alive()

    def on_stop(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from a signal handler, say: keep it short) on :meth:`request_stop`."""
        self._listeners.append(listener)

    def request_stop(self, signum: int | None = None) -> None:
        """Ask the session's owner to end it (safe from a signal handler or another thread)."""
        if self.signal is None:
            self.signal = signum
        self.stopping.set()
        for listener in self._listeners:
            listener()

    # --- end --------------------------------------------------------------------------------

    def restore(self) -> None:
        """Put every knob back now (idempotent; closing the session does it too)."""
        if self._actuators is not None:
            self._actuators.close()

    def finish(self) -> int | None:
        """End a job the session started (the grace policy of :mod:`autotune.job.stop`) unless
        it has ended, and return its exit status as a shell reports it (128 + N for signal N).

        Returns None for a job the session attached to: that one is left running.
        """
        if not self._finished and self._target is not None:
            # Ctrl-C reached a job that runs; one still held stopped was never asked.
            asked = self.signal == signal.SIGINT and self._ran
            # Not finished until it has ended: a wait cut short (Ctrl-C) is taken up on close.
            self._status = stop_job(self._target, self.grace_s, asked=asked)
            self._finished = True
        return self._status

    def close(self) -> None:
        """Restore, detach the telemetry, end a job the session started, close the channel."""
        self._stack.close()

    def __enter__(self) -> JobSession:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is KeyboardInterrupt and self.signal is None:
            self.signal = signal.SIGINT  # Ctrl-C: the job had it too
        self.close()

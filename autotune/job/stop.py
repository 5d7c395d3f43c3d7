"""How a job autotune started is ended: one grace policy for `record`, `tune` and the live env.

The job is asked once to end, and has :data:`STOP_GRACE_S` to do so:

1. Its main process gets SIGTERM (and SIGCONT, should it still be held stopped). Only the main
   process: it owns its workers (PyTorch's DataLoader workers, torchrun's ranks, a
   multiprocessing pool) and ends them in its own order. A worker signalled before its parent
   makes the parent fail on "DataLoader worker exited unexpectedly" instead of running its own
   SIGTERM handler (a last checkpoint, say).
2. Once the main process has ended, what is left of its process tree (as it was when the stop
   began) gets SIGTERM too, within the same grace.
3. At the end of the grace everything left of the tree is killed (SIGKILL). A job autotune
   started never outlives its session.

When the session ends on SIGINT the job is taken to have been asked already: Ctrl-C reaches the
whole foreground process group, the job included, and a SIGTERM on top of it would cut the job's
own clean-up short. It gets the grace unsignalled, then step 3.

A job autotune attached to (``--pid``, ``--cgroup``) is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable

from autotune.target import Target, start_time, zombie

# Seconds a job gets to end once asked: Docker's default stop timeout, and what a training job's
# SIGTERM handler needs to write a last checkpoint. (`record` gave 5 s and its tree SIGTERM at
# once; `tune` 10 s to the main process alone; the live env 5 s to the main process alone.)
STOP_GRACE_S = 10.0
_POLL_S = 0.01

Proc = tuple[int, int | None]  # (pid, start time): a PID reused by another process is not ours


def exit_status(returncode: int) -> int:
    """A job's status as a shell reports it (killed by signal N → 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def stop_job(target: Target, grace_s: float = STOP_GRACE_S, *, asked: bool = False) -> int | None:
    """End a job autotune started (see the module's policy); returns its exit status.

    Args:
        target: the job; one autotune did not start (no ``process``) is left alone (None).
        grace_s: seconds the job has to end once asked.
        asked: the job has been asked to end already (SIGINT from a terminal): no SIGTERM to its
            main process.
    """
    proc = target.process
    if proc is None:
        return None
    if proc.poll() is None:
        _stop(proc, target, grace_s, asked)
    return exit_status(proc.wait())


def _stop(proc: subprocess.Popen[bytes], target: Target, grace_s: float, asked: bool) -> None:
    deadline = time.monotonic() + grace_s
    tree = _snapshot(target)
    if not asked:
        _signal([tree[0]], signal.SIGTERM)
    _signal([tree[0]], signal.SIGCONT)  # a job still held stopped must wake to end
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(max(0.0, deadline - time.monotonic()))
    if proc.returncode is not None:
        left = _alive(tree[1:])
        _signal(left, signal.SIGTERM)
        _signal(left, signal.SIGCONT)
        while left and time.monotonic() < deadline:
            time.sleep(_POLL_S)
            left = _alive(left)
    # Those that came to be during the grace too, while the main process still runs.
    _signal(_alive([*tree, *_snapshot(target)]), signal.SIGKILL)


def _snapshot(target: Target) -> list[Proc]:
    """The job's main process first, then every process below it, now."""
    pids = [target.pid, *target.members().loader_pids]
    return [(p, start_time(p)) for p in pids]


def _alive(procs: Iterable[Proc]) -> list[Proc]:
    return [(p, st) for p, st in procs if st is not None and start_time(p) == st and not zombie(p)]


def _signal(procs: Iterable[Proc], signum: int) -> None:
    for pid, _ in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)

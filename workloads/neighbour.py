"""The noisy neighbour: ``stress-ng --cpu N`` competing for the cores, always stopped after."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from autotune.errors import UserError
from autotune.target import descendants

STOP_WAIT_S = 5.0


class Neighbour:
    """``stress-ng --cpu <cpus>`` in a process group of its own; use as a context manager.

    Entering waits until its workers run, so the job starts beside a neighbour at full strength;
    leaving stops the whole group (SIGTERM, then SIGKILL) and reaps it.
    """

    def __init__(self, cpus: int = 2) -> None:
        if cpus < 1:
            raise UserError(f"the neighbour needs at least one CPU hog, got {cpus}")
        self.cpus = cpus
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Neighbour:
        if shutil.which("stress-ng") is None:
            raise UserError("stress-ng is not installed (scripts/bootstrap.sh installs it)")
        self.proc = subprocess.Popen(
            ["stress-ng", "--cpu", str(self.cpus), "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: stopped together, spared our Ctrl-C
        )
        deadline = time.monotonic() + 5.0
        while len(descendants(self.proc.pid)) < self.cpus:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise UserError("stress-ng did not start its CPU workers")
            time.sleep(0.02)
        return self

    def pids(self) -> list[int]:
        """The neighbour's processes (stress-ng and its workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        """Stop every process of the neighbour's group; safe to call twice."""
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc = None

    def __enter__(self) -> Neighbour:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the process group led by ``proc``: SIGTERM, SIGKILL if it lingers; reap ``proc``.

    Returns once no process of the group is left, so that files they held (on a data disk about
    to be unmounted, say) are closed.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break  # the whole group is gone
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader: a zombie still counts as a member
            if not _group_alive(proc.pid):
                return
            time.sleep(0.02)
    proc.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True

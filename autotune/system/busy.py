"""How much of the node's CPUs other tasks keep busy, from ``/proc`` alone.

`autotune tune` starts its job at once and compiles its BPF programs beside it; until they are
up it has no telemetry to tell a busy node from a quiet one. :class:`OthersBusy` tells it from
``/proc/stat`` (every CPU's busy time) less this process's CPU time and the job's, over a short
window from the job's start: what the rest of the node ran meanwhile, as a share of the CPU time
this process and the job left to it (1.0: other tasks took all of it). Of what was left, not of
the node: the tuner imports and compiles at a raised priority while the job starts, so beside a
CPU-bound neighbour they leave it a third of a 2-CPU node, all of which it takes; a share of the
whole node read that as a quiet node (2026-12-06, tinylm). What was left counts as half the node
at least, so that a job and a tuner that fill the node alone do not make a few ticks of someone
else's work look like a busy node (a quarter let a quiet cnn start read 39 % in one run of
two: 2 ticks of 5). The resolution is the clock tick (10 ms on most kernels), so the window
should span ten ticks per CPU or more.

Only other tasks at nice 0 or below count (``/proc/stat`` less its ``nice`` column): a task at a
higher nice value takes little from a job at nice 0. The previous session's upload process runs
at nice 19 for that reason (autotune.tracking.follow): its last upload, at nice 0 until
13ca876, loaded the MLflow client as the next session started, took "all that was left", and
started a quiet job at 8x weights in 4-5 of 40 quiet runs of bench/online. So the job's and
this process's CPU time is subtracted as ``/proc/stat`` counts it: for a process at a nice
value above 0 (its main thread's), less its user time, which is in the ``nice`` column
(subtracted whole, a job started niced read as a quieter node than it was). Both count whole
in what they left.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from autotune.telemetry import procread

LEAST_LEFT = 0.5  # of the node's CPU time: the least that counts as left to other tasks


class OthersBusy:
    """Other tasks' CPU time over a window that starts at construction.

    ``job``: lists the job's processes now; their CPU time is not counted as other tasks' (nor
    is this process's, every thread of it). A process that appears during the window counts
    from its birth; one that ends during it counts as others' (its time goes to its parent's
    children's time, which only a wait collects).
    """

    def __init__(self, job: Callable[[], Iterable[int]]) -> None:
        self._job = job
        self._start = self._snapshot()

    def _snapshot(
        self,
    ) -> tuple[float, int | None, tuple[int, int] | None, dict[int, tuple[int, int]]]:
        jobs = {p: ns for p in self._job() if (ns := _cpu_ns(p)) is not None}
        own = _cpu_ns(os.getpid())
        return (time.monotonic(), procread.cpu_busy_ns(niced=False), own, jobs)

    def window(self, least_s: float = 0.1) -> Window | None:
        """The CPU time since construction, by whom, waiting for the rest of ``least_s``
        first; None when ``/proc`` cannot tell."""
        waited = time.monotonic() - self._start[0]
        if waited < least_s:
            time.sleep(least_s - waited)
        t1, busy1, own1, jobs1 = self._snapshot()
        t0, busy0, own0, jobs0 = self._start
        if busy0 is None or busy1 is None or own0 is None or own1 is None:
            return None
        job = sum(ns[0] - jobs0.get(p, (0, 0))[0] for p, ns in jobs1.items())
        job_busy = sum(ns[1] - jobs0.get(p, (0, 0))[1] for p, ns in jobs1.items())
        return Window(
            others_ns=(busy1 - busy0) - (own1[1] - own0[1]) - job_busy,
            own_ns=own1[0] - own0[0],
            job_ns=job,
            capacity_ns=int((t1 - t0) * 1e9 * (os.cpu_count() or 1)),
        )

    def share(self, least_s: float = 0.1) -> float | None:
        """:attr:`Window.share` of the window from construction (at least ``least_s``)."""
        w = self.window(least_s)
        return None if w is None else w.share


def _cpu_ns(pid: int) -> tuple[int, int] | None:
    """A process's CPU time, and the part of it in ``/proc/stat``'s busy time less its
    ``nice`` column (all of it at a nice value of 0 or below, its system time above); None
    when it is gone."""
    st = procread.read_stat(pid)
    if st is None:
        return None
    busy = st.stime + (st.utime if st.nice <= 0 else 0)
    return (st.utime + st.stime) * procread.TICK_NS, busy * procread.TICK_NS


@dataclass(frozen=True)
class Window:
    """CPU time over a window: other tasks', this process's, the job's, and the node's."""

    others_ns: int
    own_ns: int
    job_ns: int
    capacity_ns: int

    @property
    def share(self) -> float:
        """Other tasks' CPU time as a share of what this process and the job left them (0 to 1;
        what was left counts as :data:`LEAST_LEFT` of the node at least)."""
        left = max(self.capacity_ns - self.own_ns - self.job_ns, LEAST_LEFT * self.capacity_ns)
        return min(1.0, max(0.0, self.others_ns / left)) if left > 0 else 0.0

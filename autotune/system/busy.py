"""How much of the node's CPUs other tasks keep busy, from ``/proc`` alone.

`autotune tune` starts its job at once and compiles its BPF programs beside it; until they are
up it has no telemetry to tell a busy node from a quiet one. :class:`OthersBusy` tells it from
``/proc/stat`` (every CPU's busy time) less this process's CPU time and the job's, over a short
window from the job's start: what the rest of the node ran meanwhile, as a share of its CPUs
(1.0: every CPU busy with someone else's work). The resolution is the clock tick (10 ms on
most kernels), so the window should span ten ticks per CPU or more.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from autotune.telemetry import procread


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

    def _snapshot(self) -> tuple[float, int | None, int | None, dict[int, int]]:
        jobs = {p: ns for p in self._job() if (ns := procread.process_cpu_ns(p)) is not None}
        own = procread.process_cpu_ns(os.getpid())
        return (time.monotonic(), procread.cpu_busy_ns(), own, jobs)

    def share(self, least_s: float = 0.1) -> float | None:
        """Other tasks' CPU time since construction as a share of the node's CPU time (0 to
        1), waiting for the rest of ``least_s`` first; None when ``/proc`` cannot tell."""
        waited = time.monotonic() - self._start[0]
        if waited < least_s:
            time.sleep(least_s - waited)
        t1, busy1, own1, jobs1 = self._snapshot()
        t0, busy0, own0, jobs0 = self._start
        if busy0 is None or busy1 is None or own0 is None or own1 is None:
            return None
        job = sum(ns - jobs0.get(p, 0) for p, ns in jobs1.items())
        others = (busy1 - busy0) - (own1 - own0) - job
        capacity = (t1 - t0) * 1e9 * (os.cpu_count() or 1)
        return min(1.0, max(0.0, others / capacity))

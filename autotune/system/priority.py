"""The scheduling policy of one thread: real-time for a sampling loop that must keep its interval.

Beside a job with more runnable threads than CPUs (``hackbench -g 4``: 160 processes on 2 CPUs),
a recorder under the normal scheduler waits behind them at each of its few hundred /proc reads
and wrote rows 0.5 s apart at a 250 ms interval. Under ``SCHED_FIFO`` it runs as soon as it
wakes; its work per interval is bounded (milliseconds) and the kernel's real-time throttling
(``sched_rt_runtime_us``) caps it whatever happens.

Linux applies ``sched_setscheduler(0, ...)`` to the calling thread only: the process's other
threads keep their policy, and threads the caller starts inherit its policy (a thread that must
not, a writer's flusher say, calls :func:`normal` first).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

log = logging.getLogger("autotune.system")


@contextlib.contextmanager
def realtime(priority: int) -> Iterator[bool]:
    """Run the block with the calling thread at ``SCHED_FIFO`` ``priority``; yields whether it
    took effect, and puts the thread's previous policy back on the way out.

    ``priority`` 0 changes nothing. Without the privilege (root, ``CAP_SYS_NICE`` or an
    ``RLIMIT_RTPRIO``) the thread keeps its policy, with one debug line: the loop still runs,
    only less punctually.
    """
    if priority <= 0:
        yield False
        return
    before = os.sched_getscheduler(0)
    before_param = os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as e:  # EPERM without the privilege, EINVAL for a priority out of range
        log.debug("autotune: no real-time priority %d for the sampling thread: %s", priority, e)
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, before, before_param)


def normal() -> None:
    """Put the calling thread under the normal scheduler (``SCHED_OTHER``, its nice value
    unchanged), whatever it inherited from the thread that started it."""
    with contextlib.suppress(OSError):  # a kernel without the call: nothing was raised either
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def renice_thread(value: int) -> bool:
    """Set the calling thread's nice value (threads it starts afterwards inherit it; processes
    it had already started keep theirs); returns whether it took effect.

    A value below the current one needs root or ``CAP_SYS_NICE``: without them the thread keeps
    its nice value, with one debug line.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), value)
    except OSError as e:
        log.debug("autotune: nice %d refused for this thread: %s", value, e)
        return False
    return True

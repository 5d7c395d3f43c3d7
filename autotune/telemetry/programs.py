"""The telemetry programs of this process: loaded once, shared by every job it watches.

The three programs (``bpf/sched.bpf.c``, ``block.bpf.c``, ``pagecache.bpf.c``) attach to
tracepoints that fire for every task on the node, so one set serves any number of jobs: a second
set would only double the cost of every context switch. The node service
(:mod:`autotune.service`) tunes many jobs in one process; each job's collector takes a **lease**,
which gives it a job slot (``bpf/telemetry.h``): the job's threads carry that slot in the role
table, and the kernel keeps their counters apart from every other job's. A job's "other" role is
then everything on the node but its own trainer and loader, other jobs included, as it is when
a job is tuned alone.

The programs are compiled and loaded by the first lease (bcc: about 0.6 s of CPU and 110 MB at
its peak) and detached when the last lease is released. A released slot has its threads and
processes taken out of the kernel's tables (they count as nobody's from then on) and goes to the
back of the free list, so that a slice still running under the old job when it was released is
not credited to the next job in the slot.

There are :data:`~autotune.telemetry.bpfmaps.JOB_SLOTS` less one slots (slot 0 is nobody's); a
job beyond that gets :class:`BpfUnavailable` and its collector falls back to /proc.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from autotune.telemetry import bpfmaps
from autotune.telemetry.loader import BpfUnavailable, detach_tracepoints, load

READAHEAD_EVENTS = (
    "page_cache_sync_ra",
    "page_cache_async_ra",
    "page_cache_ra_order",
    "page_cache_ra_unbounded",
)
READAHEAD_COUNTERS = ("ra_sync", "ra_sync_pages", "ra_async", "ra_async_pages")

_lock = threading.Lock()
_loaded: Programs | None = None


@dataclass
class Programs:
    """The loaded programs and their maps (bcc table objects).

    Attributes:
        sched: the scheduler program (always loaded: without it there is no BPF telemetry).
        block: the block I/O program, or None when it failed to load (``block_error`` says why).
        pagecache: the page-cache program, or None (``pagecache_error`` says why).
        roles_table: the name this load gave the role table (see :mod:`bpfmaps`).
        pagecache_missing: the counters this kernel cannot give (its readahead tracepoints came
            in 6.x).
        majflt: major faults are counted per role by the scheduler program (the kernel's
            software event is attached); else ``majflt_error`` says why, and the collectors
            read each process's count from /proc.
    """

    sched: Any
    roles_table: str
    block: Any = None
    pagecache: Any = None
    block_error: str = ""
    pagecache_error: str = ""
    pagecache_missing: frozenset[str] = frozenset()
    majflt: bool = False
    majflt_error: str = ""
    leases: int = 0
    free: collections.deque[int] = field(
        default_factory=lambda: collections.deque(range(1, bpfmaps.JOB_SLOTS))
    )

    def table(self, name: str) -> Any:
        """One of the scheduler program's maps (the role table by its load's name)."""
        return self.sched.get_table(name.encode())

    def bpfs(self) -> list[Any]:
        return [b for b in (self.sched, self.block, self.pagecache) if b is not None]

    def _clear_slot(self, slot: int) -> None:
        """Take the slot's threads and processes out of the kernel's tables."""
        for name in (self.roles_table, "procs"):
            t = self.table(name)
            for key, info in bpfmaps.u32_items(t).items():
                if bpfmaps.info_job(info) == slot:
                    bpfmaps.delete(t, key)
        t = self.table("trainer_tgids")
        for key, owner in bpfmaps.u32_items(t).items():
            if owner == slot:
                bpfmaps.delete(t, key)
        bpfmaps.bump(self.table("table_gen"))  # running slices re-read their roles

    def _close(self) -> None:
        try:
            detach_tracepoints(self.bpfs())  # every tracepoint at once (see the loader)
        finally:
            # The page-cache program goes before the scheduler's, whose role table it imports.
            for bpf in reversed(self.bpfs()):
                bpf.cleanup()


def _load() -> Programs:
    flags = bpfmaps.cflags()
    sched_flags = list(flags)
    if bpfmaps.tracepoint_has("sched", "sched_process_exit", "group_dead"):
        sched_flags.append("-DHAVE_GROUP_DEAD")
    roles_table = bpfmaps.roles_table_name()
    rename = {bpfmaps.ROLES_TABLE: roles_table}
    progs = Programs(sched=load("sched", sched_flags, rename=rename), roles_table=roles_table)
    try:
        try:
            _attach_major_faults(progs.sched)
            progs.majflt = True
        except Exception as e:  # no perf events in this kernel, or a refused program
            progs.majflt_error = f"cannot count major faults in BPF: {e}"
        try:
            progs.block = load("block", flags)
        except BpfUnavailable as e:
            progs.block_error = str(e)
        has_ra = all(bpfmaps.tracepoint_has("readahead", e) for e in READAHEAD_EVENTS)
        try:
            progs.pagecache = load(
                "pagecache", [*flags, *(["-DHAVE_READAHEAD_TP"] if has_ra else [])], rename=rename
            )
            progs.pagecache_missing = frozenset() if has_ra else frozenset(READAHEAD_COUNTERS)
        except BpfUnavailable as e:
            progs.pagecache_error = str(e)
    except BaseException:
        progs._close()
        raise
    switch_every_cpu()
    return progs


def switch_every_cpu() -> None:
    """Make every CPU switch tasks once, now that the programs are attached.

    ``sched_switch`` learns which thread runs on a CPU (its per-CPU slot) when the thread is
    switched in. A thread that has held a CPU since before the attach would otherwise be
    credited nothing until its first switch, which a thread with a CPU to itself (a real-time
    spinner, a trainer pinned alone) may not make for seconds. So a short thread visits each
    CPU at the highest real-time priority: the kernel switches the running thread out for it
    and back in when it leaves, and from then on that CPU's slot is known. It costs each CPU a
    few microseconds; a CPU it may not visit (outside this process's cpuset, no privilege for
    real time) keeps the old behaviour.
    """

    def visit(cpu: int) -> None:
        with contextlib.suppress(OSError):
            top = os.sched_get_priority_max(os.SCHED_FIFO)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(top))  # this thread only
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})  # moved there, it preempts whatever runs

    for cpu in range(os.cpu_count() or 1):
        t = threading.Thread(target=visit, args=(cpu,), name="autotune-visit-cpu", daemon=True)
        t.start()
        t.join()


def _attach_major_faults(sched: Any) -> None:
    """Run ``on_major_fault`` on every major fault on every CPU (the software event's sample
    period is 1: a major fault waits for the disk, so a program run each costs nothing)."""
    from bcc import PerfSWConfig, PerfType

    sched.attach_perf_event(
        ev_type=PerfType.SOFTWARE,
        ev_config=PerfSWConfig.PAGE_FAULTS_MAJ,
        fn_name=b"on_major_fault",
        sample_period=1,
        cpu=-1,
    )


class Lease:
    """One job's hold on the programs: its slot, until :meth:`release` (idempotent).

    Attributes:
        compiled: this lease loaded the programs (the compiler's memory can go now).
    """

    def __init__(self, programs: Programs, slot: int, compiled: bool) -> None:
        self.programs = programs
        self.slot = slot
        self.compiled = compiled
        self._released = False

    def release(self) -> None:
        """Give the slot back; the last lease detaches the programs."""
        global _loaded  # noqa: PLW0603 - the process's one set of programs (module docstring)
        progs = self.programs
        with _lock:
            if self._released:
                return
            self._released = True
            progs.leases -= 1
            last = progs.leases == 0
            if last:
                _loaded = None
            else:  # under the lock: the last lease must not close the maps meanwhile
                try:
                    progs._clear_slot(self.slot)
                finally:
                    progs.free.append(self.slot)
        if last:
            progs._close()  # outside the lock: the detach may wait for grace periods


def lease() -> Lease:
    """A slot in this process's telemetry programs, loading them if none is held.

    Raises:
        BpfUnavailable: not root, no bcc, the scheduler program failed to load, or every slot
            is taken.
    """
    global _loaded  # noqa: PLW0603
    with _lock:
        compiled = _loaded is None
        if _loaded is None:
            _loaded = _load()  # under the lock: a second job waits for this compile, not its own
        progs = _loaded
        if not progs.free:
            raise BpfUnavailable(
                f"all {bpfmaps.JOB_SLOTS - 1} job slots of this process's BPF telemetry are taken"
            )
        progs.leases += 1
        return Lease(progs, progs.free.popleft(), compiled)


def loaded() -> bool:
    """Whether this process holds the telemetry programs now (a lease is out)."""
    return _loaded is not None

"""Scheduler telemetry per role, from ``bpf/sched.bpf.c``.

Fills the role counters ``oncpu_ns``, ``runq_wait_ns``, ``nvcsw``, ``nivcsw``, ``migrations`` and
``threads``, and the per-role run-queue latency histograms. The kernel keeps cumulative per-CPU
counters; each :meth:`SchedCollector.read` returns the difference since the previous one.

On-CPU time is added in the kernel when a thread switches out, so a thread that holds a CPU for
the whole interval (a CPU-bound trainer alone on its core is never switched out) would show none.
Each read therefore also credits the part of every slice still running (from the per-CPU slot
that says who runs since when), and takes that credit back when the kernel adds the whole slice.

Role membership is the kernel's (fork and exit move it, see the C file); user space seeds it from
:meth:`autotune.target.Target.members` when opening, and again as a backstop every
:data:`RECONCILE_S` (a fork in the instant between reading /proc and seeding the parent would
otherwise be missed). Seeding inserts only threads the kernel does not know yet.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from autotune.roles import ROLE_INDEX, ROLES, Role
from autotune.target import Members
from autotune.telemetry import bpfmaps
from autotune.telemetry.loader import BpfUnavailable, load
from autotune.telemetry.procread import total_threads
from autotune.telemetry.sample import N_SLOTS, ROLE_COUNTERS, C, Counts

RECONCILE_S = 2.0  # seconds between /proc reconciliations of the role table (a backstop)
INFO_ROLE_MASK = 0xFF  # as bpf/telemetry.h
INFO_PENDING = 0x100
INFO_EXITING = 0x200

_N_ROLES, _N_COUNTERS = len(ROLES), len(ROLE_COUNTERS)
_ONCPU, _THREADS = C["oncpu_ns"], C["threads"]
_TRAINER, _LOADER, _OTHER = (ROLE_INDEX[r] for r in (Role.TRAINER, Role.LOADER, Role.OTHER))

# One set of telemetry programs per process at a time: the programs attach to every task, and two
# sets would double the cost of every context switch.
_open_lock = threading.Lock()
_open = False


@dataclass
class SchedReading:
    """One interval of scheduler telemetry.

    Attributes:
        roles: shape ``(len(ROLES), len(ROLE_COUNTERS))``; only the scheduler's columns are set.
        runq_hist: shape ``(len(ROLES), N_SLOTS)``.
    """

    roles: Counts
    runq_hist: Counts


def _claim() -> None:
    global _open  # noqa: PLW0603 - one set of programs per process (see above)
    with _open_lock:
        if _open:
            raise BpfUnavailable(
                "another BPF telemetry collector is open in this process; close it first"
            )
        _open = True


def _release() -> None:
    global _open  # noqa: PLW0603
    with _open_lock:
        _open = False


def _thread_gone(tid: int) -> bool:
    return not os.path.exists(f"/proc/{tid}/stat")


class SchedCollector:
    """Loads ``sched.bpf.c``, seeds the roles from ``members``, and reads per interval.

    Raises:
        BpfUnavailable: not root, no bcc, the program failed to load, or another collector is
            open in this process.
    """

    missing: frozenset[str] = frozenset()

    def __init__(self, members: Members) -> None:
        _claim()
        try:
            flags = bpfmaps.cflags()
            if bpfmaps.tracepoint_has("sched", "sched_process_exit", "group_dead"):
                flags.append("-DHAVE_GROUP_DEAD")
            self.roles_table = bpfmaps.roles_table_name()
            self.bpf = load("sched", flags, rename={bpfmaps.ROLES_TABLE: self.roles_table})
        except BaseException:
            _release()
            raise
        self._closed = False
        self._roles = self.bpf.get_table(self.roles_table.encode())
        self._trainers = self.bpf.get_table(b"trainer_tgids")
        self._procs = self.bpf.get_table(b"procs")
        self._counters = self.bpf.get_table(b"counters")
        self._hists = self.bpf.get_table(b"runq_hist")
        self._slots = self.bpf.get_table(b"oncpu")
        # Threads user space added to the table (the kernel counts only what fork and exit move).
        self._seeded = np.zeros(_N_ROLES, np.int64)
        # cpu -> (slot start, role, ns already credited) for slices still running at a read.
        self._credit: dict[int, tuple[int, int, int]] = {}
        # On-CPU time credited ahead of the kernel, owed back by the next intervals.
        self._debt = np.zeros(_N_ROLES, np.int64)
        self.seed(members)
        self._prev_c, self._prev_h = self._cumulative()
        # Slices running now began before open: their time so far is not this collector's.
        self._credit_running(bpfmaps.read_percpu(self._slots, 2), time.monotonic_ns())

    # --- membership -----------------------------------------------------------------------

    def seed(self, members: Members) -> None:
        """Add the members' threads and processes the kernel does not track yet."""
        for pid in members.trainer_pids:
            bpfmaps.put(self._trainers, pid, 1)
        for tids, role in ((members.trainer_tids, _TRAINER), (members.loader_tids, _LOADER)):
            for tid in tids:
                if bpfmaps.insert_new(self._roles, tid, role):
                    self._count_seeded(tid, role)
        for pids, role in ((members.trainer_pids, _TRAINER), (members.loader_pids, _LOADER)):
            for pid in pids:
                bpfmaps.insert_new(self._procs, pid, role)

    def _count_seeded(self, tid: int, role: int) -> None:
        if not _thread_gone(tid):
            self._seeded[role] += 1
            return
        # It exited around the insert. If the kernel saw the exit it took the thread off its own
        # count (and drops the entry itself); otherwise the entry is stale and goes.
        info = bpfmaps.get(self._roles, tid)
        if info is None or info & INFO_EXITING:
            self._seeded[role] += 1
        else:
            bpfmaps.delete(self._roles, tid)

    def reconcile(self, members: Members) -> None:
        """The /proc backstop: seed whatever the kernel missed."""
        self.seed(members)

    def processes(self) -> dict[int, Role]:
        """The job's processes now (pid → role), as the kernel tracks them."""
        return {
            pid: ROLES[role]
            for pid, role in bpfmaps.u32_items(self._procs).items()
            if role < _N_ROLES
        }

    # --- reading --------------------------------------------------------------------------

    def _cumulative(self) -> tuple[Counts, Counts]:
        c = bpfmaps.read_percpu(self._counters, _N_ROLES * _N_COUNTERS).view(np.int64)
        h = bpfmaps.read_percpu(self._hists, _N_ROLES * N_SLOTS).view(np.int64)
        # int64 sums wrap like the kernel's u64: the thread gauge goes up on one CPU, down on
        # another, and sums right.
        return c.sum(axis=0), h.sum(axis=0)

    def read(self) -> SchedReading:
        """Telemetry since the previous read (the first: since open)."""
        slots = bpfmaps.read_percpu(self._slots, 2)
        now = time.monotonic_ns()  # the clock of bpf_ktime_get_ns()
        c, h = self._cumulative()
        roles = (c - self._prev_c).reshape(_N_ROLES, _N_COUNTERS)
        hist = (h - self._prev_h).reshape(_N_ROLES, N_SLOTS)
        self._prev_c, self._prev_h = c, h
        oncpu = roles[:, _ONCPU] + self._credit_running(slots, now) - self._debt
        # Never a negative time: what this interval cannot give back is owed by the next ones.
        self._debt = np.maximum(-oncpu, 0)
        roles[:, _ONCPU] = np.maximum(oncpu, 0)
        roles[:, _THREADS] = c.reshape(_N_ROLES, _N_COUNTERS)[:, _THREADS] + self._seeded
        # The kernel counts the job's threads only; other's are the node's less the job's.
        total = total_threads()
        job = roles[_TRAINER, _THREADS] + roles[_LOADER, _THREADS]
        roles[_OTHER, _THREADS] = max(total - job, 0) if total is not None else 0
        return SchedReading(roles=roles, runq_hist=hist)

    def _credit_running(self, slots: bpfmaps.Words, now: int) -> Counts:
        """On-CPU ns of the slices running now, less earlier credit for slices since ended."""
        delta = np.zeros(_N_ROLES, np.int64)
        for cpu, (ts, word) in enumerate(slots.tolist()):
            tid, info = word & 0xFFFFFFFF, word >> 32
            old = self._credit.get(cpu)
            if old is not None and old[0] != ts:
                delta[old[1]] -= old[2]  # that slice ended: the kernel counted all of it
                del self._credit[cpu]
                old = None
            role = info & INFO_ROLE_MASK
            # A pending child's role may still change at switch-out: leave it to the kernel.
            if ts == 0 or tid == 0 or info & INFO_PENDING or role >= _N_ROLES:
                continue
            running = max(now - ts, 0)
            delta[role] += running - (old[2] if old else 0)
            self._credit[cpu] = (ts, role, running)
        return delta

    def close(self) -> None:
        """Detach the programs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.bpf.cleanup()
        finally:
            _release()

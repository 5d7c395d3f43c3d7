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

The programs are the process's shared set (:mod:`autotune.telemetry.programs`): this collector
is one job's view of them, through its lease's slot. The kernel counts per slot and role; a read
takes the job's trainer and loader from its own slot, and counts everything else on the node,
other jobs' threads included, as "other".
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from autotune.roles import ROLE_INDEX, ROLES, Role
from autotune.target import Members
from autotune.telemetry import bpfmaps
from autotune.telemetry.procread import total_threads
from autotune.telemetry.reading import memo
from autotune.telemetry.sample import N_SLOTS, ROLE_COUNTERS, C, Counts

if TYPE_CHECKING:
    from autotune.telemetry.programs import Lease

RECONCILE_S = 2.0  # seconds between /proc reconciliations of the role table (a backstop)

_N_ROLES, _N_COUNTERS = len(ROLES), len(ROLE_COUNTERS)
_N_CELLS = bpfmaps.JOB_SLOTS * _N_ROLES  # bpf/telemetry.h's cells: (job slot, role)
_ONCPU, _THREADS = C["oncpu_ns"], C["threads"]
_TRAINER, _LOADER, _OTHER = (ROLE_INDEX[r] for r in (Role.TRAINER, Role.LOADER, Role.OTHER))


@dataclass
class SchedReading:
    """One interval of scheduler telemetry.

    Attributes:
        roles: shape ``(len(ROLES), len(ROLE_COUNTERS))``; only the scheduler's columns are set.
        runq_hist: shape ``(len(ROLES), N_SLOTS)``.
    """

    roles: Counts
    runq_hist: Counts


def _rows(slot: int) -> slice:
    """The rows of a job slot's cells (one per role) in per-cell counts."""
    return slice(slot * _N_ROLES, (slot + 1) * _N_ROLES)


def fold(cells: Counts, slot: int) -> Counts:
    """Per-cell counts (rows: job slot × role) as one job's roles: its own trainer and loader,
    and everything else on the node as other."""
    own = cells[_rows(slot)]
    out = own.copy()
    out[_OTHER] = cells.sum(axis=0) - own[_TRAINER] - own[_LOADER]
    return out


def _thread_gone(tid: int) -> bool:
    return not os.path.exists(f"/proc/{tid}/stat")


class SchedCollector:
    """One job's scheduler telemetry: seeds its roles from ``members`` into the lease's slot,
    and reads per interval.

    Args:
        lease: the job's hold on the process's programs (released by its owner, not here).
        members: the job's processes and threads now.
    """

    missing: frozenset[str] = frozenset()

    def __init__(self, lease: Lease, members: Members) -> None:
        self.slot = lease.slot
        progs = lease.programs
        self._key = progs.roles_table  # names this load of the programs in a shared reading
        self._roles = progs.table(progs.roles_table)
        self._trainers = progs.table("trainer_tgids")
        self._procs = progs.table("procs")
        self._counters = progs.table("counters")
        self._hists = progs.table("runq_hist")
        self._slots = progs.table("oncpu")
        self._gen = progs.table("table_gen")
        # Threads user space added to the table (the kernel counts only what fork and exit move).
        self._seeded = np.zeros(_N_ROLES, np.int64)
        # cpu -> (slot start, cell, ns already credited) for slices still running at a read.
        self._credit: dict[int, tuple[int, int, int]] = {}
        # On-CPU time credited ahead of the kernel, owed back by the next intervals.
        self._debt = np.zeros(_N_ROLES, np.int64)
        self._prev_c, self._prev_h = self._cumulative()
        # The slot's thread gauge as a previous job in it left it: not this job's threads.
        self._threads0 = self._own(self._prev_c)[:, _THREADS].copy()
        self.seed(members)
        # Slices running now began before open: their time so far is not this collector's.
        self._credit_running(*self._running())

    def _own(self, c: Counts) -> Counts:
        """This job's rows of cumulative per-cell counters."""
        return c.reshape(_N_CELLS, _N_COUNTERS)[_rows(self.slot)]

    # --- membership -----------------------------------------------------------------------

    def seed(self, members: Members) -> None:
        """Add the members' threads and processes the kernel does not track yet."""
        for pid in members.trainer_pids:
            bpfmaps.put(self._trainers, pid, self.slot)
        added = False
        for tids, role in ((members.trainer_tids, _TRAINER), (members.loader_tids, _LOADER)):
            for tid in tids:
                if bpfmaps.insert_new(self._roles, tid, bpfmaps.info(self.slot, role)):
                    self._count_seeded(tid, role)
                    added = True
        if added:
            # A seeded thread may be on a CPU now, its slice cached as nobody's at switch-in.
            bpfmaps.bump(self._gen)
        for pids, role in ((members.trainer_pids, _TRAINER), (members.loader_pids, _LOADER)):
            for pid in pids:
                bpfmaps.insert_new(self._procs, pid, bpfmaps.info(self.slot, role))

    def _count_seeded(self, tid: int, role: int) -> None:
        if not _thread_gone(tid):
            self._seeded[role] += 1
            return
        # It exited around the insert. If the kernel saw the exit it took the thread off its own
        # count (and drops the entry itself); otherwise the entry is stale and goes.
        value = bpfmaps.get(self._roles, tid)
        if value is None or value & bpfmaps.INFO_EXITING:
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
            for pid, value in memo((self._key, "procs"), self._all_procs).items()
            if bpfmaps.info_job(value) == self.slot
            and (role := value & bpfmaps.INFO_ROLE_MASK) < _N_ROLES
        }

    def _all_procs(self) -> dict[int, int]:
        """Every job's processes (pid → role table value), as the kernel tracks them."""
        return bpfmaps.u32_items(self._procs)

    # --- reading --------------------------------------------------------------------------

    def _cumulative(self) -> tuple[Counts, Counts]:
        c = bpfmaps.read_percpu(self._counters, _N_CELLS * _N_COUNTERS).view(np.int64)
        h = bpfmaps.read_percpu(self._hists, _N_CELLS * N_SLOTS).view(np.int64)
        # int64 sums wrap like the kernel's u64: the thread gauge goes up on one CPU, down on
        # another, and sums right.
        return c.sum(axis=0), h.sum(axis=0)

    def _running(self) -> tuple[bpfmaps.Words, int, int]:
        """The per-CPU slots, the time of the read and the role table's generation."""
        slots = bpfmaps.read_percpu(self._slots, 3)
        now = time.monotonic_ns()  # the clock of bpf_ktime_get_ns()
        return slots, now, bpfmaps.get(self._gen, 0) or 0

    def _reading(self) -> tuple[bpfmaps.Words, int, int, Counts, Counts]:
        return (*self._running(), *self._cumulative())

    def read(self) -> SchedReading:
        """Telemetry since the previous read (the first: since open)."""
        slots, now, gen, c, h = memo((self._key, "sched"), self._reading)
        cells = (c - self._prev_c).reshape(_N_CELLS, _N_COUNTERS)
        cells[:, _ONCPU] += self._credit_running(slots, now, gen)
        roles = fold(cells, self.slot)
        hist = fold((h - self._prev_h).reshape(_N_CELLS, N_SLOTS), self.slot)
        self._prev_c, self._prev_h = c, h
        oncpu = roles[:, _ONCPU] - self._debt
        # Never a negative time: what this interval cannot give back is owed by the next ones.
        self._debt = np.maximum(-oncpu, 0)
        roles[:, _ONCPU] = np.maximum(oncpu, 0)
        roles[:, _THREADS] = self._own(c)[:, _THREADS] - self._threads0 + self._seeded
        # The kernel counts the job's threads only; other's are the node's less the job's.
        total = memo("loadavg", total_threads)
        job = roles[_TRAINER, _THREADS] + roles[_LOADER, _THREADS]
        roles[_OTHER, _THREADS] = max(total - job, 0) if total is not None else 0
        return SchedReading(roles=roles, runq_hist=hist)

    def _credit_running(self, slots: bpfmaps.Words, now: int, gen: int) -> Counts:
        """On-CPU ns of the slices running now, less earlier credit for slices since ended, per
        cell."""
        delta = np.zeros(_N_CELLS, np.int64)
        for cpu, (ts, word, slot_gen) in enumerate(slots.tolist()):
            tid, info = word & 0xFFFFFFFF, word >> 32
            old = self._credit.get(cpu)
            if old is not None and old[0] != ts:
                delta[old[1]] -= old[2]  # that slice ended: the kernel counted all of it
                del self._credit[cpu]
                old = None
            if tid != 0 and slot_gen & 0xFFFFFFFF != gen:
                # Cached before user space last changed the table: the kernel will count the
                # slice as the table says at switch-out, and so does its credit.
                found = bpfmaps.get(self._roles, tid)
                info = _OTHER if found is None else found
            role = info & bpfmaps.INFO_ROLE_MASK
            cell = bpfmaps.info_job(info) * _N_ROLES + role
            if ts == 0 or tid == 0 or role >= _N_ROLES:
                continue
            if cell >= _N_CELLS:  # a slot beyond the counters: nobody's to credit
                continue
            running = max(now - ts, 0)
            if old is not None:  # the cell may have changed with the table: move it all
                delta[old[1]] -= old[2]
            delta[cell] += running
            self._credit[cpu] = (ts, cell, running)
        return delta

    def close(self) -> None:
        """Nothing to do: the job's slot goes back with its lease (:meth:`Lease.release`)."""

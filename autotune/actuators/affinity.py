"""CPU affinity per role: ``sched_setaffinity`` on every thread of the role, new threads too.

A ``cpus.<role>`` share becomes a set of whole cores (:func:`allocate`): the trainer takes them
from the low end of the pool, the loaders from the high end, so at shares that add up to at most
1 they do not overlap, and SMT siblings are never split between roles unless asked. Every role
keeps at least one core; other processes on the node are not restricted at all, so ``other``
keeps every CPU. cpuset cgroups are not used: they would have to follow threads that move
between roles, and they restrict the whole node's view of the job.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from autotune.actuators.backend import Availability, Backend, Context, Notice, Stuck
from autotune.actuators.decisions import Decision
from autotune.actuators.journal import Journal, JournalEntry, Record
from autotune.actuators.threads import PerThread, ThreadEntry, ThreadValues, replay_threads
from autotune.knobs import Family, by_name
from autotune.knobs.readback import cpu_pool, cpu_values, thread_affinity
from autotune.roles import Role
from autotune.system import cgroups, topology
from autotune.target import Members


class AffinityEntry(ThreadEntry):
    """A process's original allowed CPUs (sorted lists)."""

    kind: Literal["affinity"] = "affinity"
    original: list[int]
    threads: dict[str, list[int]] = Field(default_factory=dict)


def allocate(
    topo: topology.Topology,
    pool: Sequence[int],
    share: float,
    high_end: bool,
    split_smt: bool = False,
) -> frozenset[int]:
    """The CPUs a role with ``share`` of the pool gets: whole cores from one end, at least one.

    Args:
        topo: the node's topology.
        pool: the CPUs the job may use (online, within its cpuset).
        share: the knob's value (a share of the pool).
        high_end: take cores from the highest CPU numbers (loaders) instead of the lowest.
        split_smt: count single CPUs instead of cores (SMT siblings may then go to two roles).
    """
    allowed = set(pool)
    if split_smt:
        units: list[tuple[int, ...]] = [(c,) for c in sorted(allowed)]
    else:
        cores = [tuple(c for c in core if c in allowed) for core in topo.cores]
        units = sorted((core for core in cores if core), key=min)
    if not units:
        raise Stuck("no online CPU in the job's cpuset")
    # Round half up: a share of 0.75 of 2 cores is 2 cores, not 1.
    k = max(1, min(len(units), math.floor(share * len(units) + 0.5)))
    chosen = units[-k:] if high_end else units[:k]
    return frozenset(c for unit in chosen for c in unit)


class AffinityValues(ThreadValues[frozenset[int]]):
    """A thread's allowed CPUs."""

    entry = AffinityEntry

    def __init__(self, pool: Sequence[int]) -> None:
        self.pool = frozenset(pool)

    def get(self, tid: int) -> frozenset[int] | None:
        return thread_affinity(tid)

    def put(self, tid: int, value: frozenset[int]) -> None:
        os.sched_setaffinity(tid, value)

    def encode(self, value: frozenset[int]) -> Any:
        return sorted(value)

    def decode(self, raw: Any) -> frozenset[int]:
        return frozenset(int(c) for c in raw)

    def number(self, value: frozenset[int]) -> float:
        return len(value & self.pool) / max(1, len(self.pool))

    def show(self, value: frozenset[int]) -> str:
        return f"CPUs {topology.format_cpulist(sorted(value))}"


class Affinity(Backend):
    """``cpus.trainer`` and ``cpus.loader`` through ``sched_setaffinity``.

    Args:
        journal: the session's journal.
        ctx: ``trainer_pid`` (the origin, and whose cpuset bounds the pool) and ``split_smt``
            (allow SMT siblings to go to different roles) are used.
    """

    name = "sched_setaffinity"
    family = Family.AFFINITY
    entry = AffinityEntry

    def __init__(self, journal: Journal, ctx: Context) -> None:
        super().__init__(journal, ctx)
        self.topo = topology.read()
        self.pool = cpu_pool(ctx.trainer_pid)
        self.split_smt = ctx.split_smt
        knobs = {r: k for k, r in self.roles.items()}
        self.threads = PerThread(journal, AffinityValues(self.pool), knobs)
        self.threads.begin(ctx.trainer_pid)

    @classmethod
    def available(cls, mounts: cgroups.CgroupMounts) -> Availability:
        return Availability(True, "per thread, following new threads")

    def cpus_for(self, knob: str, share: float) -> frozenset[int]:
        """The CPU set a share of ``knob`` means on this node."""
        role = self.roles[knob]
        return allocate(self.topo, self.pool, share, role is Role.LOADER, self.split_smt)

    def set(self, knob: str, value: float, members: Members) -> str:
        by_name(knob).check(value)
        role = self.roles[knob]
        cpus = self.cpus_for(knob, value)
        pids = members.trainer_pids if role is Role.TRAINER else members.loader_pids
        n = self.threads.assign(role, cpus, pids)
        return f"CPUs {topology.format_cpulist(sorted(cpus))} on {n} thread(s)"

    def read(self, members: Members) -> dict[str, float]:
        return cpu_values(members, self.pool)

    def follow(self, members: Members) -> list[Notice]:
        notices = [
            self.threads.follow(Role.TRAINER, members.trainer_pids),
            self.threads.follow(Role.LOADER, members.loader_pids),
        ]
        return [n for n in notices if n is not None]

    @classmethod
    def restore(cls, record: Record, entries: Sequence[JournalEntry]) -> list[Decision]:
        """Restore the affinity of every thread that still has CPUs we gave it."""
        return replay_threads(record, entries, AffinityValues(cpu_pool()), cls.roles)

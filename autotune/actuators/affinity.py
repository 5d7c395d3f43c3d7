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
from typing import Any

from autotune.actuators.decisions import Decision
from autotune.actuators.family import Family, Notice, Stuck
from autotune.actuators.journal import Journal, Session
from autotune.actuators.threads import PerThread, ThreadValues, replay_threads
from autotune.knobs import by_name
from autotune.knobs.readback import cpu_pool, thread_affinity
from autotune.roles import Role
from autotune.system import topology
from autotune.target import Members

KNOBS = {"cpus.trainer": Role.TRAINER, "cpus.loader": Role.LOADER}
KIND = "affinity"


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

    kind = KIND

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


class Affinity(Family):
    """``cpus.trainer`` and ``cpus.loader``.

    Args:
        journal: the session's journal.
        trainer_pid: the target's first process (the origin, and whose cpuset bounds the pool).
        split_smt: allow SMT siblings to go to different roles.
    """

    knobs = tuple(KNOBS)

    def __init__(self, journal: Journal, trainer_pid: int, split_smt: bool = False) -> None:
        super().__init__(journal)
        self.topo = topology.read()
        self.pool = cpu_pool(trainer_pid)
        self.split_smt = split_smt
        self.threads = PerThread(
            journal, AffinityValues(self.pool), {r: k for k, r in KNOBS.items()}
        )
        self.threads.begin(trainer_pid)

    def cpus_for(self, knob: str, share: float) -> frozenset[int]:
        """The CPU set a share of ``knob`` means on this node."""
        role = KNOBS[knob]
        return allocate(self.topo, self.pool, share, role is Role.LOADER, self.split_smt)

    def set(self, knob: str, value: float, members: Members) -> str:
        by_name(knob).check(value)
        role = KNOBS[knob]
        cpus = self.cpus_for(knob, value)
        pids = members.trainer_pids if role is Role.TRAINER else members.loader_pids
        n = self.threads.assign(role, cpus, pids)
        return f"CPUs {topology.format_cpulist(sorted(cpus))} on {n} thread(s)"

    def follow(self, members: Members) -> list[Notice]:
        notices = [
            self.threads.follow(Role.TRAINER, members.trainer_pids),
            self.threads.follow(Role.LOADER, members.loader_pids),
        ]
        return [n for n in notices if n is not None]


def replay(session: Session) -> list[Decision]:
    """Restore the affinity of every thread that still has CPUs we gave it."""
    return replay_threads(session, AffinityValues(cpu_pool()), KNOBS)

"""CPU weight per role as nice values: the weights backend of a node without a cpu controller.

Each thread of a role gets the nice value whose CFS weight is nearest the multiplier
(:func:`~autotune.knobs.readback.nice_for_factor`), per thread, followed like affinity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from autotune.actuators.backend import Availability, Backend, Context, Notice
from autotune.actuators.decisions import Decision
from autotune.actuators.journal import Journal, JournalEntry, Record
from autotune.actuators.threads import PerThread, ThreadEntry, ThreadValues, replay_threads
from autotune.knobs import Family
from autotune.knobs.readback import nice_factor, nice_for_factor, thread_nice, weight_values
from autotune.roles import Role
from autotune.system import cgroups
from autotune.target import Members


class NiceEntry(ThreadEntry):
    """A process's original nice value."""

    kind: Literal["nice"] = "nice"
    original: int
    threads: dict[str, int] = Field(default_factory=dict)


class NiceValues(ThreadValues[int]):
    """A thread's nice value."""

    entry = NiceEntry

    def get(self, tid: int) -> int | None:
        return thread_nice(tid)

    def put(self, tid: int, value: int) -> None:
        os.setpriority(os.PRIO_PROCESS, tid, value)

    def encode(self, value: int) -> Any:
        return value

    def decode(self, raw: Any) -> int:
        return int(raw)

    def number(self, value: int) -> float:
        return nice_factor(value)

    def show(self, value: int) -> str:
        return f"nice {value}"


class NiceWeights(Backend):
    """``weight.<role>`` as the nice value of every thread of the role."""

    name = "nice"
    family = Family.WEIGHTS
    entry = NiceEntry

    def __init__(self, journal: Journal, ctx: Context) -> None:
        super().__init__(journal, ctx)
        self.threads = PerThread(journal, NiceValues(), {r: k for k, r in self.roles.items()})
        self.threads.begin(ctx.trainer_pid)

    @classmethod
    def available(cls, mounts: cgroups.CgroupMounts) -> Availability:
        return Availability(True, "setpriority nice values")

    def set(self, knob: str, value: float, members: Members) -> str:
        role = self.roles[knob]
        nice = nice_for_factor(value)
        pids = members.trainer_pids if role is Role.TRAINER else members.loader_pids
        n = self.threads.assign(role, nice, pids)
        return f"nice {nice} on {n} thread(s)"

    def read(self, members: Members) -> dict[str, float]:
        return weight_values(members, self.ctx.mounts, self.ctx.cgroup_parent)

    def follow(self, members: Members) -> list[Notice]:
        notices = [
            self.threads.follow(Role.TRAINER, members.trainer_pids),
            self.threads.follow(Role.LOADER, members.loader_pids),
        ]
        return [n for n in notices if n is not None]

    @classmethod
    def restore(cls, record: Record, entries: Sequence[JournalEntry]) -> list[Decision]:
        """Restore the nice value of every thread that still has one we gave it."""
        return replay_threads(record, entries, NiceValues(), cls.roles)

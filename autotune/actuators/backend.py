"""The backend interface: one way of acting on the knobs of one family on this node.

A backend (bpftune's tuner, TuneD's plugin) says whether this node has it and why
(:meth:`Backend.available`), applies a ladder value (:meth:`Backend.set`: journal the original
first, write, read back, raise :class:`Stuck` when the value did not stick), reads its knobs back
(:meth:`Backend.read`), follows the job (:meth:`Backend.follow`) and restores a session from its
own typed journal entries (:meth:`Backend.restore`), on a normal exit and after a crash alike.
The registry (:mod:`autotune.actuators.registry`) lists them, chooses one per family and routes
each journal entry to the backend whose :attr:`Backend.entry` it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from autotune.actuators.decisions import Decision
from autotune.actuators.journal import Journal, JournalEntry, Record
from autotune.knobs import Family, of_family
from autotune.roles import Role
from autotune.system import cgroups
from autotune.target import Members


class Stuck(Exception):
    """A write that could not be made or did not stick: the session disables the knob."""


def write_int(path: Path, value: int) -> bool:
    """Write an integer to a sysfs or cgroup file and read it back; False when the file is gone.

    Raises:
        Stuck: the write failed, or the file reads back another value.
    """
    try:
        path.write_text(str(value))
        got = path.read_text().strip()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise Stuck(f"cannot write {path}: {e.strerror}") from e
    if got != str(value):
        raise Stuck(f"{path} reads back {got} after writing {value}")
    return True


@dataclass(frozen=True)
class Notice:
    """Something :meth:`Backend.follow` found: a knob to give up.

    Attributes:
        knob: the knob.
        event: ``yield`` (changed behind our back) or ``stuck`` (can no longer be written).
        reason: one line for the decision log.
        found: the value found, on the knob's scale, when known.
    """

    knob: str
    event: str
    reason: str
    found: float | None = None


@dataclass(frozen=True)
class Availability:
    """Whether a backend can act on this node, and why (or why not): one line for doctor."""

    ok: bool
    reason: str


class Channel(Protocol):
    """What the prefetch backend needs of the job's progress server (``ProgressServer``)."""

    clients: set[str]
    prefetch_ack: int | None

    def set_prefetch(self, depth: int) -> int: ...


@dataclass(frozen=True)
class Context:
    """What a backend needs to start acting for one session.

    Attributes:
        mounts: the node's cgroup layout.
        cgroup_parent: the cgroup the tuner creates its session cgroups under.
        session_id: this session's name (a cgroup directory name).
        trainer_pid: the target's first process.
        devices: block devices for read-ahead; None: found from the job's open files.
        progress: the job's progress channel, when it integrates (prefetch depth).
        split_smt: let SMT siblings go to different roles (affinity).
        readahead_open_files: a new read-ahead reaches the files the job holds open too, not
            only those it opens afterwards (autotune.system.openfiles).
    """

    mounts: cgroups.CgroupMounts
    cgroup_parent: str
    session_id: str
    trainer_pid: int
    devices: Sequence[str] | None = None
    progress: Channel | None = None
    split_smt: bool = False
    readahead_open_files: bool = True


class Backend(ABC):
    """The knobs of one family, acted on one way.

    Class attributes a backend sets:
        name: what doctor and ``--weights-backend`` call it (``cgroup1``).
        family: the knobs it serves (all of the family's knobs in the table).
        entry: the journal entry type it writes and restores.

    Derived from the knob table: :attr:`knobs` (names) and :attr:`roles` (knob → role).
    """

    name: ClassVar[str]
    family: ClassVar[Family]
    entry: ClassVar[type[JournalEntry]]
    knobs: ClassVar[tuple[str, ...]] = ()
    roles: ClassVar[dict[str, Role]] = {}

    def __init_subclass__(cls, **kw: object) -> None:
        super().__init_subclass__(**kw)
        if "family" in cls.__dict__:  # the knob table is the one list of a family's knobs
            cls.knobs = tuple(k.name for k in of_family(cls.family))
            cls.roles = {k.name: k.role for k in of_family(cls.family)}

    def __init__(self, journal: Journal, ctx: Context) -> None:
        self.journal = journal
        self.ctx = ctx

    @classmethod
    def knob_for(cls, role: Role) -> str:
        """The family's knob acting on ``role``."""
        return next(k for k, r in cls.roles.items() if r is role)

    @classmethod
    @abstractmethod
    def available(cls, mounts: cgroups.CgroupMounts) -> Availability:
        """Whether this node has the backend, with the reason (one line)."""

    @abstractmethod
    def set(self, knob: str, value: float, members: Members) -> str:
        """Write ``value`` (a ladder value) to ``knob`` for the members; return what was touched.

        Raises:
            Stuck: the write failed or did not read back.
        """

    @abstractmethod
    def read(self, members: Members) -> dict[str, float]:
        """The family's knob values in effect now (knobs that cannot be known are left out)."""

    @abstractmethod
    def follow(self, members: Members) -> list[Notice]:
        """Put new threads and processes under the settings; report knobs to give up."""

    def inert(self, knob: str, members: Members) -> str:
        """Why a change of ``knob`` would act on nothing now, in a few words ("" when it would
        act): read-ahead before the job has opened a file on a block device, say. The tuner then
        keeps such a knob where it is rather than log a change nobody feels and spend a canary
        judging it. Called once a second or so; cheap."""
        return ""

    @classmethod
    @abstractmethod
    def restore(cls, record: Record, entries: Sequence[JournalEntry]) -> list[Decision]:
        """Put back what a session's entries of :attr:`entry`'s kind changed.

        Leaves alone what someone else changed after us; raises nothing for what is gone.
        """

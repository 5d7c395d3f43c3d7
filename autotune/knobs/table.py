"""The table of knobs.

Each knob acts on one role through one :class:`Family` of backends (``weights``, ``affinity``,
``readahead``, ``prefetch``: the actuators pick one backend per family), and offers the agent a
*ladder*: the discrete values it may choose, ordered. The actuators refuse any value not on the
ladder (:meth:`Knob.check`); the env's action for a knob is an index into its ladder.

Why these ladders:

* **weights** are multipliers of the kernel's default weight (cgroup v1 ``cpu.shares`` 1024, v2
  ``cpu.weight`` 100, nice 0), from 0.25× to 8×. 8× was enough, measured on this project's VM,
  to bring a PyTorch job beside ``stress-ng --cpu 2`` from ≈51% back to ≈90% of its quiet
  throughput; more would starve the node's own daemons.
* **cpus** is the share of the node's CPUs a role may run on (``sched_setaffinity``), a fraction
  so that one policy fits nodes of any size; it is rounded to whole cores, at least one.
* **readahead** is the block device's ``read_ahead_kb``, 16 KiB to 16 MiB in powers of two: below
  16 KiB sequential reads collapse (≈73 MB/s at 0 KiB on this VM), above 16 MiB the kernel clamps.
* **prefetch** is the DataLoader's ``prefetch_factor`` (batches in flight per worker), for jobs
  that integrate (``autotune.client``); PyTorch's default is 2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from autotune.errors import UserError
from autotune.roles import Role

# Bumped whenever a knob is added or removed, or a ladder changes: exported policies record it.
KNOB_TABLE_VERSION = 1
# read_ahead_kb where the machine's own value is not known (no block device to read it from, a
# recording that did not store it): the common kernel default, VM_READAHEAD_PAGES (128 KiB).
READAHEAD_DEFAULT_KB = 128.0


class KnobRangeError(UserError):
    """A value outside a knob's ladder."""


class Family(StrEnum):
    """What a knob acts through; the actuators choose one backend per family on each node."""

    WEIGHTS = "weights"  # CPU weight: sched_ext map, cgroup v2/v1, or nice
    AFFINITY = "affinity"  # allowed CPUs: sched_setaffinity per thread
    READAHEAD = "readahead"  # block devices' read_ahead_kb
    PREFETCH = "prefetch"  # the DataLoader's depth, over the progress channel


@dataclass(frozen=True)
class Knob:
    """One knob.

    Attributes:
        name: unique name, ``<family-ish>.<role>`` (``weight.trainer``) or ``readahead``.
        family: the backend family it acts through.
        role: the role it acts on.
        unit: what a ladder value means.
        ladder: the values the agent may choose, ascending.
        default: the ladder value that means "as the machine had it", or None when the default
            is read from the machine at start (``default_source`` says from where).
        default_source: where the default comes from.
        read_back: how the actuator reads the value back to verify a write.
        requires: a condition for the knob to act (``integration``: the job uses the client).
        help: one line for CLI help and docs.
    """

    name: str
    family: Family
    role: Role
    unit: str
    ladder: tuple[float, ...]
    default: float | None
    default_source: str
    read_back: str
    help: str
    requires: str | None = None

    @property
    def bounds(self) -> tuple[float, float]:
        return self.ladder[0], self.ladder[-1]

    @property
    def levels(self) -> int:
        return len(self.ladder)

    @property
    def column(self) -> str:
        """The knob's column name in traces (``knob_weight_trainer``)."""
        return "knob_" + self.name.replace(".", "_")

    def check(self, value: float) -> float:
        """Return ``value`` if it is on the ladder; else raise :class:`KnobRangeError`."""
        for v in self.ladder:
            if abs(v - value) <= 1e-9 * max(1.0, abs(v)):
                return v
        raise KnobRangeError(
            f"{self.name}={value:g} is not allowed; choose one of "
            f"{', '.join(f'{v:g}' for v in self.ladder)} ({self.unit})"
        )

    @functools.cached_property
    def _rungs(self) -> dict[float, int]:
        """Ladder value → index (``index`` runs for every knob in every interval)."""
        return {v: i for i, v in enumerate(self.ladder)}

    def index(self, value: float) -> int:
        """The ladder index nearest to ``value`` (log-nearest: ladders are geometric or short)."""
        exact = self._rungs.get(value)  # the common case: a value read off the ladder
        if exact is not None:
            return exact
        best, dist = 0, float("inf")
        for i, v in enumerate(self.ladder):
            d = abs(v - value) / max(v, 1e-12) if value > 0 else abs(v - value)
            if d < dist:
                best, dist = i, d
        return best

    def value(self, index: int) -> float:
        """The ladder value at ``index``; raises :class:`KnobRangeError` outside the ladder."""
        if not 0 <= index < len(self.ladder):
            raise KnobRangeError(f"{self.name}: level {index} is outside 0..{len(self.ladder) - 1}")
        return self.ladder[index]


_WEIGHT_LADDER = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_CPU_LADDER = (0.25, 0.5, 0.75, 1.0)
_READAHEAD_LADDER = tuple(float(16 << i) for i in range(11))  # 16 KiB … 16 MiB
_PREFETCH_LADDER = (1.0, 2.0, 4.0, 8.0)

KNOBS: tuple[Knob, ...] = (
    Knob(
        name="weight.trainer",
        family=Family.WEIGHTS,
        role=Role.TRAINER,
        unit="× the default CPU weight",
        ladder=_WEIGHT_LADDER,
        default=1.0,
        default_source="the kernel's default weight (cpu.shares 1024, cpu.weight 100, nice 0)",
        read_back="cpu.shares / cpu.weight of the role's cgroup, or getpriority",
        help="CPU weight of the trainer against the rest of the node",
    ),
    Knob(
        name="weight.loader",
        family=Family.WEIGHTS,
        role=Role.LOADER,
        unit="× the default CPU weight",
        ladder=_WEIGHT_LADDER,
        default=1.0,
        default_source="the kernel's default weight (cpu.shares 1024, cpu.weight 100, nice 0)",
        read_back="cpu.shares / cpu.weight of the role's cgroup, or getpriority",
        help="CPU weight of the data-loader workers against the rest of the node",
    ),
    Knob(
        name="cpus.trainer",
        family=Family.AFFINITY,
        role=Role.TRAINER,
        unit="share of the node's CPUs",
        ladder=_CPU_LADDER,
        default=1.0,
        default_source="all online CPUs",
        read_back="sched_getaffinity of every thread of the role",
        help="share of the node's CPUs the trainer may run on (lowest cores first)",
    ),
    Knob(
        name="cpus.loader",
        family=Family.AFFINITY,
        role=Role.LOADER,
        unit="share of the node's CPUs",
        ladder=_CPU_LADDER,
        default=1.0,
        default_source="all online CPUs",
        read_back="sched_getaffinity of every thread of the role",
        help="share of the node's CPUs the loaders may run on (highest cores first)",
    ),
    Knob(
        name="readahead",
        family=Family.READAHEAD,
        role=Role.TRAINER,
        unit="KiB (read_ahead_kb)",
        ladder=_READAHEAD_LADDER,
        default=None,
        default_source="read_ahead_kb of the job's block devices when the tuner starts",
        read_back="/sys/block/<dev>/queue/read_ahead_kb",
        help="read-ahead of the block devices the job reads from",
    ),
    Knob(
        name="prefetch.loader",
        family=Family.PREFETCH,
        role=Role.LOADER,
        unit="batches in flight per DataLoader worker",
        ladder=_PREFETCH_LADDER,
        default=2.0,
        default_source="PyTorch's DataLoader default prefetch_factor",
        read_back="the job's acknowledgement over the client channel",
        help="DataLoader prefetch depth (jobs that use autotune.client only)",
        requires="integration",
    ),
)

_BY_NAME = {k.name: k for k in KNOBS}


def by_name(name: str) -> Knob:
    """Look a knob up; an unknown name is a :class:`~autotune.errors.UserError`."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UserError(f"unknown knob {name!r}; knobs: {', '.join(_BY_NAME)}") from None


def default_values(readahead_kb: float = READAHEAD_DEFAULT_KB) -> dict[str, float]:
    """The default setting by knob name, given the machine's read-ahead at start."""
    return {k.name: readahead_kb if k.default is None else k.default for k in KNOBS}


def of_family(family: Family) -> tuple[Knob, ...]:
    """The knobs acting through ``family``, in table order."""
    return tuple(k for k in KNOBS if k.family is family)


def default_levels(readahead_kb: float) -> tuple[int, ...]:
    """Ladder indices of the default setting, given the machine's read-ahead at start."""
    return tuple(k.index(readahead_kb if k.default is None else k.default) for k in KNOBS)


def describe() -> list[dict[str, str]]:
    """The table as rows of text, for CLI help and docs."""
    return [
        {
            "knob": k.name,
            "role": str(k.role),
            "family": str(k.family),
            "unit": k.unit,
            "ladder": ", ".join(f"{v:g}" for v in k.ladder),
            "default": f"{k.default:g}" if k.default is not None else k.default_source,
            "help": k.help,
        }
        for k in KNOBS
    ]

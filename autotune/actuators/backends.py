"""Which backend each knob family uses on this node, chosen once at start.

Weights: our sched_ext scheduler when it is loaded, else cgroup v2 ``cpu.weight``, else cgroup v1
``cpu.shares``, else ``setpriority`` nice values. Affinity: cpuset cgroups are not used for
threads that move between roles, so ``sched_setaffinity`` per thread. Prefetch: the block
devices' ``read_ahead_kb``.
"""

from __future__ import annotations

from dataclasses import dataclass

from autotune.actuators import scx as scx_scheduler
from autotune.errors import UserError
from autotune.system import cgroups

SCX_PIN_DIR = scx_scheduler.PIN_DIR


@dataclass(frozen=True)
class Choice:
    """A backend chosen for a knob family, and why."""

    family: str
    backend: str
    reason: str


# Weights backend → the class that implements it ("module:attr", imported when chosen). The
# sched_ext one is built with its scheduler; until its module exists the cgroup backends are used.
WEIGHTS_IMPL: dict[str, str] = {
    "sched_ext": "autotune.actuators.weights_scx:ScxWeights",
    "cgroup2": "autotune.actuators.weights:CgroupWeights",
    "cgroup1": "autotune.actuators.weights:CgroupWeights",
    "nice": "autotune.actuators.weights:NiceWeights",
}


def weights(
    mounts: cgroups.CgroupMounts | None = None,
    prefer: str | None = None,
    sched_ext: bool = True,
) -> Choice:
    """Pick the weights backend.

    Args:
        mounts: the node's cgroup layout (read when None).
        prefer: a backend to use instead of the best one (``nice`` to force nice values); it
            must be available here.
        sched_ext: consider the sched_ext backend.

    Raises:
        UserError: ``prefer`` names an unknown backend or one this node cannot use.
    """
    m = mounts or cgroups.mounts()
    # Ours, running now: sched_ext enabled with our ops, and its link and maps pinned.
    ours = scx_scheduler.status(SCX_PIN_DIR)
    available: dict[str, str] = {}
    if sched_ext and ours.loaded:
        available["sched_ext"] = "our sched_ext scheduler is loaded"
    why_not_scx = ours.reason or "not asked to use sched_ext"
    if m.v2 is not None and "cpu" in m.v2_controllers:
        available["cgroup2"] = f"cgroup v2 cpu.weight ({why_not_scx})"
    if "cpu" in m.v1:
        available["cgroup1"] = f"cgroup v1 cpu.shares ({why_not_scx})"
    available["nice"] = "no cpu cgroup controller: setpriority nice values"
    if prefer is not None:
        if prefer not in WEIGHTS_IMPL:
            raise UserError(f"unknown weights backend {prefer!r}; one of {', '.join(WEIGHTS_IMPL)}")
        if prefer not in available:
            raise UserError(f"weights backend {prefer!r} is not available on this node")
        reason = "asked for" if prefer == "nice" else f"asked for: {available[prefer]}"
        return Choice("weights", prefer, reason)
    name = next(iter(available))
    return Choice("weights", name, available[name])


def affinity() -> Choice:
    """Pick the affinity backend."""
    return Choice("affinity", "sched_setaffinity", "per thread, following new threads")


def prefetch() -> Choice:
    """Pick the prefetch backend."""
    return Choice("prefetch", "read_ahead_kb", "the block devices the target reads from")

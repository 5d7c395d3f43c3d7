"""Which backend each knob family uses on this node, chosen once at start.

Weights: our sched_ext scheduler when it is loaded, else cgroup v2 ``cpu.weight``, else cgroup v1
``cpu.shares``, else ``setpriority`` nice values. Affinity: cpuset cgroups are not used for
threads that move between roles, so ``sched_setaffinity`` per thread. Prefetch: the block
devices' ``read_ahead_kb``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autotune.system import cgroups, kernel

SCX_PIN_DIR = Path("/sys/fs/bpf/autotune")


@dataclass(frozen=True)
class Choice:
    """A backend chosen for a knob family, and why."""

    family: str
    backend: str
    reason: str


def weights(mounts: cgroups.CgroupMounts | None = None) -> Choice:
    """Pick the weights backend."""
    m = mounts or cgroups.mounts()
    scx = kernel.sched_ext()
    if scx.supported and scx.state == "enabled" and (SCX_PIN_DIR / "weights").exists():
        return Choice("weights", "sched_ext", "our sched_ext scheduler is loaded")
    why_not_scx = scx.reason if not scx.supported else "our sched_ext scheduler is not loaded"
    if m.v2 is not None and "cpu" in m.v2_controllers:
        return Choice("weights", "cgroup2", f"cgroup v2 cpu.weight ({why_not_scx})")
    if "cpu" in m.v1:
        return Choice("weights", "cgroup1", f"cgroup v1 cpu.shares ({why_not_scx})")
    return Choice("weights", "nice", "no cpu cgroup controller: setpriority nice values")


def affinity() -> Choice:
    """Pick the affinity backend."""
    return Choice("affinity", "sched_setaffinity", "per thread, following new threads")


def prefetch() -> Choice:
    """Pick the prefetch backend."""
    return Choice("prefetch", "read_ahead_kb", "the block devices the target reads from")

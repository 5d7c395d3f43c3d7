"""Which cgroup hierarchies are mounted, and which controllers each offers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autotune.fsutil import read_small

PROC_MOUNTS = Path("/proc/mounts")


@dataclass(frozen=True)
class CgroupMounts:
    """The cgroup layout of this node.

    Attributes:
        v1: controller name → mount point, for cgroup v1 hierarchies (``cpu``, ``cpuset``, …).
        v2: the cgroup v2 mount point, if any.
        v2_controllers: controllers available at the v2 root (``cgroup.controllers``).
    """

    v1: dict[str, Path] = field(default_factory=dict)
    v2: Path | None = None
    v2_controllers: tuple[str, ...] = ()


def mounts(proc_mounts: Path = PROC_MOUNTS) -> CgroupMounts:
    """Parse ``/proc/mounts`` for cgroup v1 and v2 hierarchies."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in proc_mounts.read_text().splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        _, mnt, fstype, opts = parts[:4]
        if fstype == "cgroup2" and v2 is None:
            v2 = Path(mnt)
        elif fstype == "cgroup":
            for opt in opts.split(","):
                if opt in {"cpu", "cpuset", "cpuacct", "memory", "blkio", "pids", "io"}:
                    v1.setdefault(opt, Path(mnt))
    controllers: tuple[str, ...] = ()
    if v2 is not None:
        ctl = v2 / "cgroup.controllers"
        if ctl.is_file():
            controllers = tuple(ctl.read_text().split())
    return CgroupMounts(v1=v1, v2=v2, v2_controllers=controllers)


def cgroup_of(pid: int, controller: str) -> str | None:
    """The cgroup path (relative to the hierarchy root) of ``pid`` for a v1 ``controller``.

    Use ``controller=""`` for the cgroup v2 path.
    """
    text = read_small(f"/proc/{pid}/cgroup")
    if text is None:
        return None
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        if (controller == "" and ctrls == "") or controller in ctrls.split(","):
            return path
    return None

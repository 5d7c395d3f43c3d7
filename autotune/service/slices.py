"""The slice a service tunes: where it is, and which process trees under it are jobs."""

from __future__ import annotations

import os
from pathlib import Path

from autotune.errors import UserError
from autotune.fsutil import read_small
from autotune.system import cgroups
from autotune.target import exiting, ppid, start_time

Proc = tuple[int, int]  # (pid, start time): a reused PID is another process


def resolve(name: str, mounts: cgroups.CgroupMounts | None = None) -> Path:
    """The cgroup directory of ``name``: a path, or a slice name such as ``training.slice``
    (looked up under the cgroup v2 mount when it has the cpu controller, else under v1 ``cpu``).

    Raises:
        UserError: no such cgroup.
    """
    p = Path(name)
    if "/" not in name:
        m = mounts or cgroups.mounts()
        bases = []
        if m.v2 is not None and "cpu" in m.v2_controllers:
            bases.append(m.v2)
        if "cpu" in m.v1:
            bases.append(m.v1["cpu"])
        if m.v2 is not None and m.v2 not in bases:  # v2 without cpu: a slice is still there
            bases.append(m.v2)
        for base in bases:
            if (base / name / "cgroup.procs").is_file():
                return base / name
        raise UserError(
            f"no cgroup named {name} under {', '.join(map(str, bases)) or '/sys/fs/cgroup'}"
        )
    if not (p / "cgroup.procs").is_file():
        raise UserError(f"{p} is not a cgroup directory (no cgroup.procs)")
    return p.resolve()


def key(path: Path) -> str:
    """A file name for the slice (systemd's escaping, roughly: ``/`` becomes ``-``)."""
    return str(path).strip("/").replace("-", "_").replace("/", "-") or "root"


def pids(path: Path) -> set[int] | None:
    """Every process in the cgroup and the cgroups below it; None when the cgroup is gone."""
    if not path.is_dir():
        return None
    out: set[int] = set()
    for folder, _dirs, files in os.walk(path):
        if "cgroup.procs" in files:
            out.update(int(x) for x in (read_small(f"{folder}/cgroup.procs") or "").split())
    return out


def descends_from(pid: int, roots: set[int]) -> bool:
    """Whether ``pid`` is one of ``roots`` or below one of them in the process tree."""
    seen = 0
    p: int | None = pid
    while p is not None and p > 1 and seen < 4096:
        if p in roots:
            return True
        p = ppid(p)
        seen += 1
    return False


def new_jobs(inside: set[int], tuned: set[int], exclude: set[int]) -> list[Proc]:
    """The roots of process trees under the slice that no tuned job holds.

    A root is a process whose parent is outside the slice; a process below a tuned job's root is
    that job's even when our weights moved its parent out of the slice.
    """
    out: list[Proc] = []
    for pid in sorted(inside):
        if pid in tuned:  # a tuned job's root (the commonest case: nothing to read)
            continue
        if pid in exclude or ppid(pid) in inside or exiting(pid):
            continue
        if descends_from(pid, tuned | exclude):
            continue
        st = start_time(pid)
        if st is not None:
            out.append((pid, st))
    return out

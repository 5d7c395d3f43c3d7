"""Read the knob values in effect for a target, writing nothing.

:func:`read_knobs` is what the recorder logs when it does not explore, and what the actuators
use to verify their own writes, so both see one definition of each knob's value:

* ``weight.<role>``: the role's cgroup weight (v2 ``cpu.weight`` / 100 or v1 ``cpu.shares`` /
  1024; in one of autotune's own role cgroups, divided by the processes in it, because the tuner
  gives a role ``multiplier × default × processes``; a v2 cgroup whose parent keeps the cpu
  controller to itself has no ``cpu.weight`` and reads its nearest ancestor's) times the nice
  weight of the role's first process (kernel ``sched_prio_to_weight`` / 1024), snapped to the
  ladder;
* ``cpus.<role>``: how many CPUs of the pool (online CPUs within the job's cpuset) the role's
  threads may run on together, as a share of the pool, snapped to the ladder;
* ``readahead``: ``read_ahead_kb`` of the first (by name) block device the target has files open
  on (loop devices included), or of the disk holding its working directory; as read, in KiB;
* ``prefetch.loader``: the job's last acknowledgement over the progress channel, when known.

An empty loader role reports what a new loader would inherit: the trainer's values. A knob whose
value cannot be known (no device, no acknowledgement, the target gone) is left out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from autotune.fsutil import read_small
from autotune.knobs.table import by_name
from autotune.system import blockdev, cgroups, topology
from autotune.system.openfiles import held_files
from autotune.target import Members, Target, exiting

# The kernel's sched_prio_to_weight (kernel/sched/core.c), nice -20 … 19: CFS gives a thread of
# nice n this weight; nice 0 is 1024 and each step is ~1.25×.
NICE_TO_WEIGHT: tuple[int, ...] = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip
NICE_MIN = -20
V1_DEFAULT_SHARES = 1024
V2_DEFAULT_WEIGHT = 100
DEFAULT_CGROUP_PARENT = "autotune"


class PrefetchAck(Protocol):
    """What the progress channel offers: the depth the job last said it applied."""

    prefetch_ack: int | None


def nice_factor(nice: int) -> float:
    """The CFS weight of ``nice`` as a multiple of nice 0's."""
    return NICE_TO_WEIGHT[min(max(nice, NICE_MIN), 19) - NICE_MIN] / NICE_TO_WEIGHT[-NICE_MIN]


def nice_for_factor(factor: float) -> int:
    """The nice value whose CFS weight is nearest ``factor`` × nice 0's (log-nearest)."""
    want = math.log(factor * NICE_TO_WEIGHT[-NICE_MIN])
    best = min(range(len(NICE_TO_WEIGHT)), key=lambda i: abs(math.log(NICE_TO_WEIGHT[i]) - want))
    return best + NICE_MIN


def thread_nice(tid: int) -> int | None:
    """A thread's nice value (Linux keeps nice per thread), or None when it is gone."""
    try:
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:
        return None


def thread_affinity(tid: int) -> frozenset[int] | None:
    """The CPUs a thread may run on, or None when it is gone."""
    try:
        return frozenset(os.sched_getaffinity(tid))
    except OSError:
        return None


def _read(path: Path) -> str | None:
    text = read_small(path)
    return text.strip() if text is not None else None


def cpu_pool(pid: int | None = None, mounts: cgroups.CgroupMounts | None = None) -> tuple[int, ...]:
    """Online CPUs, within the cpuset of ``pid`` when it has one: the CPUs shares count from."""
    online = topology.parse_cpulist((topology.SYS_CPU / "online").read_text())
    if pid is None:
        return tuple(online)
    m = mounts or cgroups.mounts()
    text: str | None = None
    if "cpuset" in m.v1:
        rel = cgroups.cgroup_of(pid, "cpuset")
        if rel is not None:
            text = _read(m.v1["cpuset"] / rel.lstrip("/") / "cpuset.effective_cpus")
    elif m.v2 is not None and "cpuset" in m.v2_controllers:
        rel = cgroups.cgroup_of(pid, "")
        if rel is not None:
            text = _read(m.v2 / rel.lstrip("/") / "cpuset.cpus.effective")
    allowed = set(topology.parse_cpulist(text)) if text else set(online)
    return tuple(c for c in online if c in allowed) or tuple(online)


def cpus_share(tids: Iterable[int], pool: Sequence[int]) -> float | None:
    """The share of ``pool`` the threads may run on together, or None when none is alive."""
    union: set[int] = set()
    want = set(pool)
    seen = False
    for tid in tids:
        cpus = thread_affinity(tid)
        if cpus is not None:
            union |= cpus
            seen = True
            if want <= union:  # the whole pool (the default): no thread can add to it
                break
    if not seen or not pool:
        return None
    return len(union & want) / len(pool)


def cgroup_factor(
    pid: int, mounts: cgroups.CgroupMounts, parent: str = DEFAULT_CGROUP_PARENT
) -> float | None:
    """The weight of ``pid``'s cpu cgroup as a multiple of the default (1.0 at the root).

    In one of autotune's role cgroups (under ``/<parent>/``) the weight is per process.
    """
    if mounts.v2 is not None and "cpu" in mounts.v2_controllers:
        root, rel, name, default = mounts.v2, cgroups.cgroup_of(pid, ""), "cpu.weight", 100
    elif "cpu" in mounts.v1:
        root, rel = mounts.v1["cpu"], cgroups.cgroup_of(pid, "cpu")
        name, default = "cpu.shares", V1_DEFAULT_SHARES
    else:
        return 1.0
    if rel is None:
        return None
    if rel == "/":
        return 1.0
    own = directory = root / rel.lstrip("/")
    text = _read(directory / name)
    if text is None and name == "cpu.weight" and directory.is_dir():
        # v2: a cgroup whose parent does not pass the cpu controller down has no cpu.weight (a
        # systemd unit in a slice without CPUWeight=, say); its tasks compete as part of the
        # nearest ancestor that has one, or of the root (1×).
        holder = _v2_weight_holder(root, directory)
        if holder is None:
            return 1.0
        directory, text = holder, _read(holder / name)
    if text is None:
        return None
    factor = int(text) / default
    if rel.startswith(f"/{parent}/") and directory == own:
        procs = (_read(directory / "cgroup.procs") or "").split()
        factor /= max(1, len(procs))
    return factor


def _v2_weight_holder(root: Path, directory: Path) -> Path | None:
    """The nearest ancestor of a v2 cgroup that has a ``cpu.weight``; None: the root."""
    for d in directory.parents:
        if d == root or root not in d.parents:
            return None
        if (d / "cpu.weight").is_file():
            return d
    return None


def role_weight(
    pids: Sequence[int], mounts: cgroups.CgroupMounts, parent: str = DEFAULT_CGROUP_PARENT
) -> float | None:
    """The raw weight multiplier of a role: its first running process's cgroup × nice factors."""
    for pid in pids:
        if exiting(pid):
            continue
        cg = cgroup_factor(pid, mounts, parent)
        nice = thread_nice(pid)
        if cg is not None and nice is not None:
            return cg * nice_factor(nice)
    return None


def open_devices(pids: Iterable[int]) -> list[str]:
    """Whole-disk block devices the processes have files open on (or have open themselves).

    One ``stat`` per open file, and each distinct device number resolved to its disk once (a
    DataLoader worker holds ~100 descriptors, nearly all on one or two devices).
    """
    devnos = {dev for pid in pids for _, dev in held_files(pid)}
    found: set[str] = set()
    for dev in devnos:
        name = blockdev.disk_of_devno(os.major(dev), os.minor(dev))
        if name is not None and blockdev.device(name) is not None:
            found.add(name)
    return sorted(found)


def cwd_device(pid: int) -> str | None:
    """The disk holding a process's working directory (where relative paths read from)."""
    try:
        return blockdev.disk_of_path(f"/proc/{pid}/cwd")
    except OSError:
        return None


def readahead_kb(device: str) -> int | None:
    """``read_ahead_kb`` of a whole-disk device, or None when it is gone."""
    text = _read(blockdev.SYS_BLOCK / device / "queue" / "read_ahead_kb")
    return int(text) if text is not None else None


def _snap(name: str, raw: float | None) -> float | None:
    if raw is None:
        return None
    knob = by_name(name)
    return knob.value(knob.index(raw))


def weight_values(
    m: Members, mounts: cgroups.CgroupMounts, cgroup_parent: str = DEFAULT_CGROUP_PARENT
) -> dict[str, float]:
    """``weight.<role>`` of a snapshot of the roles (an empty loader role: the trainer's)."""
    loader_pids = m.loader_pids or m.trainer_pids
    values = {
        "weight.trainer": _snap(
            "weight.trainer", role_weight(m.trainer_pids, mounts, cgroup_parent)
        ),
        "weight.loader": _snap("weight.loader", role_weight(loader_pids, mounts, cgroup_parent)),
    }
    return {name: value for name, value in values.items() if value is not None}


def cpu_values(m: Members, pool: Sequence[int]) -> dict[str, float]:
    """``cpus.<role>`` of a snapshot of the roles (an empty loader role: the trainer's)."""
    loader_tids = m.loader_tids or m.trainer_tids
    values = {
        "cpus.trainer": _snap("cpus.trainer", cpus_share(m.trainer_tids, pool)),
        "cpus.loader": _snap("cpus.loader", cpus_share(loader_tids, pool)),
    }
    return {name: value for name, value in values.items() if value is not None}


def readahead_values(devices: Sequence[str]) -> dict[str, float]:
    """``readahead``: ``read_ahead_kb`` of the first of ``devices`` that is still there."""
    for dev in devices:
        kb = readahead_kb(dev)
        if kb is not None:
            return {"readahead": float(kb)}
    return {}


def prefetch_values(prefetch: PrefetchAck | None) -> dict[str, float]:
    """``prefetch.loader``: the job's last acknowledged depth, when there is one."""
    if prefetch is None or prefetch.prefetch_ack is None:
        return {}
    return {"prefetch.loader": float(prefetch.prefetch_ack)}


def read_members(
    m: Members,
    *,
    mounts: cgroups.CgroupMounts | None = None,
    pool: Sequence[int] | None = None,
    devices: Sequence[str] | None = None,
    prefetch: PrefetchAck | None = None,
    cgroup_parent: str = DEFAULT_CGROUP_PARENT,
) -> dict[str, float]:
    """:func:`read_knobs` for a snapshot of the roles."""
    mounts = mounts or cgroups.mounts()
    if pool is None:
        pool = cpu_pool(m.trainer_pids[0] if m.trainer_pids else None, mounts)
    devs = list(devices) if devices is not None else open_devices(m.all_pids)
    if not devs and devices is None and m.trainer_pids:
        cwd = cwd_device(m.trainer_pids[0])
        devs = [cwd] if cwd else []
    return {
        **weight_values(m, mounts, cgroup_parent),
        **cpu_values(m, pool),
        **readahead_values(devs),
        **prefetch_values(prefetch),
    }


def read_knobs(
    target: Target,
    *,
    devices: Sequence[str] | None = None,
    prefetch: PrefetchAck | None = None,
    cgroup_parent: str = DEFAULT_CGROUP_PARENT,
) -> dict[str, float]:
    """The knob values in effect for ``target`` now; writes nothing.

    Args:
        target: the job.
        devices: block devices to report read-ahead for; default: found from its open files,
            else the disk of its working directory.
        prefetch: the progress channel (``ProgressServer``), when the job integrates.
        cgroup_parent: the cgroup autotune creates role cgroups under (``Settings.cgroup_parent``).

    Returns:
        knob name → value; knobs that cannot be known now are left out.
    """
    return read_members(
        target.members(), devices=devices, prefetch=prefetch, cgroup_parent=cgroup_parent
    )

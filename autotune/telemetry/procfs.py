"""The /proc fallback: the same role and block counters without BPF, where /proc has them.

Used when the tuner is not root or BPF does not load. What it fills and from where:

=====================  =============================================================================
``oncpu_ns``           trainer, loader: utime + stime of ``/proc/<pid>/stat`` (the process's,
                       its exited threads included); other: ``/proc/stat`` busy time less the
                       job's (both in clock ticks)
``runq_wait_ns``       trainer, loader: ``/proc/<pid>/task/<tid>/schedstat`` (run_delay)
``nvcsw``, ``nivcsw``  trainer, loader: ``task/<tid>/sched`` (or ``status`` without it)
``migrations``         trainer, loader: ``task/<tid>/sched`` (``se.nr_migrations``), when present
``threads``            trainer, loader: the threads listed; other: ``/proc/loadavg`` less the job's
``majflt``             ``/proc/<pid>/stat`` and ``/proc/vmstat`` (BPF: the major-fault event)
block counters         ``/proc/diskstats``, per whole disk
=====================  =============================================================================

The rest (run-queue histograms, block latency histograms, page-cache and readahead counters, and
other's waits, switches and migrations) is named in ``Sample.missing``, never a zero.
A thread that exits between two reads loses its last partial interval of waits and switches; a
process that exits, its last partial interval of everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from autotune.fsutil import read_small
from autotune.roles import ROLE_INDEX, ROLES, Role
from autotune.system.blockdev import SYS_BLOCK
from autotune.target import Members, Target, threads
from autotune.telemetry import procread
from autotune.telemetry.sample import (
    BLOCK_COUNTERS,
    N_SLOTS,
    B,
    BlockDeviceStats,
    C,
    Counts,
    zeros_hist,
    zeros_roles,
)
from autotune.telemetry.sched import SchedReading

# Per-thread cumulative values, in this order, and the role counter each one feeds.
_THREAD_FIELDS = ("runq_wait_ns", "nvcsw", "nivcsw", "migrations")
_THREAD_COLS = [C[name] for name in _THREAD_FIELDS]
_SCHED_KEYS = ("nr_voluntary_switches", "nr_involuntary_switches", "se.nr_migrations")
_STATUS_KEYS = ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
_TRAINER, _LOADER, _OTHER = (ROLE_INDEX[r] for r in (Role.TRAINER, Role.LOADER, Role.OTHER))

ALWAYS_MISSING = frozenset(
    {
        "runq_hist",
        "pgcache_miss",
        "ra_sync",
        "ra_sync_pages",
        "ra_async",
        "ra_async_pages",
        "other_runq_wait_ns",
        "other_nvcsw",
        "other_nivcsw",
        "other_migrations",
    }
)


def _has_sched_file() -> bool:
    # /proc/<pid>/sched exists when the kernel has its scheduler debug interface.
    return Path(f"/proc/self/task/{os.getpid()}/sched").is_file()


class ProcRoles:
    """Role counters from /proc, for one target; walks its process tree every read."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._sched_file = _has_sched_file()
        self.missing = ALWAYS_MISSING | (set() if self._sched_file else {"migrations"})
        self._last: dict[tuple[int, int], list[int]] = {}
        self._cpu: dict[int, tuple[int, int]] = {}  # pid -> (starttime, utime + stime ticks)
        self._members = target.members()
        self._busy = procread.cpu_busy_ns()
        # The baseline: counts start now.
        self._read_threads(self._members)
        self._read_cpu(self._members)

    def _thread(self, pid: int, tid: int) -> list[int] | None:
        ss = procread.read_schedstat(pid, tid)
        if ss is None:
            return None
        base = f"/proc/{pid}/task/{tid}"  # per thread per interval: no pathlib joins
        if self._sched_file:
            kv = procread.read_keyed(f"{base}/sched", _SCHED_KEYS)
            switches = [kv.get(k, 0) for k in _SCHED_KEYS]
        else:
            kv = procread.read_keyed(f"{base}/status", _STATUS_KEYS)
            switches = [*(kv.get(k, 0) for k in _STATUS_KEYS), 0]
        return [ss[1], *switches]

    def _read_threads(self, m: Members) -> Counts:
        """Per-role deltas of the per-thread counters; remembers the new cumulative values."""
        out = np.zeros((len(ROLES), len(_THREAD_FIELDS)), np.int64)
        seen: dict[tuple[int, int], list[int]] = {}
        for pids, role in ((m.trainer_pids, _TRAINER), (m.loader_pids, _LOADER)):
            for pid in pids:
                for tid in threads(pid):
                    now = self._thread(pid, tid)
                    if now is None:
                        continue
                    # A thread first seen after open started since: count all of it.
                    last = self._last.get((pid, tid), [0] * len(now))
                    out[role] += np.maximum(np.subtract(now, last), 0)
                    seen[(pid, tid)] = now
        self._last = seen
        return out

    def _read_cpu(self, m: Members) -> Counts:
        """Per-role on-CPU ns of the job's processes since the previous read."""
        out = np.zeros(len(ROLES), np.int64)
        seen: dict[int, tuple[int, int]] = {}
        for pids, role in ((m.trainer_pids, _TRAINER), (m.loader_pids, _LOADER)):
            for pid in pids:
                st = procread.read_stat(pid)
                if st is None:
                    continue
                ticks = st.utime + st.stime
                last = self._cpu.get(pid)
                # A process first seen after open started since (or was missed): count all of it.
                base = last[1] if last is not None and last[0] == st.starttime else 0
                out[role] += max(ticks - base, 0) * procread.TICK_NS
                seen[pid] = (st.starttime, ticks)
        self._cpu = seen
        return out

    def processes(self) -> dict[int, Role]:
        """The job's processes at the last read."""
        m = self._members
        return {
            **{p: Role.LOADER for p in m.loader_pids},
            **{p: Role.TRAINER for p in m.trainer_pids},
        }

    def reconcile(self, members: Members) -> None:
        """Nothing to reconcile: every read walks the tree."""

    def read(self) -> SchedReading:
        """Counters since the previous read."""
        m = self._members = self.target.members()
        roles = zeros_roles()
        roles[:, _THREAD_COLS] = self._read_threads(m)
        roles[:, C["oncpu_ns"]] = self._read_cpu(m)
        busy = procread.cpu_busy_ns()
        if busy is not None and self._busy is not None:
            job = roles[_TRAINER, C["oncpu_ns"]] + roles[_LOADER, C["oncpu_ns"]]
            roles[_OTHER, C["oncpu_ns"]] = max(busy - self._busy - job, 0)
        self._busy = busy
        roles[_TRAINER, C["threads"]] = len(m.trainer_tids)
        roles[_LOADER, C["threads"]] = len(m.loader_tids)
        total = procread.total_threads()
        if total is not None:
            roles[_OTHER, C["threads"]] = max(total - len(m.trainer_tids) - len(m.loader_tids), 0)
        return SchedReading(roles=roles, runq_hist=zeros_hist(len(ROLES)))

    def close(self) -> None:
        """Nothing is attached."""


# Whether a name in /proc/diskstats is a whole disk (a partition's disk counts it already), by
# (name, major, minor): asked of /sys/block once per device rather than once per read.
_WHOLE_DISK: dict[tuple[str, str, str], bool] = {}
_COLS = [B["read_reqs"], B["read_bytes"], B["write_reqs"], B["write_bytes"]]


def _whole_disk(name: str, major: str, minor: str) -> bool:
    key = (name, major, minor)
    whole = _WHOLE_DISK.get(key)
    if whole is None:
        whole = _WHOLE_DISK[key] = os.path.exists(f"{SYS_BLOCK}/{name}")
    return whole


def read_diskstats() -> dict[str, Counts]:
    """Cumulative block counters of every whole disk, from ``/proc/diskstats``."""
    text = read_small("/proc/diskstats")
    if text is None:
        return {}
    out: dict[str, Counts] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 10 or not _whole_disk(f[2], f[0], f[1]):
            continue
        v = np.zeros(len(BLOCK_COUNTERS), np.int64)
        v[_COLS] = (int(f[3]), int(f[5]) * procread.SECTOR, int(f[7]), int(f[9]) * procread.SECTOR)
        out[f[2]] = v
    return out


class DiskStats:
    """Per-disk block counters from ``/proc/diskstats`` (no latency distribution there)."""

    missing = frozenset({"block_lat_hist"})

    def __init__(self) -> None:
        self._prev = read_diskstats()

    def read(self) -> dict[str, BlockDeviceStats]:
        """Per-disk I/O since the previous read; idle disks left out."""
        now = read_diskstats()
        out = {}
        for name, v in now.items():
            d = v - self._prev.get(name, 0)
            if d.any():
                out[name] = BlockDeviceStats(counters=d, lat_hist=np.zeros(N_SLOTS, np.int64))
        self._prev = now
        return out

    def close(self) -> None:
        """Nothing is attached."""

"""Readers of the /proc counters the kernel keeps anyway, for both collectors.

Each returns None (or an empty result) for a process or thread that is gone or unreadable: a
job's processes come and go between the listing and the read, and that is not an error.
The major-fault counter per role (:class:`MajorFaults`) lives here because the BPF collector uses
it too where it cannot attach its own program to the kernel's major-fault event (no tracepoint
tells a major fault from a minor one, and the kernel counts them per process: ``majflt`` in
``/proc/<pid>/stat``).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autotune.fsutil import read_small
from autotune.roles import ROLE_INDEX, ROLES, Role
from autotune.telemetry.reading import memo
from autotune.telemetry.sample import Counts

CLK_TCK = os.sysconf("SC_CLK_TCK")
TICK_NS = 1_000_000_000 // CLK_TCK
SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size


# os.open/os.read (half the cost of open() in text mode): the collector reads a stat file per
# process of the job every interval.
_read = read_small


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>[/task/<tid>]/stat`` we use."""

    state: str
    utime: int  # clock ticks
    stime: int
    majflt: int
    num_threads: int
    starttime: int  # clock ticks since boot
    nice: int = 0  # the main thread's; user time at a value above 0 is /proc/stat's ``nice``


def read_stat(pid: int, tid: int | None = None) -> ProcStat | None:
    """A process's (or one of its threads') stat line, parsed."""
    # String paths: pathlib's joins cost more than the read, once per process per interval.
    return parse_stat(_read(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"))


def parse_stat(text: str | None) -> ProcStat | None:
    """A stat line's fields (None for an empty or malformed line)."""
    if not text or ")" not in text:
        return None
    # The command may hold spaces and parentheses: fields follow the last ')'.
    f = text[text.rindex(")") + 2 :].split()
    try:
        return ProcStat(f[0], int(f[11]), int(f[12]), int(f[9]), int(f[17]), int(f[19]), int(f[16]))
    except (IndexError, ValueError):
        return None


def read_schedstat(pid: int, tid: int) -> tuple[int, int] | None:
    """A thread's (on-CPU ns, run-queue wait ns) from ``schedstat``."""
    text = _read(f"/proc/{pid}/task/{tid}/schedstat")
    if not text:
        return None
    f = text.split()
    try:
        return int(f[0]), int(f[1])
    except (IndexError, ValueError):
        return None


def read_keyed(path: Path | str, keys: tuple[str, ...], sep: str = ":") -> dict[str, int]:
    """``key<sep> value`` lines (``status``, ``sched``, ``vmstat``): the wanted keys found."""
    text = _read(path)
    out: dict[str, int] = {}
    if not text:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(sep)
        key = key.strip()
        if key in keys:
            try:
                out[key] = int(float(value.split()[0]))
            except (IndexError, ValueError):
                continue
    return out


def vmstat(key: str) -> int | None:
    """One counter of ``/proc/vmstat`` (found, not parsed line by line: read every interval)."""
    text = _read("/proc/vmstat")
    if not text:
        return None
    text = "\n" + text
    at = text.find(f"\n{key} ")
    if at < 0:
        return None
    start = at + len(key) + 2
    end = text.find("\n", start)
    try:
        return int(text[start : end if end >= 0 else None])
    except ValueError:
        return None


def process_cpu_ns(pid: int) -> int | None:
    """A process's CPU time (``utime + stime``: every thread's, ended ones' too), tick
    resolution; None when it is gone."""
    st = read_stat(pid)
    return None if st is None else (st.utime + st.stime) * TICK_NS


def cpu_busy_ns(niced: bool = True, steal: bool = True) -> int | None:
    """CPU time spent busy on all CPUs since boot, from ``/proc/stat`` (tick resolution);
    ``niced=False`` leaves out the user time of tasks at a nice value above 0 (``nice``),
    ``steal=False`` the time the hypervisor gave to other guests (not this node's work)."""
    text = _read("/proc/stat")
    if not text:
        return None
    f = text.split("\n", 1)[0].split()
    if not f or f[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest is already inside user)
    ticks = [int(x) for x in f[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    busy -= (0 if niced else ticks[1]) + (0 if steal else ticks[7])
    return busy * 1_000_000_000 // CLK_TCK


def total_threads() -> int | None:
    """Threads on the node now (``/proc/loadavg``'s ``running/total``)."""
    text = _read("/proc/loadavg")
    try:
        return int(text.split()[3].split("/")[1]) if text else None
    except (IndexError, ValueError):
        return None


def boot_ticks() -> int:
    """Now, in the clock ticks since boot that ``starttime`` uses."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * CLK_TCK)


class StatFiles:
    """``/proc/<pid>/stat`` of processes read every interval, each kept open and read again with
    ``pread`` (one system call where open, read and close are three: hackbench's 161 processes
    cost 1.0 ms of CPU where they cost 2.3 ms).

    An open stat file belongs to its process, not to its PID: once the process is reaped it reads
    nothing (and is closed), and a reused PID is opened anew. Every instance in the process shares
    one budget of descriptors, a quarter of the soft ``RLIMIT_NOFILE``; beyond it a file is opened
    and closed for each read, as :func:`read_stat` does.
    """

    _lock = threading.Lock()
    _budget = 0  # descriptors every instance may still take (set on first use)
    _budget_set = False

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        with StatFiles._lock:
            if not StatFiles._budget_set:
                soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                StatFiles._budget = soft // 4 if soft != resource.RLIM_INFINITY else 4096
                StatFiles._budget_set = True

    def read(self, pid: int) -> ProcStat | None:
        """The process's stat line, parsed; None once it is gone."""
        fd = self._fds.get(pid)
        if fd is None:
            fd = self._open(pid)
            if fd is None:
                return read_stat(pid)
        try:
            text = os.pread(fd, 4096, 0).decode("ascii", "replace")
        except OSError:
            text = ""
        if not text:
            self._close(pid)
        return parse_stat(text)

    def _open(self, pid: int) -> int | None:
        with StatFiles._lock:
            if StatFiles._budget <= 0:
                return None
            StatFiles._budget -= 1
        try:
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            with StatFiles._lock:
                StatFiles._budget += 1
            return None
        self._fds[pid] = fd
        return fd

    def _close(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            os.close(fd)
            with StatFiles._lock:
                StatFiles._budget += 1

    def keep(self, pids: Iterable[int]) -> None:
        """Close the files of every process but ``pids``."""
        wanted = set(pids)
        for pid in [p for p in self._fds if p not in wanted]:
            self._close(pid)

    def close(self) -> None:
        """Close every file (idempotent)."""
        self.keep(())


class MajorFaults:
    """Major faults per role in each interval, from the job's processes and ``/proc/vmstat``.

    A process seen for the first time counts from its start if it started after this object did,
    else from now. A process that exits loses its last partial interval (its counter goes with
    it). ``other`` is the node's ``pgmajfault`` less the job's.
    """

    def __init__(self) -> None:
        self._since = boot_ticks()
        self._last: dict[int, tuple[int, int]] = {}  # pid -> (starttime, majflt)
        self._node = vmstat("pgmajfault")
        self._files = StatFiles()

    def read(self, processes: dict[int, Role]) -> Counts:
        """Major faults since the previous read, shape ``(len(ROLES),)``."""
        out = np.zeros(len(ROLES), np.int64)
        seen: dict[int, tuple[int, int]] = {}
        self._files.keep(processes)
        for pid, role in processes.items():
            st = self._files.read(pid)
            if st is None:
                continue
            last = self._last.get(pid)
            if last is not None and last[0] == st.starttime:
                base = last[1]
            else:
                base = 0 if st.starttime >= self._since else st.majflt
            out[ROLE_INDEX[role]] += max(st.majflt - base, 0)
            seen[pid] = (st.starttime, st.majflt)
        self._last = seen
        node = memo("pgmajfault", lambda: vmstat("pgmajfault"))
        if node is not None and self._node is not None:
            job = out[ROLE_INDEX[Role.TRAINER]] + out[ROLE_INDEX[Role.LOADER]]
            out[ROLE_INDEX[Role.OTHER]] = max(node - self._node - job, 0)
        self._node = node
        return out

    def close(self) -> None:
        """Close the processes' stat files (idempotent)."""
        self._files.close()

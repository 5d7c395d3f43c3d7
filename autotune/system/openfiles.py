"""A new read-ahead for the files a job already holds open, from outside the job.

The kernel copies a device's ``read_ahead_kb`` into each open file when it is opened
(``file->f_ra.ra_pages``), and reads, page faults through a memory map included, use the
file's copy. A value written to the device reaches only the files opened afterwards. On
mixed_io (2026-12-06, bench/online) a DataLoader worker that memory-mapped the token file while
the tuner had the read-ahead at 1 MiB made no progress for 10 s, through the rollback to 128 KiB
and after it: the guard took the knob back, the file kept the value. A whole run at 1 MiB takes
mixed_io twice as long as at 128 KiB (bench/results/grid.json).

``posix_fadvise(POSIX_FADV_NORMAL)`` copies the device's value into the file again. The tuner
gets a descriptor for the job's open file description with ``pidfd_getfd`` (Linux 5.6; needs
the right to ptrace the job, which root has), advises it and closes it: the same file, so the
job's reads and its memory maps of it follow the device from then on. The advice also undoes a
job's own ``POSIX_FADV_RANDOM``, ``SEQUENTIAL`` or ``NOREUSE`` on that file (the kernel shows
none of them, so they cannot be kept); ``madvise`` on a mapping is the mapping's and stays. A
file mapped and then closed is out of reach: its descriptor is gone, and ``/proc/PID/map_files``
opens it anew.
"""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Iterable, Iterator

from autotune.system import blockdev

SYS_PIDFD_GETFD = 438  # the same number on every architecture: the unified syscall table

_libc = ctypes.CDLL(None, use_errno=True)


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """A descriptor of this process for ``fd`` of the process behind ``pidfd`` (the same open
    file description)."""
    got = int(_libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0))
    if got < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return got


def refresh_readahead(pids: Iterable[int], devices: Iterable[str]) -> int:
    """Give every file the processes hold open on ``devices`` (whole disks: files on their
    partitions, and the devices opened raw) the device's read-ahead as it is now; returns how
    many files.

    A process or descriptor that goes away meanwhile is skipped, as is one this process may not
    reach (no right to ptrace it).
    """
    wanted = set(devices)
    disks: dict[int, str | None] = {}  # st_dev → its disk, resolved once
    n = 0
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            n += _refresh(pid, pidfd, wanted, disks)
        finally:
            os.close(pidfd)
    return n


def held_files(pid: int) -> Iterator[tuple[int, int]]:
    """Each descriptor of ``pid`` that holds something on a block device, with that device's
    number: a regular file's device, or a device opened raw. Descriptors closed meanwhile are
    skipped, and a process gone yields nothing; pipes, sockets, ttys and anonymous inodes hold
    no block device."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return
    for name in fds:
        try:
            st = os.stat(f"{fd_dir}/{name}")
        except OSError:
            continue  # closed meanwhile, or a dangling link
        if stat.S_ISREG(st.st_mode):
            yield int(name), st.st_dev
        elif stat.S_ISBLK(st.st_mode):
            yield int(name), st.st_rdev  # the device itself, read raw


def _refresh(pid: int, pidfd: int, wanted: set[str], disks: dict[int, str | None]) -> int:
    n = 0
    for fd, dev in held_files(pid):
        if dev not in disks:
            disks[dev] = blockdev.disk_of_devno(os.major(dev), os.minor(dev))
        if disks[dev] not in wanted:
            continue
        try:
            mine = pidfd_getfd(pidfd, fd)
        except OSError:
            continue  # closed meanwhile, or not ours to reach
        try:
            os.posix_fadvise(mine, 0, 0, os.POSIX_FADV_NORMAL)
            n += 1
        except OSError:
            pass
        finally:
            os.close(mine)
    return n

"""The workloads' own data disk: a file-backed loop device with ext4, mounted under a temp dir.

The loop device is attached with ``--direct-io=on``: the loop driver then reads its backing file
with O_DIRECT, so the backing file's page cache on the root disk (vda, whose read_ahead_kb is
8 MiB and must never be changed) is bypassed, and the loop device's own ``read_ahead_kb`` alone
decides how much each page-cache miss on the data reads from the disk.

Everything made is undone by :meth:`DataDisk.close` (unmount, detach, delete), in reverse order,
also after a half-finished setup; :func:`leftovers` lists what an interrupted run left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from autotune.errors import NotPermitted, UserError
from autotune.system.blockdev import SYS_BLOCK, disk_of_path

# Backing files live on a real disk (not /tmp, which may be tmpfs and cannot do O_DIRECT).
BACKING_ROOT = Path("/var/tmp")
PREFIX = "autotune-workloads-"
SETTLE_S = 5.0  # how long to wait for a busy mount or loop device to be let go


def _run(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not installed (scripts/bootstrap.sh installs it)") from None
    if r.returncode != 0:
        raise UserError(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout.strip()


def read_ahead_path(device: str) -> Path:
    return SYS_BLOCK / device / "queue" / "read_ahead_kb"


def read_ahead_kb(device: str) -> int:
    """The device's current read-ahead in KiB."""
    return int(read_ahead_path(device).read_text())


def set_read_ahead_kb(device: str, kb: int) -> None:
    """Write a loop device's read-ahead and check that it took; refuses any other device."""
    if not device.startswith("loop"):
        raise UserError(f"refusing to change read_ahead_kb of {device}: only our loop devices")
    try:
        read_ahead_path(device).write_text(f"{int(kb)}\n")
    except PermissionError as e:
        raise NotPermitted(f"cannot write {read_ahead_path(device)}: run as root") from e
    got = read_ahead_kb(device)
    if got != int(kb):
        raise UserError(f"{device}: read_ahead_kb={kb} did not stick (reads back {got})")


def device_read_bytes(device: str) -> int:
    """Bytes read from the device since boot (``/sys/block/<dev>/stat``, sectors of 512 B)."""
    fields = (SYS_BLOCK / device / "stat").read_text().split()
    return int(fields[2]) * 512


def drop_cache(root: Path, device: str | None = None) -> int:
    """Evict the page cache of every file under ``root`` (and of ``device``'s own buffer cache).

    Targeted ``posix_fadvise(DONTNEED)`` instead of ``/proc/sys/vm/drop_caches``: it makes our
    data cold without emptying the caches of everyone else on a shared machine. Pages must be
    clean to be dropped, so the file system is synced first. Returns the files dropped.
    """
    subprocess.run(["sync", "-f", str(root)], check=False, timeout=120)
    n = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            n += _fadvise_dontneed(Path(dirpath) / name)
    if device is not None:
        _fadvise_dontneed(Path("/dev") / device)
    return n


def _fadvise_dontneed(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return 1


def cached_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache now (``fincore``)."""
    out = _run(["fincore", "--bytes", "--noheadings", "--output", "PAGES", str(path)])
    return int(out.split()[0]) if out else 0


class DataDisk:
    """A loop device of our own, ext4, mounted at :attr:`mountpoint`; use as a context manager.

    Args:
        size_mib: capacity of the backing file (sparse; only written blocks use space).
        root: where the backing file and mount point are made (default /var/tmp).
    """

    def __init__(self, size_mib: int, root: Path = BACKING_ROOT) -> None:
        if os.geteuid() != 0:
            raise NotPermitted("the workloads' data disk needs root (losetup, mount)")
        self.size_mib = size_mib
        self.root = root
        self.workdir: Path | None = None
        self.backing: Path | None = None
        self.device: str | None = None
        self.mountpoint: Path | None = None
        self._mounted = False

    def open(self) -> DataDisk:
        """Create, attach, format and mount; undone by :meth:`close` even if a step fails."""
        for what in reap_leftovers(self.root):
            print(f"data disk: removed {what}, left by a run that was killed", file=sys.stderr)
        try:
            # The maker's PID in the name tells a leftover from a disk another run still uses.
            prefix = f"{PREFIX}{os.getpid()}-"
            self.workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))
            self.backing = self.workdir / "disk.img"
            with self.backing.open("wb") as f:
                f.truncate(self.size_mib << 20)
            dev = _run(["losetup", "--find", "--show", "--direct-io=on", str(self.backing)])
            self.device = Path(dev).name
            if (SYS_BLOCK / self.device / "loop" / "dio").read_text().strip() != "1":
                raise UserError(
                    f"{self.device}: direct I/O did not turn on; reads would go "
                    "through the root disk's page cache and its 8 MiB read-ahead"
                )
            # No lazy init: background zeroing of inode tables would add I/O to every run.
            _run(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-E",
                    "lazy_itable_init=0,lazy_journal_init=0",
                    f"/dev/{self.device}",
                ]
            )
            self.mountpoint = self.workdir / "mnt"
            self.mountpoint.mkdir()
            _run(["mount", "-o", "noatime", f"/dev/{self.device}", str(self.mountpoint)])
            self._mounted = True
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Unmount, detach and delete; safe to call twice and after a partial :meth:`open`."""
        if self._mounted and self.mountpoint is not None:
            _unmount(self.mountpoint)
            self._mounted = False
        if self.device is not None:
            _detach(self.device)
            self.device = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> DataDisk:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dev(self) -> str:
        """The loop device's name (``loop3``); only while open."""
        if self.device is None:
            raise UserError("the data disk is not open")
        return self.device

    @property
    def mnt(self) -> Path:
        """The mount point; only while open."""
        if self.mountpoint is None or not self._mounted:
            raise UserError("the data disk is not open")
        return self.mountpoint


def _unmount(mountpoint: Path) -> None:
    # A process that just died may hold a file for a moment longer: retry before going lazy.
    deadline = time.monotonic() + SETTLE_S
    while subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
            return
        time.sleep(0.1)


def _detach(device: str) -> None:
    # Detaching a device still in use only marks it to go when the last user closes it.
    backing = SYS_BLOCK / device / "loop" / "backing_file"
    subprocess.run(["losetup", "-d", f"/dev/{device}"], capture_output=True)
    deadline = time.monotonic() + SETTLE_S
    while backing.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def loop_device_of(path: Path) -> str:
    """The loop device a data directory lives on; anything else is refused (never touch vda)."""
    if not path.is_dir():
        raise UserError(f"data directory {path} does not exist")
    disk = disk_of_path(path)
    if disk is None or not disk.startswith("loop"):
        raise UserError(
            f"data directory {path} is on {disk or 'no block device'}, not a loop device: "
            "the harness changes read-ahead only on loop devices (leave --data-dir out to make one)"
        )
    return disk


def _owner(path: str) -> int | None:
    """The PID that made a disk, from its work directory's name (``<PREFIX><pid>-<random>``)."""
    tail = path.split(PREFIX, 1)[1] if PREFIX in path else ""
    pid = tail.split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _owned_by_the_living(path: str) -> bool:
    # Another process's disk still in use (a bench or test running beside us) is not a leftover.
    pid = _owner(path)
    return pid is not None and pid != os.getpid() and Path(f"/proc/{pid}").exists()


def _made(
    keep: Callable[[str], bool], root: Path = BACKING_ROOT
) -> tuple[list[str], list[tuple[str, str]], list[Path]]:
    """What data disks made and still stands, as far as ``keep(path)`` says: the mount
    points, the loop devices (name, backing file) and the work directories."""
    mounts = [
        mnt
        for line in Path("/proc/mounts").read_text().splitlines()
        if PREFIX in (mnt := line.split()[1]) and keep(mnt)
    ]
    loops: list[tuple[str, str]] = []
    for entry in sorted(SYS_BLOCK.glob("loop*")):
        with contextlib.suppress(OSError):
            backing = (entry / "loop" / "backing_file").read_text().strip()
            if PREFIX in backing and keep(backing):
                loops.append((entry.name, backing))
    dirs = [p for p in root.glob(PREFIX + "*") if keep(str(p))]
    return mounts, loops, dirs


def leftovers() -> list[str]:
    """Loop devices, mounts and work directories that a :class:`DataDisk` made and did not undo:
    those of this process, and of processes that are gone."""
    mounts, loops, dirs = _made(lambda path: not _owned_by_the_living(path))
    return [
        *(f"{name} → {backing}" for name, backing in loops),
        *(f"mount {mnt}" for mnt in mounts),
        *(str(d) for d in dirs),
    ]


def _dead_owner(path: str) -> bool:
    pid = _owner(path)
    return pid is not None and not Path(f"/proc/{pid}").exists()


def reap_leftovers(root: Path = BACKING_ROOT) -> list[str]:
    """Undo what a killed run left behind (a ``kill -9``, a VM restart): the mounts, loop devices
    and work directories of :class:`DataDisk` owners that no longer exist. Returns what went."""
    mounts, loops, dirs = _made(_dead_owner, root)
    for mnt in mounts:
        _unmount(Path(mnt))
    for name, _ in loops:
        _detach(name)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    return [
        *(f"mount {mnt}" for mnt in mounts),
        *(f"{name} ({backing})" for name, backing in loops),
        *(str(d) for d in dirs),
    ]

"""Block devices, their read-ahead setting, and which device a file lives on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from autotune.fsutil import read_small

SYS_BLOCK = Path("/sys/block")
SYS_DEV_BLOCK = Path("/sys/dev/block")


@dataclass(frozen=True)
class BlockDevice:
    """A whole-disk block device.

    Attributes:
        name: kernel name (``vda``, ``loop3``).
        devno: ``major:minor``.
        read_ahead_kb: current ``queue/read_ahead_kb``.
        rotational: whether the kernel thinks it spins.
        size_bytes: capacity.
    """

    name: str
    devno: str
    read_ahead_kb: int
    rotational: bool
    size_bytes: int

    @property
    def read_ahead_path(self) -> Path:
        return SYS_BLOCK / self.name / "queue" / "read_ahead_kb"


def _read(path: Path, default: str = "") -> str:
    text = read_small(path)
    return text.strip() if text is not None else default


def device(name: str) -> BlockDevice | None:
    """Describe ``/sys/block/<name>``, or None when it does not exist."""
    base = SYS_BLOCK / name
    if not (base / "queue" / "read_ahead_kb").is_file():
        return None
    return BlockDevice(
        name=name,
        devno=_read(base / "dev"),
        read_ahead_kb=int(_read(base / "queue" / "read_ahead_kb", "0")),
        rotational=_read(base / "queue" / "rotational") == "1",
        size_bytes=int(_read(base / "size", "0")) * 512,
    )


def devices(include_empty: bool = False) -> list[BlockDevice]:
    """Every whole-disk device; unbound loop devices and empty zram are left out by default."""
    out = []
    for entry in sorted(SYS_BLOCK.iterdir()) if SYS_BLOCK.is_dir() else []:
        dev = device(entry.name)
        if dev is not None and (include_empty or dev.size_bytes > 0):
            out.append(dev)
    return out


def disk_of_devno(major: int, minor: int) -> str | None:
    """The whole-disk name holding device ``major:minor`` (a partition maps to its disk)."""
    link = SYS_DEV_BLOCK / f"{major}:{minor}"
    try:
        target = link.resolve()
    except OSError:
        return None
    if not target.exists():
        return None
    if (target / "partition").is_file():
        target = target.parent
    return target.name if (SYS_BLOCK / target.name).exists() else None


def disk_of_path(path: str | os.PathLike[str]) -> str | None:
    """The whole-disk name a file lives on (None for tmpfs, overlay without a disk, …)."""
    st = os.stat(path)
    return disk_of_devno(os.major(st.st_dev), os.minor(st.st_dev))

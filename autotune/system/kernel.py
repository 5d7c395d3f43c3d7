"""Kernel facts: release, build config, BTF, headers for bcc, sched_ext."""

from __future__ import annotations

import gzip
import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SCHED_EXT_STATE = Path("/sys/kernel/sched_ext/state")
BTF_VMLINUX = Path("/sys/kernel/btf/vmlinux")


def release() -> str:
    """The running kernel's release (``uname -r``)."""
    return platform.release()


@cache
def config() -> dict[str, str]:
    """The kernel's build config (``/proc/config.gz`` or ``/boot/config-*``); empty if absent."""
    text = ""
    proc = Path("/proc/config.gz")
    boot = Path(f"/boot/config-{release()}")
    if proc.is_file():
        text = gzip.decompress(proc.read_bytes()).decode(errors="replace")
    elif boot.is_file():
        text = boot.read_text(errors="replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:].split(" ", 1)[0]] = "n"
    return out


def has_btf() -> bool:
    """Whether the kernel exposes its own BTF (needed for CO-RE programs such as sched_ext)."""
    return BTF_VMLINUX.is_file()


@dataclass(frozen=True)
class Headers:
    """Which kernel headers bcc compiles against.

    Attributes:
        mode: ``exact`` (headers of this kernel), ``fallback`` (another version's, linked in by
            scripts/bootstrap.sh) or ``missing``.
        path: the resolved ``/lib/modules/<release>/build``, or ``BCC_KERNEL_SOURCE``.
        version: the headers' own version, read from their directory name.
    """

    mode: str
    path: str
    version: str


def headers() -> Headers:
    """Find the headers bcc will use for this kernel."""
    rel = release()
    env = os.environ.get("BCC_KERNEL_SOURCE")
    build = Path(env) if env else Path(f"/lib/modules/{rel}/build")
    if not build.exists():
        return Headers("missing", str(build), "")
    resolved = build.resolve()
    version = resolved.name.removeprefix("linux-headers-")
    mode = "exact" if version == rel or rel in str(resolved) else "fallback"
    return Headers(mode, str(resolved), version)


@dataclass(frozen=True)
class SchedExt:
    """sched_ext support: whether the kernel has it, and its state (``enabled``, …)."""

    supported: bool
    state: str
    reason: str


def sched_ext() -> SchedExt:
    """Report whether this kernel can run a sched_ext scheduler, and whether one runs now."""
    if SCHED_EXT_STATE.is_file():
        return SchedExt(True, SCHED_EXT_STATE.read_text().strip(), "")
    cfg = config().get("CONFIG_SCHED_CLASS_EXT")
    if cfg == "n":
        why = "kernel built without CONFIG_SCHED_CLASS_EXT"
    elif cfg is None and not config():
        why = "no /sys/kernel/sched_ext and no kernel config to tell why"
    else:
        why = "no /sys/kernel/sched_ext"
    return SchedExt(False, "unsupported", why)

"""Helpers for the sched_ext backend tests: the scheduler built against a sched_ext kernel, its
maps pinned on a private bpffs, and the one test double these tests need.

This machine's kernel has no sched_ext, so our scheduler cannot attach here (``scx/vm/run.sh``
tests it attached, in a VM). Everything else is real: the BPF object is built against the
sched_ext kernel's BTF, ``scx-autotune maps`` creates and pins its maps from that object, and the
backend reads and writes them through libbpf.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from autotune.scx import scheduler as scx

REPO = Path(__file__).resolve().parents[2]


def attached_double(pin_dir: Path) -> scx.Status:
    """Test double for the one thing this kernel cannot do: report our scheduler as attached.

    It says "attached" exactly while the scheduler's maps are pinned in ``pin_dir``, so an
    unload (removing the pins) reads as detached, as on a sched_ext kernel.
    """
    pinned = (pin_dir / "weights").exists()
    why = "" if pinned else "our scheduler is not loaded (test double: no pins)"
    return scx.Status(True, "enabled" if pinned else "disabled", None, pinned, pinned, why)


def build(out: Path) -> subprocess.CompletedProcess[str] | str:
    """Fetch the sched_ext kernel (cached) and build the scheduler against it into ``out``.

    Returns the build's completed process, or the reason the download is unavailable.
    """
    fetched = subprocess.run(
        [str(REPO / "scx" / "fetch.sh"), "kernel"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if fetched.returncode != 0:
        return (fetched.stderr.strip().splitlines() or ["scx/fetch.sh failed"])[-1]
    vmlinuz = Path(fetched.stdout.strip()) / "vmlinuz"
    return subprocess.run(
        [str(REPO / "scx" / "build.sh"), "--vmlinuz", str(vmlinuz), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def loader(built: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the scheduler's own loader (``scx-autotune``)."""
    return subprocess.run(
        [str(built / "scx-autotune"), *args], capture_output=True, text=True, timeout=60
    )

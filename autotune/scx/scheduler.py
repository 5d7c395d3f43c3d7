"""Our sched_ext scheduler (``bpf/scx_autotune.bpf.c``): is it there, load it, unload it.

Loading builds the scheduler against this kernel's BTF (``scx/build.sh``: vmlinux.h from
``/sys/kernel/btf/vmlinux``, clang, the static libbpf loader) and runs the loader, which attaches
it and pins its link and maps under :data:`PIN_DIR`. The pinned link keeps it running after the
loader exits; removing the pins (:func:`unload`) detaches it and the kernel's fair class takes
every task back. The weights themselves are written by :mod:`autotune.actuators.weights_scx`;
this module knows nothing of the other weights backends (the CLI says which one is used instead
when the scheduler cannot load).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from autotune.errors import NotPermitted, UserError
from autotune.scx import maps as scx_maps
from autotune.system import kernel

PIN_DIR = Path("/sys/fs/bpf/autotune")
PINS = ("link", "roles", "weights", "exit_info")
OPS_NAME = "autotune"  # sched_ext_ops.name in bpf/scx_autotune.bpf.c
ROOT_OPS = Path("/sys/kernel/sched_ext/root/ops")
REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scx" / "build.sh"


class ScxUnavailable(UserError):
    """Our scheduler cannot run on this node; the message says why."""


@dataclass(frozen=True)
class Status:
    """Where sched_ext and our scheduler stand.

    Attributes:
        supported: the kernel has sched_ext.
        state: ``/sys/kernel/sched_ext/state`` (``enabled``, ``disabled``, …) or ``unsupported``.
        ops: the name of the BPF scheduler running now, if any.
        pinned: our pins exist in the pin directory.
        loaded: ours is the scheduler running now, and its maps are pinned.
        reason: when not loaded, why not (one line).
    """

    supported: bool
    state: str
    ops: str | None
    pinned: bool
    loaded: bool
    reason: str


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # bpffs is root-only: for others, our pins cannot be seen
        return False


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def status(pin_dir: Path = PIN_DIR) -> Status:
    """Report whether our scheduler runs, and if not, why not."""
    scx = kernel.sched_ext()
    pinned = _exists(pin_dir / "weights")
    if not scx.supported:
        return Status(False, scx.state, None, pinned, False, f"no sched_ext: {scx.reason}")
    ops = _read(ROOT_OPS) if scx.state == "enabled" else None
    if scx.state == "enabled" and ops == OPS_NAME and pinned and _exists(pin_dir / "link"):
        return Status(True, scx.state, ops, pinned, True, "")
    if ops and ops != OPS_NAME:
        why = f"another sched_ext scheduler ({ops}) is running"
    elif pinned:
        why = f"our scheduler stopped (sched_ext {scx.state}){_exit_reason(pin_dir)}"
    else:
        why = f"our scheduler is not loaded (sched_ext {scx.state}; `autotune scx load`)"
    return Status(True, scx.state, ops, pinned, False, why)


def _exit_reason(pin_dir: Path) -> str:
    """``: <why>`` from the scheduler's exit record (the watchdog's reason, say), or ``""``."""
    try:
        with scx_maps.SchedulerMaps(pin_dir) as maps:
            why = maps.exit_reason()
    except OSError:
        return ""
    return f": {why}" if why else ""


def artifacts(release: str | None = None) -> Path:
    """Where the scheduler built for this kernel lives (``build/scx/host-<release>``)."""
    return REPO / "build" / "scx" / f"host-{release or kernel.release()}"


def build(out: Path | None = None) -> Path:
    """Build the scheduler and loader against this kernel's BTF; returns the folder.

    Raises:
        ScxUnavailable: no BTF, no build script (an installed package without the repository),
            or the build failed.
    """
    out = out or artifacts()
    if not kernel.has_btf():
        raise ScxUnavailable(f"no {kernel.BTF_VMLINUX}: the scheduler is built against it")
    if not BUILD_SCRIPT.is_file():
        raise ScxUnavailable(f"{BUILD_SCRIPT} is missing: building needs the autotune repository")
    failed = _run([str(BUILD_SCRIPT), "--btf", str(kernel.BTF_VMLINUX), "--out", str(out)])
    if failed:
        raise ScxUnavailable(f"building the scheduler failed: {failed}")
    return out


def _run(cmd: list[str]) -> str | None:
    """Run a tool; None when it succeeded, else the last line it printed on stderr."""
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode == 0:
        return None
    return (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]


def _wait_state(want: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = kernel.sched_ext().state
        if state in want or time.monotonic() >= deadline:
            return state
        time.sleep(0.05)


def load(pin_dir: Path = PIN_DIR, built: Path | None = None, timeout: float = 5.0) -> Status:
    """Load our scheduler (a no-op when it already runs).

    Args:
        pin_dir: where to pin the link and maps (on bpffs).
        built: a folder from :func:`build`; built now when None.
        timeout: seconds to wait for sched_ext to report ``enabled``.

    Raises:
        ScxUnavailable: the kernel has no sched_ext, another scheduler runs, or loading failed.
        NotPermitted: not root.
    """
    now = status(pin_dir)
    if now.loaded:
        return now
    if not now.supported:
        raise ScxUnavailable(f"cannot load the sched_ext scheduler: {now.reason}")
    if now.ops and now.ops != OPS_NAME:
        raise ScxUnavailable(f"cannot load ours: {now.reason}")
    if os.geteuid() != 0:
        raise NotPermitted("loading a sched_ext scheduler needs root")
    if now.pinned:
        unload(pin_dir)  # pins of a scheduler that stopped: clear them first
    built = built or build()
    failed = _run(
        [str(built / "scx-autotune"), "load", str(built / "scx_autotune.bpf.o"), str(pin_dir)]
    )
    if failed:
        raise ScxUnavailable(f"loading the scheduler failed: {failed}")
    _wait_state({"enabled"}, timeout)
    after = status(pin_dir)
    if not after.loaded:
        unload(pin_dir)
        raise ScxUnavailable(f"the scheduler did not start: {after.reason}")
    return after


def unload(pin_dir: Path = PIN_DIR, timeout: float = 5.0) -> Status:
    """Remove our pins: the scheduler detaches and the fair class takes the tasks back.

    Safe to call when nothing is loaded. Another scheduler's pins are never touched: only the
    names we pin are removed, and the folder only when that leaves it empty.
    """
    ours = kernel.sched_ext().supported and _read(ROOT_OPS) == OPS_NAME
    for name in PINS:  # the link first: the scheduler goes with its last reference
        try:
            (pin_dir / name).unlink()
        except FileNotFoundError:
            pass
        except PermissionError as e:
            raise NotPermitted(f"cannot remove {pin_dir / name}: permission denied") from e
    with contextlib.suppress(OSError):  # not empty: someone else's pins, or not there
        pin_dir.rmdir()
    if ours:
        _wait_state({"disabled"}, timeout)
    return status(pin_dir)

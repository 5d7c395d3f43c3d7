"""`make test-scx`'s cgroup v2 part from the suite: the cgroup2 weights backend, for real, in a VM.

This node's v2 hierarchy has no controllers, so test_weights.py can only reach cgroup v1 here.
scx/vm/cgroup2.sh boots a v2-only kernel with the host's root shared read-only over virtiofs and
runs cgroup2_guest.py inside it with this Python; this test runs the script and checks the
ratios it measured. Skipped, with the reason, only where qemu, virtiofsd or the kernel is missing,
or where the checkout is not on the root filesystem (the one the VM sees).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cgroup2_guest import EXPECTED
from vm_kit import HUNG_BOOT_S, assert_hung_boots_retried_twice_then_reported

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "scx" / "vm" / "cgroup2.sh"
VIRTIOFSD = Path(os.environ.get("VIRTIOFSD", "/usr/lib/qemu/virtiofsd"))
KERNEL_UNAVAILABLE = 4  # cgroup2.sh's exit status when it cannot fetch the kernel
NOT_SHAREABLE = 5  # ... when the checkout or its Python is off the root filesystem
WORK_PREFIX = "autotune-cgroup2-vm."  # the script's temporary folder

pytestmark = [pytest.mark.vm, pytest.mark.root]


def _leftovers() -> list[str]:
    """The script's temporary folders, and processes (qemu, virtiofsd) still using one."""
    tmp = Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    left = [str(p) for p in tmp.glob(f"{WORK_PREFIX}*")]
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if WORK_PREFIX in cmd and proc.name.isdigit():
            left.append(f"pid {proc.name}: {cmd[:200]}")
    return left


def _run_vm(boot_timeout_s: int) -> subprocess.CompletedProcess[str]:
    """Run scx/vm/cgroup2.sh; skip (with the reason) where a tool or the kernel is missing."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (scripts/bootstrap.sh installs it)")
    if not os.access(VIRTIOFSD, os.X_OK):
        pytest.skip(f"no {VIRTIOFSD} (qemu-system-common ships it)")
    before = _leftovers()
    env = {
        **os.environ,
        "CGROUP2_VM_TIMEOUT": str(boot_timeout_s),
        "AUTOTUNE_VM_PYTHON": sys.executable,
    }
    # Its own process group: on a timeout the whole of it goes (qemu and virtiofsd included).
    proc = subprocess.Popen(
        [str(RUN)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=3 * boot_timeout_s + 100)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"cgroup2.sh ran past {3 * boot_timeout_s + 100} s:\n{err[-3000:]}")
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if r.returncode == KERNEL_UNAVAILABLE:
        pytest.skip(f"the VM's kernel is unavailable: {r.stderr.strip().splitlines()[-1]}")
    if r.returncode == NOT_SHAREABLE:
        pytest.skip(f"the VM cannot see this checkout: {r.stderr.strip().splitlines()[-1]}")
    left = [x for x in _leftovers() if x not in before]
    assert not left, f"cgroup2.sh left behind: {left}"
    return r


@pytest.mark.slow
def test_cgroup2_weights_share_the_cpu_and_restore_in_a_vm() -> None:
    r = _run_vm(150)
    assert r.returncode == 0, r.stderr[-4000:]
    found = dict(re.findall(r"(\w+)=([0-9.]+)", r.stderr.strip().splitlines()[-1]))
    for name, (_want, lo, hi) in EXPECTED.items():
        assert lo <= float(found[name]) <= hi, f"{name}={found.get(name)} outside {lo}..{hi}"
    assert "weights backend chosen: cgroup2" in r.stderr
    assert "the service finds /sys/fs/cgroup/training.slice" in r.stderr
    # The root keeping cpu to itself: the first set is Stuck, and the replay leaves nothing.
    assert "without cpu in the root's subtree_control the first set is Stuck" in r.stderr
    # The whole service on the v2 slice: it tuned the job, and SIGTERM put everything back.
    assert "the service tuned the job after" in r.stderr
    assert "cpu.weight trainer 400, loader 100" in r.stderr
    assert "SIGTERM: the service put the job back in /training.slice/job.scope" in r.stderr


def test_a_boot_that_hangs_is_retried_twice_then_reported() -> None:
    assert_hung_boots_retried_twice_then_reported(_run_vm(HUNG_BOOT_S))

"""Fixtures for the collector tests: a real multi-process job, a CPU hog, a loop device of our own.

Everything made here is undone in ``finally`` blocks, and checked: no process of the job or the
hog survives, the loop device is detached, and no BPF collector is left open.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from telemetry_kit import Job, LoopDisk, gone

from autotune.target import Target
from autotune.telemetry import programs

WORKLOAD = Path(__file__).with_name("workload.py")
BACKING_ROOT = Path("/var/tmp")  # a real disk: /tmp may be tmpfs, which cannot do O_DIRECT
SPIN = "import time\nwhile True: time.monotonic()"


@pytest.fixture
def job() -> Iterator[Job]:
    """The workload, idle and waiting for commands; killed with its workers afterwards."""
    with _workload() as j:
        yield j


@pytest.fixture
def other_job() -> Iterator[Job]:
    """A second, independent copy of the workload (two jobs watched by one process)."""
    with _workload() as j:
        yield j


@contextlib.contextmanager
def _workload() -> Iterator[Job]:
    proc = subprocess.Popen(
        [sys.executable, str(WORKLOAD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    j = Job(proc, Target.from_pid(proc.pid))
    try:
        yield j
    finally:
        pids = [proc.pid, *j.workers]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        deadline = time.monotonic() + 10
        while not all(gone(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(p) for p in pids), "a workload process survived"


@pytest.fixture
def cpu_hog() -> Iterator[list[int]]:
    """Two CPU-bound processes outside the job (more runnable threads than this node's CPUs)."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", SPIN], start_new_session=True) for _ in range(2)
    ]
    try:
        yield [h.pid for h in hogs]
    finally:
        for h in hogs:
            h.kill()
            h.wait(timeout=30)


@pytest.fixture(autouse=True)
def no_collector_left_open() -> Iterator[None]:
    """Every test closes the BPF collectors it opens (they hold the process's role table)."""
    yield
    assert not programs.loaded(), "a BPF collector was left open"


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.fixture
def loopdisk() -> Iterator[LoopDisk]:
    """losetup a sparse file (direct I/O, so the root disk's page cache is left alone), mkfs.ext4,
    mount, write 16 MiB; unmount and detach afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="autotune-telemetry-test-", dir=BACKING_ROOT))
    backing = workdir / "disk.img"
    with backing.open("wb") as f:
        f.truncate(96 << 20)
    name = Path(_run("losetup", "--find", "--show", "--direct-io=on", str(backing)).strip()).name
    mount = workdir / "mnt"
    mounted = False
    try:
        _run(
            "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", f"/dev/{name}"
        )
        mount.mkdir()
        _run("mount", "-o", "noatime", f"/dev/{name}", str(mount))
        mounted = True
        data = mount / "data.bin"
        data.write_bytes(os.urandom(16 << 20))
        _run("sync", "-f", str(mount))
        yield LoopDisk(name, mount, data)
    finally:
        if mounted and subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        subprocess.run(["losetup", "-d", f"/dev/{name}"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
    backing_file = Path("/sys/block") / name / "loop" / "backing_file"
    still = backing_file.is_file() and str(workdir) in backing_file.read_text()
    assert not still, f"{name} is still attached"

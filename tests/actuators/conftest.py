"""Fixtures for the actuator tests: a loop device of our own, real jobs, and a leftovers check.

Every test gets its own journal and its own cgroup parent (so tests of other engineers running
at the same time never share either), and :func:`nothing_left_behind` fails a test that leaves a
cgroup, a journal, or a changed ``read_ahead_kb`` on any disk that is not a loop device.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from actuator_kit import BACKING_ROOT, JOB, Job, Loop, run

from autotune.actuators.decisions import DecisionLog
from autotune.actuators.restore import restore_journal
from autotune.config import Settings
from autotune.system import blockdev, cgroups
from autotune.target import Target


@pytest.fixture
def loop() -> Iterator[Loop]:
    """Make a loop device (losetup + mkfs.ext4 + mount in a temp dir); detach it afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="autotune-test-loop-", dir=BACKING_ROOT))
    backing = workdir / "disk.img"
    with backing.open("wb") as f:
        f.truncate(32 << 20)
    name = Path(run("losetup", "--find", "--show", str(backing)).strip()).name
    mount = workdir / "mnt"
    mounted = False
    try:
        run("mkfs.ext4", "-q", "-F", f"/dev/{name}")
        mount.mkdir()
        run("mount", f"/dev/{name}", str(mount))
        mounted = True
        (mount / "data.bin").write_bytes(os.urandom(1 << 20))
        ra = int((blockdev.SYS_BLOCK / name / "queue" / "read_ahead_kb").read_text())
        yield Loop(name, mount, backing, ra)
    finally:
        if mounted and subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        subprocess.run(["losetup", "-d", f"/dev/{name}"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
    assert run("losetup", "-j", str(backing)).strip() == "", f"{name} is still attached"


@pytest.fixture
def spawn() -> Iterator[Callable[..., Job]]:
    """Start real jobs (trainer + forked loaders); all are killed at the end."""
    jobs: list[Job] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Job:
        proc = subprocess.Popen(
            [sys.executable, str(JOB), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=BACKING_ROOT,
        )
        job = Job(proc, Target.from_pid(proc.pid))
        jobs.append(job)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return job

    try:
        yield start
    finally:
        for job in jobs:
            job.kill()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with this test's own journal and cgroup parent."""
    return Settings(
        journal=tmp_path / "journal.json",
        cgroup_parent=f"autotune-test-{os.getpid()}-{secrets.token_hex(3)}",
    )


def _disks() -> dict[str, int]:
    return {
        d.name: d.read_ahead_kb
        for d in blockdev.devices(include_empty=True)
        if not d.name.startswith("loop")  # others' tests make and tune their own loop devices
    }


def _sweep(settings: Settings) -> None:
    """Undo what a failed test left: replay its journal, then remove its cgroup tree."""
    if settings.journal.exists():
        restore_journal(settings.journal, DecisionLog(console=False), force=True)
        settings.journal.unlink(missing_ok=True)
    mounts = cgroups.mounts()
    for root in (mounts.v1.get("cpu"), mounts.v2):
        top = root / settings.cgroup_parent if root is not None else None
        if top is None or not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (root / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


@pytest.fixture(autouse=True)
def nothing_left_behind(settings: Settings) -> Iterator[None]:
    """Fail a test that leaves a cgroup, a journal or a changed disk read-ahead behind (and
    clean up after it, so that one failure does not spill into the next run)."""
    before = _disks()
    yield
    mounts = cgroups.mounts()
    left = [
        str(root / settings.cgroup_parent)
        for root in (mounts.v1.get("cpu"), mounts.v2)
        if root is not None and (root / settings.cgroup_parent).exists()
    ]
    journal_left = settings.journal.exists()
    disks = _disks()
    _sweep(settings)
    assert not left, f"a cgroup was left behind: {left}"
    assert not journal_left, f"the journal was left behind: {settings.journal}"
    assert disks == before, "a disk's read_ahead_kb was left changed"

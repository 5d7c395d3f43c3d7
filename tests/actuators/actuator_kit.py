"""Helpers for the actuator tests: real jobs, loop devices, and what the kernel says about them.

(A module with a distinct name: tests/actuators has no __init__.py, so pytest puts this folder on
sys.path, where a plain ``probe`` or ``helpers`` could collide with another folder's.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from autotune.system import blockdev, cgroups, topology
from autotune.target import Target, threads

JOB = Path(__file__).with_name("job.py")
TUNER = Path(__file__).with_name("tuner.py")
# Backing files on a real disk (/tmp may be tmpfs); the loop device, never vda, is what we tune.
BACKING_ROOT = Path("/var/tmp")


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout


@dataclass
class Loop:
    """A file-backed ext4 loop device, mounted."""

    name: str
    mount: Path
    backing: Path
    original_ra: int

    @property
    def data(self) -> Path:
        return self.mount / "data.bin"

    def read_ahead_kb(self) -> int:
        return int((blockdev.SYS_BLOCK / self.name / "queue" / "read_ahead_kb").read_text())

    def set_read_ahead_kb(self, kb: int) -> None:
        (blockdev.SYS_BLOCK / self.name / "queue" / "read_ahead_kb").write_text(str(kb))


@dataclass
class Job:
    """A running tests/actuators/job.py."""

    proc: subprocess.Popen[str]
    target: Target
    extra: list[int] = field(default_factory=list)

    def send(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer.startswith("ok"), f"job answered {answer!r} to {command!r}"
        return answer

    def kill(self) -> None:
        for pid in self.target.members().all_pids + tuple(self.extra):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(timeout=30)


def cpus_allowed(pid: int, tid: int | None = None) -> set[int]:
    """``Cpus_allowed_list`` from /proc/<pid>/status (or a thread's own status)."""
    base = Path(f"/proc/{pid}") if tid is None else Path(f"/proc/{pid}/task/{tid}")
    for line in (base / "status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return set(topology.parse_cpulist(line.split(":", 1)[1]))
    raise AssertionError(f"no Cpus_allowed_list for {base}")


def role_cpus(target: Target) -> tuple[list[set[int]], list[set[int]]]:
    """Allowed CPUs of every trainer thread and every loader thread."""
    m = target.members()
    trainer = [cpus_allowed(p, t) for p in m.trainer_pids for t in threads(p)]
    loader = [cpus_allowed(p, t) for p in m.loader_pids for t in threads(p)]
    return trainer, loader


def cpu_cgroup(pid: int) -> str | None:
    """The v1 cpu cgroup of a process, from /proc/<pid>/cgroup."""
    return cgroups.cgroup_of(pid, "cpu")


def online() -> set[int]:
    return set(topology.parse_cpulist((topology.SYS_CPU / "online").read_text()))

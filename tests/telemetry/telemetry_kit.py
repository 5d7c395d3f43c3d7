"""What the telemetry tests share: the running workload and the loop device they drive."""

from __future__ import annotations

import os
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from autotune.target import Target, zombie
from autotune.telemetry.collector import TelemetryCollector
from autotune.telemetry.procread import read_stat
from autotune.telemetry.sample import Sample


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie (this machine's init reaps an orphan only about once a
    second, so waiting for its PID to vanish costs a second per process)."""
    return zombie(pid)


@dataclass
class Job:
    """tests/telemetry/workload.py, running; its workers share its process group."""

    proc: subprocess.Popen[str]
    target: Target
    workers: list[int] = field(default_factory=list)
    last: str = ""  # the last command sent

    def start(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = 0.0) -> str | None:
        """The job's answer line, if it came within ``timeout``."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline().strip()
        assert line.startswith("ok"), f"job answered {line!r}"
        if line.startswith("ok ") and self.last.startswith("fork"):
            self.workers.append(int(line.split()[1]))
        return line

    def send(self, command: str, timeout: float = 60) -> str:
        """Run a command and wait for its answer."""
        self.last = command
        self.start(command)
        line = self.answer(timeout)
        assert line is not None, f"no answer to {command!r} in {timeout}s"
        return line

    def sample_while(
        self, col: TelemetryCollector, command: str, interval: float = 0.25, timeout: float = 60
    ) -> tuple[str, list[Sample]]:
        """Send ``command`` and take a sample every ``interval`` until it is answered."""
        self.last = command
        self.start(command)
        samples: list[Sample] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.answer(interval)
            samples.append(col.sample())
            if line is not None:
                return line, samples
        raise AssertionError(f"no answer to {command!r} in {timeout}s")


@dataclass(frozen=True)
class LoopDisk:
    """A file-backed ext4 loop device of our own, mounted, with a file of random data."""

    name: str
    mount: Path
    data: Path

    def drop_cache(self) -> None:
        """Evict the data file's pages (targeted: others' caches on this node stay warm)."""
        fd = os.open(self.data, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def proc_majflt(pid: int) -> int:
    """A process's major faults (every thread's), from /proc/<pid>/stat."""
    st = read_stat(pid)
    assert st is not None, f"no process {pid}"
    return st.majflt


def touch_uncached(job: Job, col: TelemetryCollector, disk: LoopDisk) -> tuple[list[Sample], int]:
    """Have the job map the loop disk's data file, evicted first, and touch every page: the
    samples over it, and the major faults /proc counted for the job's process meanwhile."""
    disk.drop_cache()
    col.sample()
    before = proc_majflt(job.proc.pid)
    answer, samples = job.sample_while(col, f"touch {disk.data}")
    after = proc_majflt(job.proc.pid)
    samples.append(col.sample())
    assert int(answer.split()[1]) == disk.data.stat().st_size // 4096  # every page touched
    assert after > before  # read-around maps many pages a fault, but the file was not cached
    return samples, after - before

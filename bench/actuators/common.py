"""What the actuator benchmarks share: a real job to act on, statistics, and the machine's load."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

from autotune.config import Settings
from autotune.target import Target

# A trainer with N forked loaders. "spin": every process burns CPU; "idle": they sleep, and the
# trainer reports progress through autotune.client (so the prefetch knob has a job to talk to).
# Loaders die with the trainer (PR_SET_PDEATHSIG), so nothing outlives an interrupted bench.
JOB = textwrap.dedent(
    """
    import ctypes, os, sys, time
    import autotune.client as at
    loaders, mode = int(sys.argv[1]), sys.argv[2]
    held = open(sys.argv[3], "rb") if len(sys.argv) > 3 else None
    def work():
        if mode == "spin":
            while True:
                pass
        while True:
            time.sleep(3600)
    for _ in range(loaders):
        if os.fork() == 0:
            ctypes.CDLL(None).prctl(1, 9)
            work()
    print("ready", flush=True)
    if mode == "spin":
        work()
    while True:
        at.report(samples=1)
        at.prefetch_depth()
        time.sleep(0.01)
    """
)


@contextlib.contextmanager
def job(
    loaders: int, mode: str, hold: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[Target]:
    """Run the job; yields its :class:`Target`; kills every process of it at the end."""
    args = [sys.executable, "-c", JOB, str(loaders), mode] + ([str(hold)] if hold else [])
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, cwd="/"
    )
    target = Target.from_pid(proc.pid)
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the benchmark job did not start")
        yield target
    finally:
        for pid in target.members().all_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def bench_settings() -> Iterator[Settings]:
    """Settings with a journal and a cgroup parent of this run's own."""
    with tempfile.TemporaryDirectory(prefix="autotune-bench-") as d:
        yield Settings(
            journal=Path(d) / "journal.json", cgroup_parent=f"autotune-bench-{os.getpid()}"
        )


def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def spread(xs: Sequence[float]) -> str:
    """``median [min–max]`` of repeated measurements."""
    return f"{statistics.median(xs):.3g} [{min(xs):.3g}–{max(xs):.3g}]"


def load() -> str:
    """The machine's load averages (this VM's 2 cores are shared with other engineers)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"

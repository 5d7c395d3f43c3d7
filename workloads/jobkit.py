"""What every workload job shares: its flags, its data, cache eviction and its result line.

A job prints exactly one line starting with :data:`RESULT_PREFIX` when it reaches its sample
count, followed by JSON (``workload``, ``samples``, ``seconds``, ``samples_per_s`` and
job-specific figures); the harness parses it. A person's mistake (no data, a bad flag) ends with
one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.target import start_time
from workloads import make_data

RESULT_PREFIX = "RESULT "


def parser(name: str, doc: str, samples: int, batch: int) -> argparse.ArgumentParser:
    """The flags every job takes; a job adds its own."""
    p = argparse.ArgumentParser(prog=f"workloads.{name}", description=doc)
    p.add_argument("--data-dir", type=Path, required=True, help="made by make_data")
    p.add_argument("--samples", type=int, default=samples, help="stop after this many samples")
    p.add_argument("--batch-size", type=int, default=batch)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's)")
    p.add_argument("--drop-caches", action="store_true", help="evict the data's cache first")
    p.add_argument(
        "--keep-cache",
        action="store_true",
        help="do not evict data during the run (by default each pass starts cold, as it would "
        "with a dataset larger than memory)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def check(args: argparse.Namespace) -> None:
    """Refuse nonsense flags with one line."""
    if args.samples <= 0:
        raise UserError(f"--samples must be positive, got {args.samples}")
    if args.batch_size <= 0:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    if args.threads < 0:
        raise UserError(f"--threads must be 0 (torch's default) or more, got {args.threads}")


def setup_torch(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)


def dataset(args: argparse.Namespace, name: str) -> Path:
    """The directory of dataset ``name``; a missing or half-made one is a UserError."""
    root: Path = args.data_dir
    if make_data.manifest(root, name) is None:
        raise UserError(
            f"no {name} dataset in {root}; make it with "
            f"`python -m workloads.make_data {root} --only {name}`"
        )
    path = root / name
    if args.drop_caches:
        evict(path)
    return path


def evict(path: Path) -> None:
    """Drop ``path``'s (a file's or a whole tree's) clean pages from the page cache.

    Mapped pages stay: a job evicting a file it maps must unmap it first.
    """
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Meter:
    """Counts samples from the start of the job's timed part.

    Args:
        target: samples to reach.
        seconds: also stop once the timed part has run this long (0: no limit).
    """

    def __init__(self, target: int, seconds: float = 0.0) -> None:
        self.target = target
        self.seconds = seconds
        self.samples = 0
        self.t0 = time.monotonic()

    def add(self, n: int) -> bool:
        """Count ``n`` samples; True once the target (or the time limit) is reached."""
        self.samples += n
        return self.done

    @property
    def done(self) -> bool:
        timed_out = self.seconds > 0 and time.monotonic() - self.t0 >= self.seconds
        return self.samples >= self.target or timed_out

    def result(self, workload: str, **extra: Any) -> dict[str, Any]:
        end = time.monotonic()
        seconds = end - self.t0
        return {
            "workload": workload,
            "samples": self.samples,
            "seconds": round(seconds, 4),
            "samples_per_s": round(self.samples / seconds, 2) if seconds > 0 else 0.0,
            # When the process began, and its timed part, on the system-wide monotonic clock:
            # the harness places them on the wall time it measured around the whole command.
            "clock": {"process": process_start(), "timed": self.t0, "end": end},
            **extra,
        }


def process_start() -> float | None:
    """When this process was forked, on :func:`time.monotonic`'s clock (to 1/CLK_TCK s)."""
    ticks = start_time(os.getpid())  # since boot, on CLOCK_BOOTTIME
    if ticks is None:
        return None
    # Monotonic leaves out time suspended: shift by how far the two clocks are apart now.
    offset = time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()
    return ticks / os.sysconf("SC_CLK_TCK") - offset


def emit(result: dict[str, Any]) -> None:
    """Print the result line (and flush: the harness may be reading a pipe)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The last result line in a job's output, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                return dict(json.loads(line[len(RESULT_PREFIX) :]))
            except ValueError:
                return None
    return None


def entry(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a job's ``main``; a UserError becomes one line on stderr and status 2."""
    try:
        main(argv)
    except UserError as e:
        print(f"{Path(sys.argv[0]).stem}: {e}", file=sys.stderr)
        return 2
    return 0

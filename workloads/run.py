"""The harness: run a workload to N samples under fixed knob settings, and put everything back.

    python -m workloads.run --workload NAME [--samples N] [--noisy] [--knobs k=v,...]
        [--repeat K] [--json] [--data-dir DIR] [--size tiny|default] [--under "autotune tune ..."]

Each run: make the data if needed (on a loop device of the harness's own unless ``--data-dir``),
drop the data's page cache, fix the knobs (read-ahead on the loop device before the start, the
rest through the actuators once the job runs), start the neighbour if asked, run the job and
time it, then restore knobs, stop the neighbour and detach the disk — on failure and Ctrl-C too.

From Python (the fidelity and online benches)::

    from workloads.run import Workbench, run_workload
    r = run_workload("shards", samples=2048, knobs={"readahead": 128})
    with Workbench() as wb:                      # one data disk for many runs
        a = wb.run("cnn_noisy", knobs={"weight.trainer": 8, "weight.loader": 8})
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from autotune.errors import UserError
from autotune.system.blockdev import disk_of_path
from autotune.target import Target
from autotune.telemetry.progress import ProgressServer
from workloads import catalog, disk, jobkit, make_data
from workloads.knobs import FixedKnobs, format_knobs, parse
from workloads.neighbour import Neighbour, stop_group

REPO = Path(__file__).resolve().parents[1]
FOLLOW_S = 0.25  # how often the actuators follow new workers (the tuner's default interval)
DISK_MIB = {"default": 2560, "tiny": 256}
TINY_SAMPLES = 64  # the jobs' own defaults are sized for the default data


class WorkloadFailed(UserError):
    """The job exited with an error, or ran past its time limit."""


@dataclass
class Result:
    """One run.

    Attributes:
        workload: its name.
        knobs: the fixed settings (empty: as found).
        noisy: whether the neighbour ran.
        samples: samples the job trained on.
        wall_s: job start to exit, interpreter start-up included (what a person waits).
        job_s: the job's own timed part (data loading and training).
        samples_per_s: samples / job_s, as the job reported it.
        reported_samples: samples that arrived through the progress channel (None under a tuner,
            which owns the channel).
        device_read_mib: read from the data's loop device during the run (None: not a loop).
        load1: the 1-minute load average when the run started (the VM is shared).
        in_effect: the fixed knobs as read back while the job ran (once its workers existed).
        job: everything the job reported.
        stderr_tail: the last lines the run wrote to stderr (a tuner's summary, say).
    """

    workload: str
    knobs: dict[str, float]
    noisy: bool
    samples: int
    wall_s: float
    job_s: float
    samples_per_s: float
    reported_samples: float | None
    device_read_mib: float | None
    load1: float
    in_effect: dict[str, float] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)
    stderr_tail: list[str] = field(default_factory=list)

    def line(self) -> str:
        read = "" if self.device_read_mib is None else f"  read {self.device_read_mib:.0f} MiB"
        return (
            f"{self.workload:<9} {format_knobs(self.knobs):<28} "
            f"{'noisy' if self.noisy else 'quiet'}  {self.samples} samples  "
            f"wall {self.wall_s:.1f} s  job {self.job_s:.1f} s  "
            f"{self.samples_per_s:.0f} samples/s{read}  load {self.load1:.1f}"
        )


class Workbench:
    """A data disk (made here, or an existing directory) and the runs on it.

    Args:
        size: ``default`` data, or ``tiny`` (tests: seconds per run).
        data_dir: use this directory instead of making a loop device; read-ahead can then be
            set only if it lives on a loop device.
        seed: the data's seed.
    """

    def __init__(self, size: str = "default", data_dir: Path | None = None, seed: int = 0) -> None:
        if size not in make_data.SIZES:
            raise UserError(f"unknown data size {size!r}; choose one of {', '.join(DISK_MIB)}")
        self.size = size
        self.seed = seed
        self._given = data_dir
        self._disk: disk.DataDisk | None = None
        self.data: Path | None = None
        self.device: str | None = None

    def open(self) -> Workbench:
        if self._given is not None:
            if not self._given.is_dir():
                raise UserError(f"data directory {self._given} does not exist")
            self.data = self._given
            dev = disk_of_path(self._given)
            self.device = dev if dev and dev.startswith("loop") else None
            return self
        self._disk = disk.DataDisk(DISK_MIB[self.size]).open()
        self.data, self.device = self._disk.mnt, self._disk.dev
        return self

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
        self.data = self.device = None

    def __enter__(self) -> Workbench:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self, name: str) -> Path:
        """Make the workload's data if it is not there yet; returns the data root."""
        if self.data is None:
            raise UserError("the workbench is not open")
        make_data.make(self.data, self.size, self.seed, only=(catalog.get(name).dataset,))
        return self.data

    def command(
        self, name: str, samples: int | None = None, extra_args: Sequence[str] = ()
    ) -> list[str]:
        """The job's command line."""
        w = catalog.get(name)
        cmd = [sys.executable, "-m", w.module, "--data-dir", str(self.prepare(name))]
        if self.size == "tiny":
            cmd += w.tiny_args
            samples = TINY_SAMPLES if samples is None else samples
        if samples is not None:
            cmd += ["--samples", str(samples)]
        return [*cmd, *extra_args]

    def run(
        self,
        name: str,
        samples: int | None = None,
        knobs: Mapping[str, float] | None = None,
        noisy: bool | None = None,
        *,
        under: str | None = None,
        extra_args: Sequence[str] = (),
        timeout_s: float = 900.0,
    ) -> Result:
        """Run a workload once on a cold cache with ``knobs`` held fixed; restores everything.

        Args:
            name: a workload of :data:`catalog.WORKLOADS`.
            samples: stop after this many (default: the job's).
            knobs: knob name → ladder value; read-ahead acts on the data's loop device.
            noisy: run beside ``stress-ng --cpu 2`` (default: the workload's own choice).
            under: a command prefix to run the job under (``autotune tune --model m``); ``--``
                and the job's command are appended.
            extra_args: more flags for the job.
            timeout_s: kill the job after this long.

        Raises:
            WorkloadFailed: the job failed or timed out.
            UserError: bad knobs, no root for the disk, a missing tool.
        """
        w = catalog.get(name)
        noisy = w.noisy if noisy is None else noisy
        checked = parse(format_knobs(knobs)) if knobs else {}
        cmd = self.command(name, samples, extra_args)
        if under:
            prefix = shlex.split(under)
            cmd = [*prefix, *([] if prefix[-1:] == ["--"] else ["--"]), *cmd]
        with contextlib.ExitStack() as stack:
            progress = None if under else stack.enter_context(ProgressServer())
            fixed = FixedKnobs(checked, self.device, progress, tuned=bool(under))
            stack.callback(fixed.close)
            data = self.prepare(name) / w.dataset
            disk.drop_cache(data, self.device)
            fixed.before_start()
            if noisy:
                stack.enter_context(Neighbour(cpus=2))
            load1 = os.getloadavg()[0]
            dev = self.device
            read0 = disk.device_read_bytes(dev) if dev else None
            env = {**os.environ, **(progress.env if progress else {})}
            # The job's stdin is its dataset's manifest (it never reads stdin): a file open on
            # the data disk from the first instant, so a tuner or recorder wrapped around the
            # job finds the device for `readahead` at once, not only once the job has imported
            # torch and opened its data (`record --explore` picks its knobs at launch).
            stdin = stack.enter_context((data / "manifest.json").open("rb"))
            t0 = time.monotonic()
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # one group to stop; Ctrl-C reaches the harness only
            )
            stack.callback(stop_group, proc)
            fixed.started(Target([proc.pid], f"workload {name}", process=proc, command=cmd))
            out, err = _wait(proc, fixed, t0 + timeout_s)
            wall = time.monotonic() - t0
            read = disk.device_read_bytes(dev) - read0 if dev and read0 is not None else None
            reported = drain_progress(progress) if progress else None
        if proc.returncode != 0:
            tail = (err.strip().splitlines() or ["(no output)"])[-1]
            raise WorkloadFailed(f"workload {name} exited with status {proc.returncode}: {tail}")
        job = jobkit.parse_result(out)
        if job is None:
            raise WorkloadFailed(f"workload {name} printed no result line")
        return Result(
            workload=name,
            knobs=checked,
            noisy=noisy,
            samples=int(job["samples"]),
            wall_s=round(wall, 3),
            job_s=float(job["seconds"]),
            samples_per_s=float(job["samples_per_s"]),
            reported_samples=reported,
            device_read_mib=None if read is None else round(read / 2**20, 1),
            load1=round(load1, 2),
            in_effect=dict(fixed.in_effect),
            job=job,
            stderr_tail=err.strip().splitlines()[-8:],
        )


def _wait(proc: subprocess.Popen[bytes], fixed: FixedKnobs, deadline: float) -> tuple[str, str]:
    """Wait for the job, letting the actuators follow it; returns its stdout and stderr."""
    while True:
        try:
            out, err = proc.communicate(timeout=FOLLOW_S)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise WorkloadFailed("the workload ran past its time limit") from None
            fixed.follow()
            continue
        return out.decode(errors="replace"), err.decode(errors="replace")


def drain_progress(progress: ProgressServer, quiet_s: float = 0.3, limit_s: float = 3.0) -> float:
    """Samples received from the job, waiting until its last reports (sent at exit) are in."""
    total = 0.0
    end = time.monotonic() + limit_s
    last = time.monotonic()
    while time.monotonic() < end and time.monotonic() - last < quiet_s:
        counts = progress.take()
        if counts.reports:
            total += counts.samples
            last = time.monotonic()
        time.sleep(0.05)
    return total


def run_workload(
    name: str,
    samples: int | None = None,
    knobs: Mapping[str, float] | None = None,
    noisy: bool | None = None,
    *,
    size: str = "default",
    data_dir: Path | None = None,
    under: str | None = None,
) -> Result:
    """Run one workload once on a fresh data disk (see :meth:`Workbench.run`)."""
    with Workbench(size, data_dir) as wb:
        return wb.run(name, samples, knobs, noisy, under=under)


def summary(results: Sequence[Result]) -> dict[str, Any]:
    """Median and range of samples/s and wall time over repeats."""
    rates = [r.samples_per_s for r in results]
    walls = [r.wall_s for r in results]
    return {
        "runs": len(results),
        "samples_per_s": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)},
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
    }


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwind through every finally: knobs, neighbour, disk


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="workloads.run", description=__doc__.splitlines()[0])
    p.add_argument("--workload", required=True, choices=sorted(catalog.WORKLOADS))
    p.add_argument("--samples", type=int, help="stop after this many samples (default: the job's)")
    p.add_argument("--noisy", action="store_true", help="beside stress-ng --cpu 2")
    p.add_argument("--knobs", default="", help="fixed settings, name=value,... (knob table)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", action="store_true", help="one JSON object per run, then a summary")
    p.add_argument("--data-dir", type=Path, help="use data here instead of a loop device")
    p.add_argument("--size", default="default", choices=sorted(make_data.SIZES))
    p.add_argument("--under", help='run the job under a command prefix ("autotune tune ...")')
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if args.repeat < 1:
            raise UserError(f"--repeat must be at least 1, got {args.repeat}")
        if args.samples is not None and args.samples < 1:
            raise UserError(f"--samples must be positive, got {args.samples}")
        knobs = parse(args.knobs)
        results = []
        with Workbench(args.size, args.data_dir) as wb:
            for _ in range(args.repeat):
                noisy = True if args.noisy else None
                r = wb.run(
                    args.workload,
                    args.samples,
                    knobs,
                    noisy,
                    under=args.under,
                    timeout_s=args.timeout,
                )
                results.append(r)
                print(json.dumps(asdict(r)) if args.json else r.line(), flush=True)
        if args.repeat > 1:
            s = summary(results)
            if args.json:
                print(json.dumps({"summary": s}))
            else:
                sps, wall = s["samples_per_s"], s["wall_s"]
                print(
                    f"median {sps['median']:.0f} samples/s ({sps['min']:.0f}–{sps['max']:.0f}), "
                    f"wall {wall['median']:.1f} s ({wall['min']:.1f}–{wall['max']:.1f}) "
                    f"over {s['runs']} runs"
                )
    except UserError as e:
        print(f"workloads.run: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("workloads.run: interrupted; everything restored", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

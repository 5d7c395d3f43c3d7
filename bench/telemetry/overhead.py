"""What recording costs: hackbench and fio with and without the recorder at 250 ms, interleaved.

Each repetition runs every workload once without and once with the recorder (the order
alternates between repetitions), and prints:

* runtime with / without, per workload (target ≤ 1.03): hackbench's own ``Time:``, fio's own
  job runtime (4 KiB random reads, direct I/O, a fixed amount, on a loop device of our own);
* the recorder's CPU time as a share of one core while the workload runs, after its start-up
  (so without the one-off bcc compile; target ≤ 1 %), per workload (it walks the job's process
  tree every 2 s and searches its open files for block devices: hackbench has 160 processes and
  3,500 sockets), and in a steady state of
  :data:`STEADY_S` seconds on an idle one-process target; its memory (VmRSS then, and VmHWM, the
  peak, which includes the compile);
* start-up: seconds from starting the recorder to its first row (t_wall of row 0 in the trace);
* in-kernel cost, in the same invocation and without the noise of wall-clock ratios: with the
  collector open and ``kernel.bpf_stats_enabled`` on (restored after), the run time the kernel
  counts for our programs during each workload, as a share of all CPU time (wall × CPUs) and of
  the workload's own CPU time, and per event (ns per call) for the busiest programs.

fio reads a loop device backed by memory (/dev/shm), so that its runtime measures the block
layer and our tracepoints rather than the other engineers' load on the root disk.

The recorder is ``autotune record --pid`` (default) on the workload's process, started and ready
(its collector open) before the workload begins; ``--recorder driver`` runs
bench/telemetry/driver.py instead (collector, features and row, no trace file).

Run as root: ``.venv/bin/python -m bench.telemetry.overhead [--repeats 5] [--recorder record]
[--json FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from autotune.target import Target
from autotune.telemetry.collector import open_collector
from bench.actuators.common import load, spread
from bench.results import write_result
from bench.telemetry.common import (
    bpf_stats_enabled,
    memory_disk,
    proc_cpu_ns,
    prog_stats,
    rss_kib,
)

REPO = Path(__file__).resolve().parents[2]
AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]
READY_TIMEOUT_S = 180
STEADY_S = 10.0


@dataclass
class RecorderFigures:
    cpu_percent: float  # of one core, while the workload ran
    rss_kib: int
    hwm_kib: int
    startup_s: float  # start to first row


def workload(kind: str, mnt: Path) -> list[str]:
    if kind == "hackbench":
        return ["hackbench", "-g", "4", "-l", "1000"]
    return [
        "fio",
        "--name=randread",
        f"--filename={mnt / 'fio.dat'}",
        "--rw=randread",
        "--bs=4k",
        "--direct=1",
        "--ioengine=psync",
        "--size=128M",
        "--io_size=256M",
        "--output-format=json",
    ]


def runtime_s(kind: str, output: str) -> float:
    if kind == "hackbench":
        m = re.search(r"^Time:\s*([\d.]+)", output, re.M)
        if not m:
            raise RuntimeError(f"hackbench printed no time: {output[-300:]}")
        return float(m.group(1))
    return float(json.loads(output)["jobs"][0]["read"]["runtime"]) / 1000


class Recorder:
    """A recorder process on ``pid``, started and waited for until its collector is open."""

    def __init__(self, kind: str, pid: int, out: Path) -> None:
        self.kind, self.out = kind, out
        if kind == "record":
            argv = [*AUTOTUNE, "record", "--pid", str(pid), "-o", str(out), "--interval", "250"]
            ready = "recording"
        else:
            argv = [sys.executable, "-m", "bench.telemetry.driver", str(pid)]
            ready = "ready"
        self.started_wall = time.time()
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.stderr = ""
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stderr], [], [], 0.5)
            if r:
                line = self.proc.stderr.readline()
                self.stderr += line
                if ready in line:
                    return
                if not line:
                    break
        self.proc.kill()
        raise RuntimeError(f"the recorder did not start: {self.stderr.strip()[-300:]}")

    def finish(self) -> float:
        """Wait for it to end with its target; returns seconds from start to its first row."""
        _, rest = self.proc.communicate(timeout=120)
        self.stderr += rest
        if self.proc.returncode != 0:
            raise RuntimeError(f"the recorder failed: {self.stderr.strip()[-300:]}")
        if self.kind == "record":
            first = pq.read_table(self.out, columns=["t_wall"]).column("t_wall")[0].as_py()
            return float(first) - self.started_wall
        m = re.search(r"first ([\d.]+)", self.stderr)
        return float(m.group(1)) if m else float("nan")


def one(
    kind: str, mnt: Path, recorder: str | None, tmp: Path
) -> tuple[float, RecorderFigures | None]:
    """Run the workload once (held until the recorder is ready); its runtime and the recorder's."""
    target = subprocess.Popen(
        ["sh", "-c", 'read go; exec "$@"', "sh", *workload(kind, mnt)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    rec: Recorder | None = None
    try:
        if recorder is not None:
            rec = Recorder(recorder, target.pid, tmp / f"{kind}-{time.monotonic_ns()}.parquet")
            cpu0, t0 = proc_cpu_ns(rec.proc.pid)[0], time.monotonic_ns()
        out, _ = target.communicate("go\n", timeout=600)
        figures = None
        if rec is not None:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                cpu1, t1 = proc_cpu_ns(rec.proc.pid)[0], time.monotonic_ns()
                rss, hwm = rss_kib(rec.proc.pid)
                figures = RecorderFigures(100 * (cpu1 - cpu0) / (t1 - t0), rss, hwm, 0.0)
            startup = rec.finish()
            if figures is not None:
                figures.startup_s = startup
        return runtime_s(kind, out), figures
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
        if rec is not None and rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()


def steady(recorder: str, tmp: Path, repeats: int) -> list[RecorderFigures]:
    """The recorder on a sleeping one-process target for STEADY_S, after its start-up."""
    out = []
    for i in range(repeats):
        target = subprocess.Popen(["sleep", str(STEADY_S + 120)])
        try:
            rec = Recorder(recorder, target.pid, tmp / f"steady-{i}.parquet")
            time.sleep(1.0)
            cpu0, t0 = proc_cpu_ns(rec.proc.pid)[0], time.monotonic_ns()
            time.sleep(STEADY_S)
            cpu1, t1 = proc_cpu_ns(rec.proc.pid)[0], time.monotonic_ns()
            rss, hwm = rss_kib(rec.proc.pid)
            target.kill()
            target.wait()
            startup = rec.finish()
            out.append(RecorderFigures(100 * (cpu1 - cpu0) / (t1 - t0), rss, hwm, startup))
        finally:
            if target.poll() is None:
                target.kill()
                target.wait()
    return out


def kernel_cost(mnt: Path, kinds: tuple[str, ...], repeats: int) -> dict[str, Any]:
    """Our programs' run time during each workload, counted by the kernel (bpf_stats): per
    workload, every repeat's share of all CPU time and of the workload's, and ns per call."""
    result: dict[str, Any] = {}
    ncpus = os.sysconf("SC_NPROCESSORS_ONLN")
    sleeper = subprocess.Popen(["sleep", "3600"])
    try:
        with (
            open_collector(Target.from_pid(sleeper.pid), require_bpf=True) as col,
            bpf_stats_enabled(),
        ):
            fds = col.program_fds()
            for kind in kinds:
                node_share, work_share = [], []
                per_event: dict[str, list[float]] = {}
                for _ in range(repeats):
                    before, t0 = prog_stats(fds), time.monotonic_ns()
                    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    subprocess.run(workload(kind, mnt), check=True, capture_output=True)
                    after, t1 = prog_stats(fds), time.monotonic_ns()
                    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    ns = {k: after[k][0] - before[k][0] for k in fds}
                    calls = {k: after[k][1] - before[k][1] for k in fds}
                    work = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) * 1e9
                    node_share.append(100 * sum(ns.values()) / ((t1 - t0) * ncpus))
                    work_share.append(100 * sum(ns.values()) / max(work, 1.0))
                    for k in fds:
                        if calls[k] > 1000:
                            per_event.setdefault(k, []).append(ns[k] / calls[k])
                result[kind] = {
                    "pct_of_all_cpu": node_share,
                    "pct_of_workload_cpu": work_share,
                    "ns_per_call": per_event,
                }
                print(
                    f"  {kind:10s} our BPF run time: % of all CPU time {spread(node_share)}, "
                    f"% of the workload's CPU time {spread(work_share)}"
                )
                for k, v in sorted(per_event.items()):
                    print(f"  {'':10s}   {k.removeprefix('tracepoint__'):45s} {spread(v)} ns/call")
    finally:
        sleeper.kill()
        sleeper.wait()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--recorder", choices=("record", "driver"), default="record")
    ap.add_argument("--json", help="write the raw repeats here")
    ap.add_argument("--note", help="what else ran on the machine, for the result file")
    args = ap.parse_args()
    kinds = ("hackbench", "fio")
    print(f"overhead: recorder={args.recorder}, {args.repeats} pairs; start: {load()}", flush=True)
    base: dict[str, list[float]] = {k: [] for k in kinds}
    ratios: dict[str, list[float]] = {k: [] for k in kinds}
    recs: dict[str, list[RecorderFigures]] = {k: [] for k in (*kinds, "steady")}
    with memory_disk(256) as mnt, tempfile.TemporaryDirectory(prefix="autotune-bench-") as d:
        subprocess.run(workload("fio", mnt), check=True, capture_output=True)  # lays the file out
        for i in range(args.repeats):
            for kind in kinds:
                order: list[str | None] = [None, args.recorder]
                if i % 2:
                    order.reverse()
                got: dict[str | None, float] = {}
                for rec in order:
                    got[rec], figures = one(kind, mnt, rec, Path(d))
                    if figures is not None:
                        recs[kind].append(figures)
                base[kind].append(got[None])
                ratios[kind].append(got[args.recorder] / got[None])
                print(
                    f"pair {i + 1} {kind}: without {got[None]:.3f} s, with "
                    f"{got[args.recorder]:.3f} s, ratio {ratios[kind][-1]:.3f}; {load()}",
                    flush=True,
                )
        print(f"in-kernel cost (kernel.bpf_stats_enabled, median [min–max]); {load()}")
        kernel = kernel_cost(mnt, kinds, args.repeats)
        recs["steady"] = steady(args.recorder, Path(d), 3)
    print(f"end: {load()}")
    print("median [min–max]:")
    for kind in kinds:
        print(
            f"  {kind:10s} runtime without {spread(base[kind])} s, ratio with/without "
            f"{spread(ratios[kind])}"
        )
    for kind, figures in recs.items():
        if not figures:
            continue
        where = "idle target" if kind == "steady" else f"during {kind}"
        print(f"  recorder, {where} ({len(figures)} runs):")
        rows = {
            "CPU % of one core (after start-up)": [r.cpu_percent for r in figures],
            "VmRSS MiB": [r.rss_kib / 1024 for r in figures],
            "VmHWM MiB (peak, with the compile)": [r.hwm_kib / 1024 for r in figures],
            "start to first row s": [r.startup_s for r in figures],
        }
        for name, values in rows.items():
            print(f"    {name:40s} {spread(values)}")
    if args.json:
        write_result(
            args.json,
            __file__,
            args.note,
            runtime_without_s=base,
            ratio_with_over_without=ratios,
            recorder={k: [asdict(r) for r in v] for k, v in recs.items()},
            kernel=kernel,
        )


if __name__ == "__main__":
    main()

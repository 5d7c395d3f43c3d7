"""Correctness of the BPF collectors against bcc's own tools and /proc: one workload, one run.

Each repetition runs the collector at 250 ms beside bcc's tools, all tracing the same window of
the same workload, and prints ours / theirs:

* run-queue latency p50 and p99, all tasks (our roles summed), against ``runqlat-bpfcc`` (bcc's
  Python tool: raw tracepoints that read ``task_struct`` with the headers bcc compiles against)
  and libbpf-tools' ``runqlat`` (the same tool from the bcc tree, CO-RE, so it reads this
  kernel's own layout);
* block request latency p50 and p99 on our loop device, against libbpf-tools' ``biolatency -d``
  (issue → complete, the default, as ours). ``biolatency-bpfcc`` attaches kprobes, which this
  kernel does not have: the bench says so when it cannot start;
* on-CPU time of the trainer and of the loaders against ``/proc/<pid>/stat`` (utime + stime of
  the job, cutime + cstime of its reaped children), and the progress the job reported through
  ``autotune.client`` against the job's own count (the proxy, used without a client, is the
  trainer's on-CPU time, checked in the line before).

The workload (bench/telemetry/job.py): a trainer with two threads that burn CPU and report
progress, and two loader processes: ``hackbench`` in a loop and ``fio`` 4 KiB random reads
(direct I/O) on a loop device of our own. Target: within 20 % (ratios 0.8 to 1.2).

Run as root: ``.venv/bin/python -m bench.telemetry.correctness [--seconds 6] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autotune.roles import ROLE_INDEX, Role
from autotune.target import Target
from autotune.telemetry.collector import open_collector
from autotune.telemetry.progress import ProgressServer
from autotune.telemetry.sample import C, Sample
from bench.actuators.common import load, spread
from bench.telemetry.common import p50_p99_us, parse_log2_hist, proc_cpu_ns, stop_all, tools
from workloads.disk import DataDisk

REPO = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("job.py")
TRAINER, LOADER = ROLE_INDEX[Role.TRAINER], ROLE_INDEX[Role.LOADER]


def fio_cmd(path: Path, seconds: float) -> list[str]:
    return [
        "fio",
        "--name=randread",
        f"--filename={path}",
        "--rw=randread",
        "--bs=4k",
        "--direct=1",
        "--ioengine=psync",
        "--size=64M",
        "--time_based",
        f"--runtime={seconds:g}",
        "--output=/dev/null",
    ]


def hackbench_loop(seconds: float) -> list[str]:
    script = (
        f"end=$(( $(date +%s) + {round(seconds)} )); "
        'while [ "$(date +%s)" -lt "$end" ]; do hackbench -g 2 -l 300 >/dev/null; done'
    )
    return ["sh", "-c", script]


def reference_tools(disk: str) -> dict[str, list[str]]:
    # Slowest to start first (see tools()): bcc's Python tools compile, libbpf-tools do not.
    return {
        "biolatency-bpfcc": ["/usr/sbin/biolatency-bpfcc", "-d", disk],
        "runqlat-bpfcc": ["/usr/sbin/runqlat-bpfcc"],
        "runqlat (libbpf-tools)": ["/usr/sbin/runqlat"],
        "biolatency (libbpf-tools)": ["/usr/sbin/biolatency", "-d", disk],
    }


def run_job(
    col_samples: list[Sample], proc: subprocess.Popen[str], sample: Callable[[], Sample]
) -> int:
    """Send go, sample every 250 ms until the job says done; returns its sample count."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], 0.25)
        col_samples.append(sample())
        if ready:
            line = proc.stdout.readline().split()
            if line[:1] == ["done"]:
                return int(line[1])
            raise RuntimeError(f"the job said {line!r}")


def one_run(disk: DataDisk, seconds: float) -> dict[str, float | str]:
    """One repetition: the ratios ours / theirs, by figure."""
    data = disk.mnt / "fio.dat"
    commands = [fio_cmd(data, seconds), hackbench_loop(seconds)]
    out: dict[str, float | str] = {}
    with ProgressServer() as progress:
        proc = subprocess.Popen(
            [sys.executable, str(JOB), str(seconds), "2", json.dumps(commands)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **progress.env},
            cwd=REPO,
        )
        try:
            target = Target.from_pid(proc.pid)
            with (
                open_collector(target, progress=progress, require_bpf=True) as col,
                tools(reference_tools(disk.dev)) as (running, failed),
            ):
                self0, child0 = proc_cpu_ns(proc.pid)
                first = col.sample()  # since open, while the tools started: not compared
                samples: list[Sample] = []
                reported = run_job(samples, proc, col.sample)
                time.sleep(0.1)  # the job's last progress report is sent, maybe not yet received
                samples.append(col.sample())
                outputs = stop_all(running)
                self1, child1 = proc_cpu_ns(proc.pid)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.kill()
            proc.wait()
    runq = sum((s.runq_hist.sum(axis=0) for s in samples), np.zeros_like(first.block_lat_hist))
    blk = sum(
        (s.devices[disk.dev].lat_hist for s in samples if disk.dev in s.devices),
        np.zeros_like(first.block_lat_hist),
    )
    ours = {"runq": p50_p99_us(runq), "blk": p50_p99_us(blk)}
    out["runq events ours"] = float(runq.sum())
    out["block requests ours"] = float(blk.sum())
    for name, text in outputs.items():
        theirs_hist = parse_log2_hist(text)
        kind = "runq" if name.startswith("runqlat") else "blk"
        if not theirs_hist.any():
            out[f"{name} printed no histogram"] = text.strip().splitlines()[-1][:120]
            continue
        theirs = p50_p99_us(theirs_hist)
        out[f"{name} events"] = float(theirs_hist.sum())
        out[f"{name} p50 ours/theirs"] = ours[kind][0] / theirs[0]
        out[f"{name} p99 ours/theirs"] = ours[kind][1] / theirs[1]
        out[f"{name} p50 theirs us"] = theirs[0]
        out[f"{name} p99 theirs us"] = theirs[1]
    for name, why in failed.items():
        out[f"{name} unavailable"] = why
    allsamples = [first, *samples]
    trainer = sum(int(s.roles[TRAINER, C["oncpu_ns"]]) for s in allsamples)
    loader = sum(int(s.roles[LOADER, C["oncpu_ns"]]) for s in allsamples)
    out["trainer cpu ours/proc"] = trainer / max(self1 - self0, 1)
    out["loader cpu ours/proc"] = loader / max(child1 - child0, 1)
    client = sum(s.progress_samples for s in allsamples if s.progress_source == "client")
    out["progress ours/job"] = client / max(reported, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="workload length per repetition")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"correctness: {args.repeats} × {args.seconds:g} s; start: {load()}")
    runs: list[dict[str, float | str]] = []
    with DataDisk(256) as disk:
        subprocess.run(fio_cmd(disk.mnt / "fio.dat", 1), check=True)  # lays the file out
        for i in range(args.repeats):
            r = one_run(disk, args.seconds)
            runs.append(r)
            shown = ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in r.items()
            )
            print(f"run {i + 1}: {shown}", flush=True)
    print(f"end: {load()}")
    print("median [min–max] over repetitions:")
    keys = list(dict.fromkeys(k for r in runs for k in r))
    for key in keys:
        values = [float(r[key]) for r in runs if isinstance(r.get(key), float)]
        if values:
            print(f"  {key:45s} {spread(values)} ({len(values)} runs)")
        else:
            print(f"  {key:45s} {next(r[key] for r in runs if key in r)}")


if __name__ == "__main__":
    main()

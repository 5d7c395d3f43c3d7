"""What the telemetry costs a buffered, read-heavy job: one of the bundled jobs at fixed knobs,
with and without the telemetry's BPF programs loaded, interleaved.

``bench/telemetry/overhead.py`` measures fio with direct I/O, where the page cache's tracepoints
(one event per folio added, and the read-ahead ones) never fire. A job that reads through the
page cache, as a DataLoader does, fires them for every 4 KiB it reads. Here the job (``shards``
by default, at read-ahead 1 MiB, its best fixed setting on this VM) runs ``--repeats`` times
with the collector open (``open_collector`` on an idle process: the programs fire for every
task, whatever the target) and as many times without; the order alternates each repeat. It
prints:

* the job's wall and own time, and the paired ratio of rates with / without (geometric mean, a
  95 % bootstrap interval over repeats);
* with ``kernel.bpf_stats_enabled`` on during the runs with the collector (restored after), the
  run time the kernel counts for each program during the job, as a share of the node's CPU time
  (wall × CPUs), its calls per second and nanoseconds per call.

The collector's programs see the job's tasks as nobody's (its role table is the idle target's),
which takes their cheapest path. ``--under-tune MODEL`` runs the job under ``autotune tune
--dry-run --model MODEL`` instead, which enters the job's tasks in the table and runs its loop
beside them (nothing written: the knobs stay as set); its programs' cost is read from every BPF
program that appears on the node during the run (by id: their names are the tuner's).

Run as root: ``.venv/bin/python -m bench.telemetry.read_cost [--job shards] [--samples N]
[--readahead 1024] [--repeats 5] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import UserError
from autotune.target import Target
from autotune.telemetry.collector import open_collector
from bench.adaptive.oracle import paired
from bench.results import write_result
from bench.telemetry.common import bpf_stats_enabled, node_prog_stats, prog_stats
from workloads import catalog
from workloads.run import Workbench

TOTAL = "all programs"  # kernel's entry for their sum, per run
POLL_S = 0.25  # how often the tuner's programs are read (their counts go when it exits)


class _Watch:
    """Every BPF program that appears on the node while it runs, with its last counts."""

    def __init__(self) -> None:
        import threading

        self.before = set(node_prog_stats())
        self.last: dict[int, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            for pid, v in node_prog_stats().items():
                if pid not in self.before:
                    self.last[pid] = v

    def stop(self) -> dict[str, tuple[int, int]]:
        self._stop.set()
        self._thread.join()
        # Named by rank of calls (a program's id changes with every run): "busiest 1" is the
        # scheduler's switch tracepoint in every run so far.
        ranked = sorted(self.last.values(), key=lambda v: -v[1])
        return {f"busiest {i + 1}": v for i, v in enumerate(ranked)}


def paired_ratio(with_: list[float], without: list[float]) -> dict[str, Any]:
    """Rate with / without (times inverted), paired by repeat: the geometric mean and its 95 %
    bootstrap interval, as every bench's (:func:`bench.adaptive.oracle.paired`)."""
    p = paired(without, with_)
    return {"ratio": round(p["mean"], 4), "ci95": [round(x, 4) for x in p["ci95"]]}


def _add_kernel(
    kernel: dict[str, list[dict[str, float]]],
    before: dict[str, tuple[int, int]],
    after: dict[str, tuple[int, int]],
    wall_ns: int,
    ncpus: int,
) -> None:
    total = 0
    for k in after:
        ns, calls = after[k][0] - before[k][0], after[k][1] - before[k][1]
        total += ns
        kernel.setdefault(k, []).append(
            {
                "pct_of_node_cpu": 100 * ns / (wall_ns * ncpus),
                "calls_per_s": calls / (wall_ns / 1e9),
                "ns_per_call": ns / calls if calls else 0.0,
            }
        )
    kernel.setdefault(TOTAL, []).append({"pct_of_node_cpu": 100 * total / (wall_ns * ncpus)})


def run(args: argparse.Namespace) -> dict[str, Any]:
    knobs = {"readahead": float(args.readahead)}
    arms: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    kernel: dict[str, list[dict[str, float]]] = {}
    ncpus = os.cpu_count() or 1
    under = None
    if args.under_tune:
        tune = [sys.executable, "-m", "autotune.cli.main", "tune", "--no-view", "--dry-run"]
        under = " ".join([*tune, "--model", str(args.under_tune)])
    sleeper = subprocess.Popen(["sleep", "infinity"])
    try:
        with Workbench() as wb:
            wb.prepare(args.job)
            for i in range(args.repeats):
                order = ("without", "with") if i % 2 == 0 else ("with", "without")
                for arm in order:
                    if arm == "without":
                        res = wb.run(args.job, args.samples, knobs, timeout_s=args.timeout)
                    elif args.under_tune:
                        with bpf_stats_enabled():
                            watch, t0 = _Watch(), time.monotonic_ns()
                            try:
                                res = wb.run(
                                    args.job,
                                    args.samples,
                                    knobs,
                                    under=under,
                                    timeout_s=args.timeout,
                                )
                            finally:
                                after, t1 = watch.stop(), time.monotonic_ns()
                        _add_kernel(kernel, dict.fromkeys(after, (0, 0)), after, t1 - t0, ncpus)
                    else:
                        with (
                            open_collector(Target.from_pid(sleeper.pid), require_bpf=True) as col,
                            bpf_stats_enabled(),
                        ):
                            fds = col.program_fds()
                            before, t0 = prog_stats(fds), time.monotonic_ns()
                            res = wb.run(args.job, args.samples, knobs, timeout_s=args.timeout)
                            after, t1 = prog_stats(fds), time.monotonic_ns()
                        _add_kernel(kernel, before, after, t1 - t0, ncpus)
                    arms[arm].append({"wall_s": res.wall_s, "job_s": res.job_s})
                    print(
                        f"{i} {arm:8s} wall {res.wall_s:6.2f} s  job {res.job_s:6.2f} s",
                        flush=True,
                    )
    finally:
        sleeper.kill()
        sleeper.wait()
    out: dict[str, Any] = {
        "job": args.job,
        "samples": args.samples,
        "knobs": knobs,
        "with": f"{under} -- JOB" if under else "the collector open, on an idle target",
        "arms": arms,
        "with_vs_without_wall": paired_ratio(
            [r["wall_s"] for r in arms["with"]], [r["wall_s"] for r in arms["without"]]
        ),
        "with_vs_without_job": paired_ratio(
            [r["job_s"] for r in arms["with"]], [r["job_s"] for r in arms["without"]]
        ),
        "kernel": kernel,
    }
    total = float(np.median([x["pct_of_node_cpu"] for x in kernel[TOTAL]]))
    out["kernel_pct_of_node_cpu"] = round(total, 3)
    return out


def report(out: dict[str, Any]) -> None:
    w, j = out["with_vs_without_wall"], out["with_vs_without_job"]
    print(
        f"rate with / without the telemetry: wall {w['ratio']} {w['ci95']}, job {j['ratio']} "
        f"{j['ci95']}"
    )
    print(f"its programs: {out['kernel_pct_of_node_cpu']:.2f} % of the node's CPU time (median)")
    rows = sorted(
        out["kernel"].items(),
        key=lambda kv: -float(np.median([x["pct_of_node_cpu"] for x in kv[1]])),
    )
    for name, v in rows:
        pct = np.median([x["pct_of_node_cpu"] for x in v])
        if pct < 0.01 or name == TOTAL:
            continue
        cps = np.median([x["calls_per_s"] for x in v])
        ns = np.median([x["ns_per_call"] for x in v])
        print(f"  {name:50s} {pct:6.2f} %  {cps:10.0f} calls/s  {ns:6.0f} ns/call")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--job", default="shards")
    ap.add_argument("--samples", type=int, default=None, help="default: the job's own")
    ap.add_argument("--readahead", type=int, default=1024, help="KiB on the data's device")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument(
        "--under-tune",
        type=Path,
        default=None,
        metavar="MODEL",
        help="with: the job under `autotune tune --dry-run --model MODEL` (default: the collector "
        "open on an idle target)",
    )
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    ap.add_argument("--note", default=None, help="recorded with the machine (what ran beside)")
    args = ap.parse_args(argv)
    try:
        catalog.get(args.job)
        if os.geteuid() != 0:
            raise UserError("this bench loads BPF programs and sets read-ahead: run it as root")
        if args.repeats < 1:
            raise UserError("--repeats must be at least 1")
        if args.under_tune and not args.under_tune.exists():
            raise UserError(f"--under-tune: no policy at {args.under_tune}")
        out = run(args)
    except UserError as e:
        print(f"read_cost: {e}", file=sys.stderr)
        return 2
    report(out)
    if args.json:
        write_result(args.json, __file__, args.note, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

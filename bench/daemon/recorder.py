"""The recorder's interval under load: row spacing of `autotune record --interval 250` during
hackbench, and hackbench's own runtime (its ``Time:`` line) with and without the
recorder.

    .venv/bin/python -m bench.daemon.recorder --repeats 5 --json bench/results/daemon_recorder.json

Each repeat runs ``hackbench -l LOOPS -g 4`` (160 processes) alone (``baseline``), under
``autotune record --interval 250 -- hackbench ...`` (``recorded``: its sampling thread at the
default real-time priority, ``record_rt_priority``) and the same with that priority off
(``recorded_normal``), the order rotating every repeat. Printed for each recorded arm: the
p50/p99 of the spacing between consecutive rows' ``t`` (target: p99 within 2x the interval), and
the paired runtime ratio recorded/baseline with a 95 % bootstrap interval of the median (target
<= 1.02), and the recorder's own CPU while hackbench ran (every thread's ``schedstat``, read each
second, from its fourth second to two seconds before its end: neither the start-up's compile nor
the tear-down is in it), in % of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from bench.daemon.footprint import ci, cpu_s
from bench.results import write_result
from workloads.run import on_sigterm

# The arms, rotated each repeat: hackbench alone, and recorded with the sampling thread at the
# default real-time priority (autotune.system.priority) and under the normal scheduler.
ARMS = ["baseline", "recorded", "recorded_normal"]
RT_PRIORITY = {"recorded": "1", "recorded_normal": "0"}


def pct(value: float | None) -> str:
    """A share of a core for the log (a run too short to measure has none)."""
    return "not measured" if value is None else f"{value:.2f} %"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float | None]:
    """hackbench's own runtime (its ``Time:`` line: not the recorder's start-up, during which it
    holds the job stopped), and the CPU the command's own process used per second from its fourth
    second to two seconds before its end (the start-up's compile and the tear-down's detach are
    not the steady cost), in % of one core (None when it ran under 7 s)."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, text=True)
        readings: list[tuple[float, float]] = []
        start = time.monotonic()
        try:
            while proc.poll() is None:
                now = time.monotonic()
                with contextlib.suppress(OSError):  # it may end between poll and read
                    if now - start >= 3.0:
                        readings.append((now, cpu_s(proc.pid)))
                time.sleep(1.0)
        finally:
            if proc.poll() is None:  # interrupted: the command (it restores what it changed)
                proc.terminate()
                proc.wait()
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} exited with {proc.returncode}")
        out.seek(0)
        text = out.read()
    cpu = None
    if len(readings) >= 4:
        (t0, c0), (t1, c1) = readings[0], readings[-3]
        cpu = 100.0 * (c1 - c0) / (t1 - t0)
    for line in text.splitlines():
        if line.startswith("Time:"):
            return float(line.split()[1]), cpu
    raise SystemExit(f"no 'Time:' line from {cmd}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loops", type=int, default=20000)
    ap.add_argument("--interval", type=int, default=250, help="ms")
    ap.add_argument("--json", help="write the raw repeats here")
    ap.add_argument("--note", help="what else ran on the machine, for the result file")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C: the temporary folder goes.
    signal.signal(signal.SIGTERM, on_sigterm)
    if args.repeats < 5:
        raise SystemExit("--repeats: at least 5")
    hb = ["hackbench", "-l", str(args.loops), "-g", "4"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="autotune-bench-recorder-") as tmp:
        env = {
            **os.environ,
            "AUTOTUNE_JOURNAL": f"{tmp}/journal.json",
            "AUTOTUNE_RUNS_DIR": f"{tmp}/runs",
        }
        for r in range(args.repeats):
            order = ARMS[r % len(ARMS) :] + ARMS[: r % len(ARMS)]
            row: dict[str, Any] = {"order": order, "load_before": os.getloadavg()[0]}
            for arm in order:
                if arm == "baseline":
                    row["baseline_s"], _ = run(hb, env)
                    continue
                out = Path(tmp) / f"r{r}-{arm}.parquet"
                rec = [sys.executable, "-m", "autotune.cli.main", "record", "-o", str(out)]
                arm_env = {**env, "AUTOTUNE_RECORD_RT_PRIORITY": RT_PRIORITY[arm]}
                seconds, cpu = run([*rec, "--interval", str(args.interval), "--", *hb], arm_env)
                t = np.asarray(pq.read_table(out, columns=["t"]).column("t").to_pylist(), float)
                gaps = np.diff(t)
                row[arm] = {
                    "hackbench_s": seconds,
                    "recorder_cpu_pct": cpu,
                    "ratio": None,  # over the baseline, once it has run too
                    "rows": len(t),
                    "spacing_s": gaps.tolist(),
                    "spacing_p50_s": float(np.percentile(gaps, 50)) if len(gaps) else None,
                    "spacing_p99_s": float(np.percentile(gaps, 99)) if len(gaps) else None,
                    "spacing_max_s": float(gaps.max()) if len(gaps) else None,
                }
            for arm in RT_PRIORITY:
                row[arm]["ratio"] = row[arm]["hackbench_s"] / row["baseline_s"]
            rows.append(row)
            print(
                f"repeat {r + 1} ({', '.join(order)}; load {row['load_before']:.1f}): hackbench "
                f"{row['baseline_s']:.1f} s alone; "
                + "; ".join(
                    f"{arm} {row[arm]['ratio']:.3f}x,"
                    f" recorder CPU {pct(row[arm]['recorder_cpu_pct'])},"
                    f" spacing p50 {row[arm]['spacing_p50_s']:.3f}"
                    f" p99 {row[arm]['spacing_p99_s']:.3f} max {row[arm]['spacing_max_s']:.3f} s"
                    for arm in RT_PRIORITY
                ),
                flush=True,
            )
    summary: dict[str, Any] = {
        "interval_s": args.interval / 1000,
        "targets": {"spacing_p99_s": 2 * args.interval / 1000, "ratio": 1.02},
    }
    print()
    for arm in RT_PRIORITY:
        gaps = np.concatenate([np.asarray(x[arm]["spacing_s"]) for x in rows])
        ratio = [x[arm]["ratio"] for x in rows]
        lo, hi = ci(ratio)
        cpu = [x[arm]["recorder_cpu_pct"] for x in rows if x[arm]["recorder_cpu_pct"] is not None]
        summary[arm] = {
            "spacing_p50_s": float(np.percentile(gaps, 50)),
            "spacing_p99_s": float(np.percentile(gaps, 99)),
            "ratio_recorded_over_baseline_median": statistics.median(ratio),
            "ratio_ci95": (lo, hi),
            "recorder_cpu_pct_of_core_median": statistics.median(cpu) if cpu else None,
        }
        print(
            f"{arm}: row spacing over {len(gaps)} gaps p50 {summary[arm]['spacing_p50_s']:.3f} s, "
            f"p99 {summary[arm]['spacing_p99_s']:.3f} s (target <= {2 * args.interval / 1000:.2f}"
            f" s); hackbench recorded/alone {statistics.median(ratio):.3f}x [{lo:.3f}, {hi:.3f}]"
            " (target <= 1.02); recorder CPU "
            + (f"{statistics.median(cpu):.2f} % of a core" if cpu else "not measured")
        )
    if args.json:
        write_result(args.json, __file__, args.note, summary=summary, repeats=rows)


if __name__ == "__main__":
    main()

"""The recorder's interval under load: row spacing of `autotune record --interval 250` during
hackbench, and hackbench's own runtime (its ``Time:`` line) with and without the
recorder.

    .venv/bin/python -m bench.daemon.recorder --repeats 5 --json bench/results/daemon_recorder.json

Each repeat runs ``hackbench -l LOOPS -g 4`` (160 processes) alone (``baseline``) and under
``autotune record --interval 250 -- hackbench ...`` (``recorded``), the order rotating every
repeat. Printed: the p50/p99 of the spacing between consecutive rows' ``t`` (target: p99 within
2x the interval), and the paired runtime ratio recorded/baseline with a 95 % bootstrap interval
of the median (target <= 1.02).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from bench.daemon.footprint import ci
from bench.results import provenance, write_json


def run(cmd: list[str], env: dict[str, str]) -> float:
    """hackbench's own runtime (its ``Time:`` line): not the recorder's start-up, during which
    it holds the job stopped."""
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Time:"):
            return float(line.split()[1])
    raise SystemExit(f"no 'Time:' line from {cmd}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loops", type=int, default=20000)
    ap.add_argument("--interval", type=int, default=250, help="ms")
    ap.add_argument("--json", help="write the raw repeats here")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C: the temporary folder goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
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
            order = ["baseline", "recorded"] if r % 2 == 0 else ["recorded", "baseline"]
            row: dict[str, Any] = {"order": order, "load_before": os.getloadavg()[0]}
            for arm in order:
                if arm == "baseline":
                    row["baseline_s"] = run(hb, env)
                    continue
                out = Path(tmp) / f"r{r}.parquet"
                rec = [sys.executable, "-m", "autotune.cli.main", "record", "-o", str(out)]
                row["recorded_s"] = run([*rec, "--interval", str(args.interval), "--", *hb], env)
                t = np.asarray(pq.read_table(out, columns=["t"]).column("t").to_pylist(), float)
                gaps = np.diff(t)
                row["rows"] = len(t)
                row["spacing_s"] = gaps.tolist()
                row["spacing_p50_s"] = float(np.percentile(gaps, 50)) if len(gaps) else None
                row["spacing_p99_s"] = float(np.percentile(gaps, 99)) if len(gaps) else None
                row["spacing_max_s"] = float(gaps.max()) if len(gaps) else None
            row["ratio"] = row["recorded_s"] / row["baseline_s"]
            rows.append(row)
            print(
                f"repeat {r + 1}: hackbench {row['baseline_s']:.1f} s alone, "
                f"{row['recorded_s']:.1f} s recorded ({row['ratio']:.3f}x); {row['rows']} rows, "
                f"spacing p50 {row['spacing_p50_s']:.3f} s p99 {row['spacing_p99_s']:.3f} s "
                f"max {row['spacing_max_s']:.3f} s; load {row['load_before']:.1f}",
                flush=True,
            )
    gaps = np.concatenate([np.asarray(x["spacing_s"]) for x in rows])
    ratio = [x["ratio"] for x in rows]
    lo, hi = ci(ratio)
    summary = {
        "spacing_p50_s": float(np.percentile(gaps, 50)),
        "spacing_p99_s": float(np.percentile(gaps, 99)),
        "interval_s": args.interval / 1000,
        "ratio_recorded_over_baseline_median": statistics.median(ratio),
        "ratio_ci95": (lo, hi),
        "targets": {"spacing_p99_s": 2 * args.interval / 1000, "ratio": 1.02},
    }
    print(
        f"\nrow spacing over {len(gaps)} gaps: p50 {summary['spacing_p50_s']:.3f} s, p99 "
        f"{summary['spacing_p99_s']:.3f} s (target <= {2 * args.interval / 1000:.2f} s); "
        f"hackbench recorded/alone {summary['ratio_recorded_over_baseline_median']:.3f}x "
        f"[{lo:.3f}, {hi:.3f}] (target <= 1.02)"
    )
    if args.json:
        doc = {
            "bench": "bench/daemon/recorder.py",
            "argv": sys.argv[1:],
            **provenance("shared VM, ~6 other engineers' tests and benches running at the time"),
            "summary": summary,
            "repeats": rows,
        }
        write_json(args.json, doc)


if __name__ == "__main__":
    main()

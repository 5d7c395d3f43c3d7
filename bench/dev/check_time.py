"""How long the daily loop takes: `make check` (lint and the fast tier), wall time, repeated.

    .venv/bin/python -m bench.dev.check_time --repeats 5 --json bench/results/check_time.json

Issue 16's target: at most 90 s on this 2-core machine. Each repeat runs `make check` in the
repository (caches warm after the first: the daily loop); the first run is marked (``first``),
since in a fresh clone it also fills mypy's cache and Python's bytecode.
Printed: each run's wall time and exit status, the median and the worst. A run that fails is
reported (its FAILED lines, and its whole output kept in a temporary file) and ends the bench
with status 1 (a failing tier has no time worth quoting).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.results import write_result

ROOT = Path(__file__).resolve().parents[2]
TARGET_S = 90.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write the raw repeats here")
    ap.add_argument("--note", help="what else ran on the machine, for the result file")
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats: at least 1")
    runs: list[dict[str, Any]] = []
    for r in range(args.repeats):
        t0 = time.monotonic()
        p = subprocess.run(["make", "check"], cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - t0
        said = [line for line in p.stdout.splitlines() if " passed" in line or " failed" in line]
        pytest = said[-1].strip(" =") if said else ""
        runs.append(
            {"repeat": r + 1, "first": r == 0, "wall_s": round(wall, 2), "rc": p.returncode,
             "pytest": pytest}
        )  # fmt: skip
        print(f"run {r + 1}: {wall:.1f} s, exit {p.returncode}: {pytest}", flush=True)
        if p.returncode != 0:
            # What failed, and the whole output kept: a flaky failure is seldom seen twice.
            for line in p.stdout.splitlines():
                if line.startswith(("FAILED ", "ERROR ")):
                    print(f"  {line}", flush=True)
            with tempfile.NamedTemporaryFile(
                "w", prefix="check-failed-", suffix=".log", delete=False
            ) as f:
                f.write(p.stdout + p.stderr)
            print(f"  the run's whole output: {f.name}", flush=True)
            sys.exit(1)
    walls = [x["wall_s"] for x in runs]
    summary = {
        "median_s": statistics.median(walls),
        "worst_s": max(walls),
        "within_target": sum(w <= TARGET_S for w in walls),
        "runs": len(walls),
        "target_s": TARGET_S,
    }
    print(
        f"make check: median {summary['median_s']:.1f} s, worst {summary['worst_s']:.1f} s; "
        f"{summary['within_target']} of {len(walls)} within {TARGET_S:.0f} s"
    )
    if args.json:
        write_result(args.json, __file__, args.note, summary=summary, repeats=runs)


if __name__ == "__main__":
    main()

"""Online tuning on real jobs: default knobs vs `autotune tune` vs static-best, interleaved.

    .venv/bin/python -m bench.online.online --model RUN_ID|PATH [--repeats 3] [--job NAME ...]
        [--dry-run-too]

Each job (workloads, cold data on a loop device of its own) runs to a fixed number of
samples (a) with the knobs as found, (b) under `autotune tune --model M` (the tuner starts the
job, held until its telemetry is attached), (c) at the static-best setting (found for the
workload in the replay env, as the `static-best` baseline is); the three interleaved, repeated.
Printed per job: the job's own time for each (median and range), the ratios default/tuned and
default/static-best (how many times faster), and the tuner's CPU % of one core and RSS from its
summary line, beside the floor: what a Python process that only wakes at the same interval
(`bench.online.waker`, run beside the default-knob runs) costs on this host now. Targets: tuned
>= 1.5x faster than default beside the noisy neighbour, no job worse than 0.98x of default.
Read-ahead-bound jobs start from 128 KiB, the common kernel default (this VM's disk ships with
8 MiB); `--start-readahead` changes it. `--dry-run-too` adds (d), the job under `autotune tune
--dry-run` (telemetry, policy, guard and tracking, no knob changed): the cost of watching alone,
and default/dry-run beside the other ratios.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from typing import Any

from autotune.knobs import READAHEAD_DEFAULT_KB

# job name → samples to run to (about a minute at the default knobs on this VM, quiet).
JOBS: dict[str, int] = {
    "cnn_noisy": 8192,
    "cnn": 16384,
    "shards": 131072,
    "randread": 131072,
    "phases": 65536,
}
SUMMARY = re.compile(r"tuner ([0-9.]+)% CPU, ([0-9.]+) MB")


def static_best(name: str) -> dict[str, float]:
    """The best fixed setting for the workload, as the static-best baseline finds it."""
    from autotune.agents.baselines import search_static_best
    from autotune.envs.spaces import levels_to_values
    from autotune.envs.workload import load

    wl = load(name)
    best = levels_to_values(search_static_best(wl).levels)
    # A knob the recording never had in effect (prefetch for a job with no DataLoader workers,
    # which never acknowledges it) is not part of the setting: the job cannot hold it.
    held = {k for s in wl.samples for k in s.knobs}
    return {k: v for k, v in best.items() if v != wl.defaults.get(k) and k in held}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="MLflow run id or exported policy folder")
    ap.add_argument("--job", action="append", choices=sorted(JOBS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--start-readahead", type=float, default=READAHEAD_DEFAULT_KB)
    ap.add_argument("--interval", type=int, help="the tuner's interval, ms (default: its own)")
    ap.add_argument("--dry-run-too", action="store_true", help="also run under tune --dry-run")
    ap.add_argument("--json", help="also write the runs here")
    args = ap.parse_args()

    from autotune import config
    from autotune.tracking.models import resolve_model
    from workloads.run import Workbench

    settings = config.load()
    model = str(resolve_model(args.model, settings.tracking_uri, settings.runs_dir))
    start = {"readahead": args.start_readahead}
    interval = args.interval or settings.tune_interval_ms
    under = f"{settings_cmd()} tune --model {model} --no-view --interval {interval}"
    report: dict[str, Any] = {}
    with Workbench() as wb:
        for name in args.job or list(JOBS):
            best = {**start, **static_best(name)}
            runs: dict[str, list[float]] = {"default": [], "tuned": [], "static-best": []}
            if args.dry_run_too:
                runs["dry-run"] = []
            tuner: list[tuple[float, float]] = []
            floor: list[float] = []
            for _ in range(args.repeats):
                with Waker(interval) as waker:
                    runs["default"].append(wb.run(name, JOBS[name], start).job_s)
                floor += waker.cpu
                r = wb.run(name, JOBS[name], start, under=under)
                runs["tuned"].append(r.job_s)
                for line in r.stderr_tail:
                    m = SUMMARY.search(line)
                    if m:
                        tuner.append((float(m.group(1)), float(m.group(2))))
                runs["static-best"].append(wb.run(name, JOBS[name], best).job_s)
                if args.dry_run_too:
                    dry = wb.run(name, JOBS[name], start, under=f"{under} --dry-run")
                    runs["dry-run"].append(dry.job_s)
            med = {k: statistics.median(v) for k, v in runs.items()}
            report[name] = {"runs": runs, "static_best": best, "tuner": tuner, "floor": floor}
            print(
                f"\n{name}: {JOBS[name]} samples, {args.repeats} interleaved repeats; "
                f"static-best {best}"
            )
            for k, v in runs.items():
                print(f"  {k:<12} job {med[k]:7.1f} s  [{min(v):.1f}–{max(v):.1f}]")
            ratios = [f"default/{k} {med['default'] / med[k]:.2f}x" for k in runs if k != "default"]
            print("  " + "   ".join(ratios))
            if tuner:
                cpu = statistics.median(c for c, _ in tuner)
                rss = max(m for _, m in tuner)
                print(f"  tuner: {cpu:.1f}% of one core (median), {rss:.0f} MB RSS (max)")
            if floor:
                print(
                    f"  floor: {statistics.median(floor):.1f}% of one core for a process that only "
                    f"wakes every {interval} ms (median, beside the default runs)"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


class Waker:
    """``bench.online.waker`` for the length of a ``with`` block; ``cpu`` holds its figure."""

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self.cpu: list[float] = []

    def __enter__(self) -> Waker:
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "bench.online.waker", "--interval", str(self.interval_ms)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        m = re.search(r"waker ([0-9.]+)% CPU", out or "")
        if m:
            self.cpu.append(float(m.group(1)))


def settings_cmd() -> str:
    """This checkout's autotune command."""
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("autotune")
    return str(exe) if exe.exists() else "autotune"


if __name__ == "__main__":
    import sys

    from workloads.jobkit import entry

    sys.exit(entry(lambda _argv: main()))

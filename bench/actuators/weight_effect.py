"""Effect of the weight knobs: two CPU-bound roles pinned to one CPU, weight 4:1 against 1:1.

    python -m bench.actuators.weight_effect [--repeat 5] [--window 2.0]

A job whose trainer and one loader both spin is pinned (by this bench, not the knob) to one CPU.
Windows at weight.trainer:weight.loader = 4:1 and 1:1 alternate (the order flips every repeat);
each window measures the CPU time of both processes (/proc/<pid>/task/*/schedstat). Run for the
cgroup v1 backend and for nice values (forced). The claim: 4:1 gives a CPU-time ratio within 25%
of 4. Needs root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from autotune.actuators import Actuators, DecisionLog
from autotune.target import threads
from bench.actuators.common import bench_settings, job, load, spread

SETTLE_S = 0.3  # let the scheduler's load averages follow the new weights before measuring


def cpu_ns(pid: int) -> int:
    """On-CPU nanoseconds of every thread of a process."""
    total = 0
    for tid in threads(pid):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def measure(backend: str, repeat: int, window: float) -> dict[str, list[float]]:
    ratios: dict[str, list[float]] = {"4:1": [], "1:1": []}
    with job(1, "spin") as target, bench_settings() as settings:
        m = target.members()
        trainer, loader = m.trainer_pids[0], m.loader_pids[0]
        cpu = max(os.sched_getaffinity(0))
        for tid in m.trainer_tids + m.loader_tids:
            os.sched_setaffinity(tid, {cpu})
        with Actuators(
            target, settings, log=DecisionLog(console=False), weights_backend=backend
        ) as act:
            for r in range(repeat):
                order = ["4:1", "1:1"] if r % 2 == 0 else ["1:1", "4:1"]
                for name in order:
                    w = 4.0 if name == "4:1" else 1.0
                    act.apply({"weight.trainer": w, "weight.loader": 1.0}, reason="bench")
                    time.sleep(SETTLE_S)
                    t0, l0 = cpu_ns(trainer), cpu_ns(loader)
                    time.sleep(window)
                    t1, l1 = cpu_ns(trainer), cpu_ns(loader)
                    ratios[name].append((t1 - t0) / max(1, l1 - l0))
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--window", type=float, default=2.0, help="seconds per measurement")
    args = ap.parse_args()
    print(f"before: {load()}")
    for backend in ("cgroup1", "nice"):
        r = measure(backend, args.repeat, args.window)
        m41, m11 = statistics.median(r["4:1"]), statistics.median(r["1:1"])
        within = abs(m41 / 4.0 - 1.0) <= 0.25
        print(
            f"{backend:8s} CPU-time ratio trainer/loader: 4:1 → {spread(r['4:1'])}, "
            f"1:1 → {spread(r['1:1'])} (median [range], {args.repeat} windows of "
            f"{args.window:g} s each); 4:1 is {m41 / 4.0:.0%} of 4 "
            f"({'within' if within else 'NOT within'} 25%); 4:1 vs 1:1: {m41 / m11:.2f}×"
        )
    print(f"after: {load()}")


if __name__ == "__main__":
    main()

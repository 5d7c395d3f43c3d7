"""Effect of the CPU-share knobs: each role runs only on its CPUs.

    python -m bench.actuators.affinity_confine [--repeat 5] [--window 1.0]

A job of a spinning trainer and two spinning loaders runs unconfined (cpus 1.0, the baseline) and
confined (cpus.trainer = cpus.loader = 0.5: the low and the high half of the cores), alternating.
In each window the CPU every thread runs on is sampled from /proc/<pid>/task/<tid>/stat (field
39) every 5 ms, and ``Cpus_allowed_list`` is read from /proc/<pid>/status. Reported: the share of
samples that fell on the role's confined CPUs. Needs two CPUs or more.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from autotune.actuators import Actuators, DecisionLog
from autotune.actuators.affinity import allocate
from autotune.knobs.readback import cpu_pool
from autotune.system.topology import format_cpulist, parse_cpulist
from autotune.system.topology import read as read_topology
from autotune.target import Members, threads
from bench.actuators.common import bench_settings, job, load, spread

SAMPLE_S = 0.005


def on_cpu(pid: int, tid: int) -> int | None:
    """The CPU a thread last ran on."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[36])


def allowed(pid: int) -> set[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return set(parse_cpulist(line.split(":", 1)[1]))
    return set()


def inside(m: Members, cpus: dict[str, set[int]], window: float) -> dict[str, float]:
    """Share of samples on each role's CPUs over ``window`` seconds."""
    hits = {"trainer": 0, "loader": 0}
    total = {"trainer": 0, "loader": 0}
    end = time.monotonic() + window
    while time.monotonic() < end:
        for role, pids in (("trainer", m.trainer_pids), ("loader", m.loader_pids)):
            for pid in pids:
                for tid in threads(pid):
                    cpu = on_cpu(pid, tid)
                    if cpu is not None:
                        total[role] += 1
                        hits[role] += cpu in cpus[role]
        time.sleep(SAMPLE_S)
    return {r: hits[r] / max(1, total[r]) for r in hits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--window", type=float, default=1.0)
    args = ap.parse_args()
    print(f"before: {load()}")
    shares: dict[str, dict[str, list[float]]] = {
        "unconfined": {"trainer": [], "loader": []},
        "confined": {"trainer": [], "loader": []},
    }
    with job(2, "spin") as target, bench_settings() as settings:
        m = target.members()
        with Actuators(target, settings, log=DecisionLog(console=False)) as act:
            topo, pool = read_topology(), cpu_pool(target.pid)
            cpus = {
                "trainer": set(allocate(topo, pool, 0.5, high_end=False)),
                "loader": set(allocate(topo, pool, 0.5, high_end=True)),
            }
            if cpus["trainer"] == cpus["loader"]:
                raise SystemExit("needs at least two cores to confine the roles apart")
            for r in range(args.repeat):
                order = ["confined", "unconfined"] if r % 2 else ["unconfined", "confined"]
                for name in order:
                    share = 0.5 if name == "confined" else 1.0
                    act.apply({"cpus.trainer": share, "cpus.loader": share}, reason="bench")
                    if name == "confined":
                        status = {
                            "trainer": {frozenset(allowed(p)) for p in m.trainer_pids},
                            "loader": {frozenset(allowed(p)) for p in m.loader_pids},
                        }
                        if status != {k: {frozenset(v)} for k, v in cpus.items()}:
                            raise SystemExit(
                                f"Cpus_allowed_list differs from the allocation: {status}"
                            )
                    for role, value in inside(m, cpus, args.window).items():
                        shares[name][role].append(value)
    for role in ("trainer", "loader"):
        print(
            f"{role:7s} CPUs {format_cpulist(sorted(cpus[role]))}: share of samples on them, "
            f"confined {spread(shares['confined'][role])} vs unconfined "
            f"{spread(shares['unconfined'][role])} (median [range], {args.repeat} windows)"
        )
    print("Cpus_allowed_list in /proc/<pid>/status matched the allocation in every window")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()

"""`autotune compare` over 1,000 runs, against a bare `search_runs` of the same runs.

    .venv/bin/python -m bench.tracking.compare_speed [--runs 1000] [--repeats 5]

Makes a throwaway SQLite store and fills it through the MLflow client with runs shaped like the
real ones (training runs with learning curves, eval results, tuning sessions with knob
trajectories). Then, interleaved and repeated, each as a fresh process as a person runs it:

* baseline: a Python process that imports mlflow and pages through ``search_runs`` of the
  experiment, and nothing else;
* ``autotune compare --format json`` (fetch, group, summarize; no plots);
* ``autotune compare`` (the table and the HTML report with its plots).

Prints wall time and CPU time (user+sys of the process; the VM is shared, so CPU is the steadier
figure) as medians with ranges, the ratios against the baseline, and the load average. Target:
``autotune compare`` ≤ 5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autotune.knobs import KNOBS
from autotune.tracking import schema, store
from autotune.tracking.context import standard_tags

EXPERIMENT = "bench-compare"
TARGET_S = 5.0

BASELINE = """
import sys
from mlflow.tracking import MlflowClient
c = MlflowClient(sys.argv[1])
exp = c.get_experiment_by_name(sys.argv[2])
n, token = 0, None
while True:
    page = c.search_runs([exp.experiment_id], max_results=5000, page_token=token)
    n += len(page)
    token = page.token
    if not token:
        break
print(n)
"""


def populate(uri: str, n_runs: int, seed: int = 0) -> dict[str, int]:
    """Fill the store: 2% training runs, 8% tuning sessions, the rest eval results."""
    from mlflow.entities import Metric

    rng = random.Random(seed)
    c = store.client(uri)
    exp_id = c.create_experiment(EXPERIMENT)
    n_train = max(2, n_runs // 50)
    n_tune = max(2, n_runs * 8 // 100)
    n_eval = n_runs - n_train - n_tune
    now = int(time.time() * 1000)

    def make(kind: str, tags: dict[str, str], metrics: list[Metric]) -> str:
        all_tags = {**standard_tags(kind), **tags}
        run = c.create_run(exp_id, start_time=now, tags=all_tags)
        rid = run.info.run_id
        for i in range(0, len(metrics), 1000):
            c.log_batch(rid, metrics=metrics[i : i + 1000])
        c.set_terminated(rid, end_time=now + 1000)
        return rid

    train_ids = []
    for i in range(n_train):
        algo = ("ppo", "a2c", "dqn")[i % 3]
        curve = [
            m
            for step in range(1, 21)
            for m in (
                Metric(schema.M_EPISODE_REWARD, rng.random() * step, now + step, step * 512),
                Metric(schema.M_EVAL_PROGRESS, 1 + 0.01 * step, now + step, step * 512),
            )
        ]
        tags = {schema.TAG_ALGO: algo, schema.TAG_WORKLOADS: "cnn,shards,randread,phases"}
        train_ids.append(make(schema.TRAIN, tags, curve))

    policies = ("default", "random", "static-best", "heuristic", "ppo")
    workloads = ("cnn", "shards", "randread", "phases")
    for i in range(n_eval):
        policy = policies[i % len(policies)]
        tags = {
            schema.TAG_POLICY: policy,
            schema.TAG_WORKLOAD: workloads[(i // len(policies)) % len(workloads)],
            schema.TAG_SEED: str(i // 20),
        }
        if policy == "ppo":
            tags[schema.TAG_MODEL_RUN_ID] = train_ids[0]
        value = 1.0 + 0.05 * policies.index(policy) + rng.gauss(0, 0.02)
        metrics = [
            Metric(schema.M_PROGRESS_VS_DEFAULT, value, now, 0),
            Metric(schema.M_KNOB_CHANGES_PER_MIN, rng.random() * 4, now, 0),
            Metric(schema.M_WORST_REGRESSION, 0.97 + rng.random() * 0.03, now, 0),
        ]
        make(schema.EVAL_RESULT, tags, metrics)

    for i in range(n_tune):
        tags = {
            schema.TAG_MODEL_RUN_ID: train_ids[i % len(train_ids)],
            schema.TAG_TARGET_COMMAND: f"python workloads/{workloads[i % 4]}.py",
            schema.TAG_WORKLOAD: workloads[i % 4],
        }
        metrics = [Metric(schema.M_PROGRESS_VS_DEFAULT, 1.2 + rng.gauss(0, 0.05), now, 240)]
        for step in range(240):  # a minute at 250 ms
            t = now + step * 250
            metrics.append(Metric(schema.M_PROGRESS_RATE, 1000 + rng.random() * 100, t, step))
            metrics.append(Metric(schema.M_LOOP_CPU, rng.random(), t, step))
            for knob in KNOBS:
                level = knob.ladder[min(knob.levels - 1, step // 40)]
                metrics.append(Metric(schema.knob_metric(knob.name), float(level), t, step))
        make(schema.TUNE, tags, metrics)
    return {"train": n_train, "eval_result": n_eval, "tune": n_tune}


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user+sys) seconds of one process; raises if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed: {r.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def describe(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} s  [{min(xs):.2f} … {max(xs):.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        root = Path(tmp)
        uri = "sqlite:///" + str(root / "mlflow.db")
        t0 = time.perf_counter()
        made = populate(uri, args.runs)
        print(f"made {sum(made.values())} runs {made} in {time.perf_counter() - t0:.0f} s")

        autotune = [sys.executable, "-m", "autotune.cli.main", "compare", "--tracking-uri", uri]
        variants = {
            "baseline: bare search_runs": [
                sys.executable,
                "-c",
                BASELINE,
                uri,
                EXPERIMENT,
            ],
            "compare --format json": [*autotune, "--experiment", EXPERIMENT, "--format", "json"],
            "compare (table + HTML report)": [
                *autotune,
                "--experiment",
                EXPERIMENT,
                "-o",
                str(root / "report.html"),
            ],
        }
        env_note = os.getloadavg()
        walls: dict[str, list[float]] = {k: [] for k in variants}
        cpus: dict[str, list[float]] = {k: [] for k in variants}
        timed(variants["compare --format json"], root)  # warm the page cache once
        for _ in range(args.repeats):
            for name, cmd in variants.items():  # interleaved, so drifting load hits all alike
                wall, cpu = timed(cmd, root)
                walls[name].append(wall)
                cpus[name].append(cpu)
        load_after = os.getloadavg()

    base = "baseline: bare search_runs"
    print(f"\n{args.runs} runs, {args.repeats} repeats, interleaved; each a fresh process")
    print(f"load average before {env_note[0]:.1f}, after {load_after[0]:.1f} (2 cores, shared)")
    print(f"{'':32} {'wall (median [range])':>30} {'CPU user+sys':>30}  ratio wall / CPU")
    for name in variants:
        rw = statistics.median(walls[name]) / statistics.median(walls[base])
        rc = statistics.median(cpus[name]) / statistics.median(cpus[base])
        print(
            f"{name:32} {describe(walls[name]):>30} {describe(cpus[name]):>30}  {rw:.2f} / {rc:.2f}"
        )
    full = statistics.median(walls["compare (table + HTML report)"])
    verdict = "meets" if full <= TARGET_S else "misses"
    print(f"\nautotune compare: median {full:.2f} s wall — {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()

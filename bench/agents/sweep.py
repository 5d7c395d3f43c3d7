"""Sweep: 8 trials on Ray Tune (`autotune sweep`, embedded Ray) against the same 8 trials run
one after another by `autotune train`, in the same invocation.

    .venv/bin/python -m bench.agents.sweep [--repeats 5] [--timesteps 2048] [--eval-freq 512]
        [--workload cnn] [-o bench/results/sweep.json]

The 8 trials are {ppo, a2c} x seeds 0-3 at the default (tiny) hyperparameters on one bundled
workload, ASHA off, so both arms train exactly the same runs. Each repeat runs both arms; the
order alternates (sweep first on even repeats). Printed, with a 95 % interval over the repeats
(paired: both arms of a repeat share the machine's load):

* wall-time ratio sequential / sweep (2.0 would be two CPUs used perfectly);
* Ray's overhead per trial: CPU-slot seconds of the sweep not spent inside `train()`
  ((CPUs x sweep wall - sum of the trials' train/wall_s) / 8), beside the sequential arm's own
  per-run overhead (process start, imports, MLflow: run wall - train/wall_s);
* the embedded Ray's start and stop time;
* memory: peak PSS of Ray's own processes (GCS, raylet, monitors) and of its worker processes,
  sampled every second during the sweep.

Then the champion of the last sweep against the default-hyperparameter run (ppo, seed 0, from
the sequential arm) on every bundled workload's test part (envs/splits.py), over 5 evaluation
seeds (`splits.eval_seeds`, none a training seed). The champion was chosen on the validation
part, so the test part is data neither choice nor training saw.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]
TRIALS = [(algo, seed) for algo in ("ppo", "a2c") for seed in range(4)]
RAY_SYSTEM = ("gcs_server", "raylet", "log_monitor", "monitor.py", "dashboard", "runtime_env")


def _interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval."""
    from scipy import stats

    m = statistics.fmean(values)
    if len(values) < 2:
        return m, m, m
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return m, m - half, m + half


class MemorySampler:
    """Peak PSS of a process tree's Ray system processes and workers, sampled every second."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_system = 0
        self.peak_workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(1.0):
            try:
                kids = psutil.Process(self.pid).children(recursive=True)
            except psutil.Error:
                continue
            system = workers = 0
            for p in kids:
                try:
                    cmd = " ".join(p.cmdline())
                    pss = p.memory_full_info().pss
                except psutil.Error:
                    continue
                if any(s in cmd for s in RAY_SYSTEM):
                    system += pss
                elif "ray::" in cmd or "default_worker.py" in cmd:
                    workers += pss
            self.peak_system = max(self.peak_system, system)
            self.peak_workers = max(self.peak_workers, workers)


def _train_walls(uri: str, experiment: str, parent: str | None = None) -> list[float]:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return []
    flt = "tags.`autotune.kind` = 'train'"
    if parent:
        flt += f" AND tags.`mlflow.parentRunId` = '{parent}'"
    runs = c.search_runs([exp.experiment_id], filter_string=flt, max_results=1000)
    return [r.data.metrics["train/wall_s"] for r in runs if "train/wall_s" in r.data.metrics]


def _sweep_arm(
    work: Path, env: dict[str, str], args: argparse.Namespace, rep: int
) -> dict[str, Any]:
    sweep_file = work / "sweep.toml"
    sweep_file.write_text(
        f"""
trials = 1
timesteps = {args.timesteps}
eval_freq = {args.eval_freq}
tiny = true
experiment = "sweep-{rep}"
[asha]
enabled = false
[registry]
enabled = false
[space]
algo = {{ grid = ["ppo", "a2c"] }}
seed = {{ grid = [0, 1, 2, 3] }}
workloads = ["{args.workload}"]
"""
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*AUTOTUNE, "sweep", "--config", str(sweep_file), "--no-live"],
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with MemorySampler(proc.pid) as mem:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"sweep failed ({proc.returncode}): {err[-2000:]}")
    parent = out.split("sweep: ", 1)[1].split()[0]
    from mlflow.tracking import MlflowClient

    uri = env["AUTOTUNE_TRACKING_URI"]
    metrics = MlflowClient(uri).get_run(parent).data.metrics
    champion = out.split("champion: ", 1)[1].split()[0] if "champion: " in out else ""
    return {
        "wall_s": wall,
        "train_wall_s": _train_walls(uri, f"sweep-{rep}", parent),
        "ray_start_s": metrics.get("sweep/ray_start_s"),
        "ray_stop_s": metrics.get("sweep/ray_stop_s"),
        "errors": metrics.get("sweep/errors"),
        "peak_pss_ray_system_mb": mem.peak_system / 2**20,
        "peak_pss_ray_workers_mb": mem.peak_workers / 2**20,
        "champion_run_id": champion,
    }


def _sequential_arm(
    work: Path, env: dict[str, str], args: argparse.Namespace, rep: int
) -> dict[str, Any]:
    walls = []
    default_run = ""
    t0 = time.perf_counter()
    for algo, seed in TRIALS:
        t = time.perf_counter()
        r = subprocess.run(
            [
                *AUTOTUNE,
                "train",
                "--algo",
                algo,
                "--seed",
                str(seed),
                "--tiny",
                "--n-envs",
                "1",
                "--timesteps",
                str(args.timesteps),
                "--eval-freq",
                str(args.eval_freq),
                "--workload",
                args.workload,
                "--experiment",
                f"seq-{rep}",
                "--no-progress",
            ],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
        )
        walls.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"train failed: {r.stderr[-2000:]}")
        if (algo, seed) == ("ppo", 0):
            default_run = r.stdout.split("run: ", 1)[1].split()[0]
    return {
        "wall_s": time.perf_counter() - t0,
        "run_wall_s": walls,
        "train_wall_s": _train_walls(env["AUTOTUNE_TRACKING_URI"], f"seq-{rep}"),
        "default_run_id": default_run,
    }


def _champion_vs_default(uri: str, runs_dir: Path, champion: str, default: str) -> dict[str, Any]:
    from autotune import policy as runtime
    from autotune.agents.evaluate import run_episode
    from autotune.envs import splits
    from autotune.envs.workload import list_bundled, load
    from autotune.tracking.models import resolve_model

    pols = {
        name: runtime.load(resolve_model(run, uri, runs_dir))
        for name, run in (("champion", champion), ("default", default))
    }
    ratios: dict[str, list[float]] = {}
    for w in [load(n) for n in list_bundled()]:
        for seed in splits.eval_seeds(5):
            got = {
                name: run_episode(pol, w, seed, name, splits.TEST).progress_vs_default
                for name, pol in pols.items()
            }
            ratios.setdefault(w.name, []).append(got["champion"] / got["default"])
    every = [r for rs in ratios.values() for r in rs]
    return {
        "note": "test part of every bundled workload (last 20 %), evaluation seeds; the champion "
        "was chosen on the validation part",
        "champion_run_id": champion,
        "default_run_id": default,
        "ratio_by_workload": {k: statistics.fmean(v) for k, v in ratios.items()},
        "ratio": _interval(every),
        "raw": ratios,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timesteps", type=int, default=2048)
    ap.add_argument("--eval-freq", type=int, default=512)
    ap.add_argument("--workload", default="cnn")
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="autotune-bench-sweep-"))
    env = {
        **os.environ,
        "AUTOTUNE_RUNS_DIR": str(work / "runs"),
        "AUTOTUNE_TRACKING_URI": f"sqlite:///{work}/runs/mlflow.db",
    }
    cpus = os.cpu_count() or 1
    load0 = os.getloadavg()
    repeats = []
    for rep in range(args.repeats):
        order = ["sweep", "sequential"] if rep % 2 == 0 else ["sequential", "sweep"]
        got: dict[str, Any] = {"order": order}
        for arm in order:
            fn = _sweep_arm if arm == "sweep" else _sequential_arm
            got[arm] = fn(work, env, args, rep)
        s, q = got["sweep"], got["sequential"]
        got["ratio_seq_over_sweep"] = q["wall_s"] / s["wall_s"]
        got["ray_overhead_per_trial_s"] = (cpus * s["wall_s"] - sum(s["train_wall_s"])) / len(
            TRIALS
        )
        got["sequential_overhead_per_run_s"] = (q["wall_s"] - sum(q["train_wall_s"])) / len(TRIALS)
        repeats.append(got)
        if args.output:  # what is measured so far survives an interrupted run
            _write(args.output, _document(args, repeats, cpus, load0, None, partial=True))
        print(
            f"repeat {rep + 1}/{args.repeats} ({' then '.join(order)}): sequential "
            f"{q['wall_s']:.0f} s, sweep {s['wall_s']:.0f} s, ratio "
            f"{got['ratio_seq_over_sweep']:.2f}, Ray overhead/trial "
            f"{got['ray_overhead_per_trial_s']:.1f} slot-s, sequential overhead/run "
            f"{got['sequential_overhead_per_run_s']:.1f} s",
            flush=True,
        )

    for k, (m, lo, hi) in _summary(repeats).items():
        print(f"{k}: {m:.2f} (95 % interval {lo:.2f} to {hi:.2f}, {len(repeats)} repeats)")
    last = repeats[-1]
    try:
        vs = _champion_vs_default(
            env["AUTOTUNE_TRACKING_URI"],
            work / "runs",
            last["sweep"]["champion_run_id"],
            last["sequential"]["default_run_id"],
        )
        m, lo, hi = vs["ratio"]
        print(
            f"champion / default hyperparameters on the test parts: "
            f"{m:.3f} (95 % interval {lo:.3f} to {hi:.3f}, "
            f"{sum(len(v) for v in vs['raw'].values())} episodes)"
        )
    except Exception as e:  # the wall-time figures above are kept either way
        vs = {"error": f"{type(e).__name__}: {e}"}
        print(f"champion vs default not measured: {vs['error']}")
    if args.output:
        _write(args.output, _document(args, repeats, cpus, load0, vs, partial=False))
        print(f"wrote {args.output}")


def _summary(repeats: list[dict[str, Any]]) -> dict[str, tuple[float, float, float]]:
    def of(key: str, arm: str | None = None) -> tuple[float, float, float]:
        return _interval([float((r[arm] if arm else r)[key]) for r in repeats])

    return {
        "ratio_seq_over_sweep": of("ratio_seq_over_sweep"),
        "ray_overhead_per_trial_s": of("ray_overhead_per_trial_s"),
        "sequential_overhead_per_run_s": of("sequential_overhead_per_run_s"),
        "ray_start_s": of("ray_start_s", "sweep"),
        "ray_stop_s": of("ray_stop_s", "sweep"),
        "peak_pss_ray_system_mb": of("peak_pss_ray_system_mb", "sweep"),
        "peak_pss_ray_workers_mb": of("peak_pss_ray_workers_mb", "sweep"),
    }


def _document(
    args: argparse.Namespace,
    repeats: list[dict[str, Any]],
    cpus: int,
    load0: tuple[float, float, float],
    vs: dict[str, Any] | None,
    *,
    partial: bool,
) -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    return {
        "bench": "bench/agents/sweep.py",
        "command": " ".join(sys.argv),
        "partial": partial,
        "commit": commit.strip(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "host": socket.gethostname(),
            "cpus": cpus,
            "kernel": platform.release(),
            "loadavg_at_start": load0,
            "loadavg_at_end": os.getloadavg(),
        },
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "trials": TRIALS,
        "summary": _summary(repeats),
        "champion_vs_default": vs,
        "repeats": repeats,
    }


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.rename(path)


if __name__ == "__main__":
    main()

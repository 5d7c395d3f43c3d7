"""Learning: trained policies against the baselines and the per-row oracle on every bundled
workload's test part, over several training seeds, in distribution and leave-one-workload-out.

    .venv/bin/python -m bench.agents.learning [--seeds 5] [--timesteps N] [--jobs 2] [--json]

Every bundled workload in ``envs/workloads/`` takes part (new recordings are picked up as they
are added). Per training seed: one policy trained on every workload's training part
(in distribution) and, for each workload, one trained on all the others (leave-one-workload-out,
what a job nobody recorded gets); validation parts choose checkpoints. Then, on each workload's
test part only, with evaluation seeds that no training used, in one pass: the trained policies,
the LOWO policies, ``default``, ``heuristic`` and ``static-best`` (the best fixed setting on
those rows in hindsight, exhaustively), beside the per-row oracle (best setting per interval,
changes free, noise off). Training seeds are the repeats; their order rotates with the seed.

Printed per workload, all measured in this run: the trained policy against the best fixed
setting and against default (ratios of means over the same episodes), the share of the per-row
oracle's gain over default it captures, LOWO's gain over in-distribution's, the trained mean's
95 % stratified-bootstrap interval over training seeds (rliable), and the targets of issue 18:
trained >= 0.99x best fixed (>= 1.10x on neighbour_onoff and mixed_io), >= 0.95 of the oracle's
gain, LOWO >= 0.9 of the in-distribution gain. ``--json`` also writes
``bench/results/learning.json`` (commit, machine, date, settings, raw per-run figures).
Tracking goes to a throwaway store per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

RESULT = Path(__file__).resolve().parents[1] / "results" / "learning.json"
ADAPTIVE = ("neighbour_onoff", "mixed_io")  # the workloads where adapting must pay
TARGET_BEST_FIXED, TARGET_BEST_FIXED_ADAPTIVE = 0.99, 1.10
TARGET_ORACLE_GAIN, TARGET_LOWO = 0.95, 0.9


def _reused(job: dict[str, Any]) -> dict[str, Any] | None:
    """A finished run of the same label in the scratch folder of an earlier invocation."""
    done = sorted(Path(job["tmp"], "training", job["label"]).glob("*/history.json"))
    if not done:
        return None
    history = json.loads(done[-1].read_text())
    return {
        **{k: job[k] for k in ("label", "seed", "held_out")},
        "policy": str(done[-1].parent / "policy"),
        "validation": max(p["score"] for p in history),
        "timesteps": history[-1]["timesteps"],
        "wall_s": round(history[-1]["wall_s"], 1),
        "steps_per_s": round(history[-1]["timesteps"] / max(history[-1]["wall_s"], 1e-9), 1),
        "to_95pct_timesteps": None,
        "reused": True,
    }


def _train_one(job: dict[str, Any]) -> dict[str, Any]:
    """One training run in a worker process (its own tracking store)."""
    from autotune.agents.train import TrainConfig, train
    from autotune.envs.workload import load

    reused = _reused(job)
    if reused is not None:
        return reused
    tmp = Path(job["tmp"])
    store = tmp / f"worker-{os.getpid()}"
    cfg = TrainConfig(
        algo=job["algo"],
        timesteps=job["timesteps"],
        seed=job["seed"],
        n_envs=job["n_envs"],
        eval_freq=max(job["timesteps"] // job["evals"], 1),
        patience=job["evals"],
        out_dir=tmp / "training" / job["label"],
        tracking_uri=f"sqlite:///{store}/mlflow.db",
        runs_dir=store,
        progress_bar=False,
        overrides=job["overrides"],
        change_cost=job["change_cost"],
        off_default_cost=job["off_default_cost"],
    )
    r = train(cfg, [load(w) for w in job["workloads"]])
    reach = r.to_time_to(0.95)
    return {
        **{k: job[k] for k in ("label", "seed", "held_out")},
        "policy": str(r.policy_dir),
        "validation": r.best_score,
        "timesteps": r.timesteps,
        "wall_s": round(r.wall_s, 1),
        "steps_per_s": round(r.steps_per_s, 1),
        "to_95pct_timesteps": reach.timesteps if reach else None,
    }


def _jobs(args: argparse.Namespace, names: list[str], tmp: Path) -> list[dict[str, Any]]:
    """Every training: the in-distribution policies of every seed first, then the
    leave-one-workload-out ones seed after seed, their order rotated by the seed (so a run cut
    short by --max-train-s has every in-distribution seed and whole LOWO seeds)."""
    overrides = json.loads(args.overrides)
    order: list[tuple[int, str | None]] = [(seed, None) for seed in range(args.seeds)]
    for seed in range(args.seeds if args.lowo else 0):
        k = seed % len(names)
        order += [(seed, held) for held in names[k:] + names[:k]]
    out = []
    for seed, held in order:
        out.append(
            {
                "label": f"{'in' if held is None else 'lowo-' + held}-{seed}",
                "seed": seed,
                "held_out": held,
                "workloads": [w for w in names if w != held],
                "algo": args.algo,
                "timesteps": args.timesteps,
                "n_envs": args.n_envs,
                "evals": args.evals,
                "overrides": overrides,
                "change_cost": args.change_cost,
                "off_default_cost": args.off_default_cost,
                "tmp": str(tmp),
            }
        )
    return out


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}"


def _commit() -> tuple[str, bool]:
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return head, dirty


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="training seeds (>= 5 for the figures)")
    ap.add_argument("--timesteps", type=int, default=30_000)
    ap.add_argument("--algo", default="ppo")
    ap.add_argument("--n-envs", type=int, default=8)
    ap.add_argument("--evals", type=int, default=5, help="validations per training run")
    ap.add_argument("--eval-seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="training processes at once")
    ap.add_argument("--overrides", default="{}", help="JSON of hyperparameters to override")
    ap.add_argument(
        "--change-cost",
        type=float,
        help="the replay's reward cost per knob changed (default: the env's CHANGE_COST)",
    )
    ap.add_argument(
        "--off-default-cost",
        type=float,
        help="the replay's reward cost per knob off its default (default: the env's "
        "OFF_DEFAULT_COST)",
    )
    ap.add_argument("--no-lowo", dest="lowo", action="store_false")
    ap.add_argument("--json", action="store_true", help=f"also write {RESULT}")
    ap.add_argument(
        "--max-train-s",
        type=float,
        metavar="S",
        help="start no training after S seconds (those running finish); evaluate what is there",
    )
    ap.add_argument(
        "--eval-only",
        action="store_true",
        help="with --reuse: train nothing, evaluate the finished trainings there",
    )
    ap.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="scratch folder of an earlier run: its finished trainings are not run again",
    )
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.timesteps < 1 or args.jobs < 1 or args.eval_seeds < 1:
        print(
            "learning: --seeds, --timesteps, --jobs, --eval-seeds must be at least 1",
            file=sys.stderr,
        )
        return 2
    if args.change_cost is None:
        from autotune.envs.replay import CHANGE_COST

        args.change_cost = CHANGE_COST
    if not 0.0 <= args.change_cost < 1.0:
        print(f"learning: --change-cost must be in [0, 1), got {args.change_cost}", file=sys.stderr)
        return 2
    if args.off_default_cost is None:
        from autotune.envs.replay import OFF_DEFAULT_COST

        args.off_default_cost = OFF_DEFAULT_COST
    if not 0.0 <= args.off_default_cost < 1.0:
        print(
            f"learning: --off-default-cost must be in [0, 1), got {args.off_default_cost}",
            file=sys.stderr,
        )
        return 2

    from autotune import policy as runtime
    from autotune.agents import baselines as bl
    from autotune.agents.evaluate import episode_rows, evaluate, summarize
    from autotune.envs import splits
    from autotune.envs.oracle import headroom
    from autotune.envs.workload import list_bundled, load

    names = list_bundled()
    if not names:
        print("learning: no bundled workloads in envs/workloads", file=sys.stderr)
        return 2
    if args.lowo and len(names) < 2:
        print("learning: leave-one-workload-out needs two workloads at least", file=sys.stderr)
        return 2
    tmp = args.reuse or Path(tempfile.mkdtemp(prefix="autotune-bench-learning-"))
    jobs = _jobs(args, names, tmp)
    if args.eval_only:
        jobs = [j for j in jobs if _reused(j) is not None]
    t0 = time.perf_counter()
    print(f"{len(jobs)} training runs ({args.timesteps} timesteps each) on {args.jobs} processes")
    runs = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        pending = [pool.submit(_train_one, job) for job in jobs]
        for future in as_completed(pending):
            if future.cancelled():
                continue
            r = future.result()
            runs.append(r)
            print(
                f"  {r['label']:<24} validation {r['validation']:.3f}, {r['timesteps']} steps in "
                f"{r['wall_s']:.0f} s ({r['steps_per_s']:.0f} steps/s), 95% of its gain at "
                f"{r['to_95pct_timesteps']}",
                flush=True,
            )
            if args.max_train_s is not None and time.perf_counter() - t0 > args.max_train_s:
                for f in pending:
                    f.cancel()
    train_s = time.perf_counter() - t0
    skipped = len(jobs) - len(runs)
    if skipped:
        print(f"--max-train-s: {skipped} of {len(jobs)} training runs not started")

    def constant(p: runtime.Policy) -> Any:
        return lambda _w: p

    def policies(held: str | None) -> list[Any]:
        chosen = sorted((r for r in runs if r["held_out"] == held), key=lambda r: r["seed"])
        return [constant(runtime.load(Path(r["policy"]))) for r in chosen]

    seeds = splits.eval_seeds(args.eval_seeds, exclude=range(args.seeds))
    workloads = [load(n) for n in names]
    episodes = []
    oracle: dict[str, float] = {}
    for wl in workloads:
        arms: dict[str, Any] = {"trained": policies(None)}
        if policies(wl.name):
            arms["lowo"] = policies(wl.name)
        for b in ("default", "heuristic", "static-best"):
            arms[b] = lambda w, b=b: bl.make(b, w)
        episodes += evaluate(arms, [wl], seeds)
        oracle[wl.name] = headroom(wl, episode_rows(wl, splits.TEST)).per_row_oracle
    summary = {
        (s.policy, s.workload): s for s in summarize(episodes, baselines=("default", "static-best"))
    }

    def per_run(policy: str, workload: str) -> list[float]:
        out: dict[int, list[float]] = {}
        for e in episodes:
            if e.policy == policy and e.workload == workload:
                out.setdefault(e.run, []).append(e.progress_vs_default)
        return [statistics.mean(v) for _, v in sorted(out.items())]

    report: dict[str, Any] = {}
    for wl in workloads:
        w = wl.name
        trained, default = summary[("trained", w)], summary[("default", w)].mean
        best, heur = summary[("static-best", w)].mean, summary[("heuristic", w)].mean
        gain = trained.mean / default - 1.0
        oracle_gain = oracle[w] - 1.0
        entry: dict[str, Any] = {
            "seeds": trained.n,
            "trained_vs_best_fixed": trained.mean / best,
            "trained_vs_default": trained.mean / default,
            "oracle_gain_captured": gain / oracle_gain if oracle_gain > 1e-3 else None,
            "lowo_vs_in_distribution": None,
            "ci95": [trained.low, trained.high],
            "trained": trained.mean,
            "trained_iqm": trained.iqm,
            "default": default,
            "best_fixed": best,
            "heuristic": heur,
            "heuristic_vs_default": heur / default,
            "per_row_oracle": oracle[w],
            "p_improvement": {b: list(v) for b, v in trained.p_improve.items()},
            "trained_runs": per_run("trained", w),
        }
        if ("lowo", w) in summary:
            lowo = summary[("lowo", w)]
            entry["lowo"] = lowo.mean
            entry["lowo_ci95"] = [lowo.low, lowo.high]
            entry["lowo_runs"] = per_run("lowo", w)
            entry["lowo_seeds"] = lowo.n
            if abs(gain) > 1e-3:
                entry["lowo_vs_in_distribution"] = (lowo.mean / default - 1.0) / gain
        need = TARGET_BEST_FIXED_ADAPTIVE if w in ADAPTIVE else TARGET_BEST_FIXED
        entry["targets_met"] = {
            "trained_vs_best_fixed": entry["trained_vs_best_fixed"] >= need,
            "oracle_gain_captured": (entry["oracle_gain_captured"] or 0.0) >= TARGET_ORACLE_GAIN,
            "lowo_vs_in_distribution": (entry["lowo_vs_in_distribution"] or 0.0) >= TARGET_LOWO,
        }
        report[w] = entry

    print(
        f"\n{'workload':<16}{'trained':>9}{'default':>9}{'best fix':>9}{'heurist':>9}"
        f"{'oracle':>8}{'vs best':>9}{'gain cap':>9}{'lowo/in':>9}  95% interval"
    )
    for w, e in report.items():
        lowo = e["lowo_vs_in_distribution"]
        cap = e["oracle_gain_captured"]
        print(
            f"{w:<16}{e['trained']:9.3f}{e['default']:9.3f}{e['best_fixed']:9.3f}"
            f"{e['heuristic']:9.3f}{e['per_row_oracle']:8.3f}{e['trained_vs_best_fixed']:9.3f}"
            f"{cap if cap is not None else float('nan'):9.3f}"
            f"{lowo if lowo is not None else float('nan'):9.3f}"
            f"  [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]  "
            + ("" if all(e["targets_met"].values()) else "targets missed: ")
            + ", ".join(k for k, ok in e["targets_met"].items() if not ok)
        )
    commit, dirty = _commit()
    result = {
        "commit": commit,
        "dirty": dirty,
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seeds": min(e["seeds"] for e in report.values()),
        "lowo_seeds": min((e.get("lowo_seeds", 0) for e in report.values()), default=0),
        "training_runs_planned": len(jobs),
        "eval_seeds": seeds,
        "algo": args.algo,
        "timesteps": args.timesteps,
        "n_envs": args.n_envs,
        "overrides": json.loads(args.overrides),
        "change_cost": args.change_cost,
        "off_default_cost": args.off_default_cost,
        "splits": {"train": splits.TRAIN, "validation": splits.VALIDATION, "test": splits.TEST},
        "train_wall_s": round(train_s, 1),
        "targets": {
            "trained_vs_best_fixed": TARGET_BEST_FIXED,
            "trained_vs_best_fixed_adaptive": {w: TARGET_BEST_FIXED_ADAPTIVE for w in ADAPTIVE},
            "oracle_gain_captured": TARGET_ORACLE_GAIN,
            "lowo_vs_in_distribution": TARGET_LOWO,
        },
        "workloads": report,
        "training_runs": runs,
    }
    print(f"\n(training {train_s:.0f} s wall; scratch in {tmp})")
    if args.json:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Learning: trained PPO against the baselines on every bundled workload, over several seeds;
and the cost of getting there.

    .venv/bin/python -m bench.agents.learning [--seeds 3] [--timesteps N] [--algo ppo]

Trains one policy per seed on all bundled workloads (training rows: the first three quarters of
each trace), then runs the evaluation protocol (held-out last quarter, 3 replay seeds each) for
the trained policies and the baselines. Prints per workload the trained policy's progress
relative to default, static-best and heuristic (ratios of their means, all measured in this
run), checks the targets (>= static-best on the phase-changing workload, within 5 % of it
elsewhere, better than heuristic overall), and for each training seed the timesteps and wall
time to reach 95 % of its final evaluation score. Tracking goes to a throwaway store unless
--tracking-uri is given.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

PHASED = "phases"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--timesteps", type=int, default=200_000)
    ap.add_argument("--algo", default="ppo")
    ap.add_argument("--frame-stack", type=int, default=1)
    ap.add_argument("--eval-seeds", type=int, default=3)
    ap.add_argument("--tracking-uri")
    args = ap.parse_args()

    from autotune.agents import baselines as bl
    from autotune.agents.evaluate import evaluate, summarize
    from autotune.agents.train import TrainConfig, train
    from autotune.envs.workload import list_bundled, load

    from autotune import policy as runtime

    workloads = [load(w) for w in list_bundled()]
    tmp = Path(tempfile.mkdtemp(prefix="autotune-bench-learning-"))
    uri = args.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
    results = []
    policies = {}
    for seed in range(args.seeds):
        cfg = TrainConfig(
            algo=args.algo,
            timesteps=args.timesteps,
            seed=seed,
            frame_stack=args.frame_stack,
            eval_freq=max(args.timesteps // 20, 1000),
            patience=6,
            out_dir=tmp / "training",
            tracking_uri=uri,
            runs_dir=tmp,
            progress_bar=False,
        )
        r = train(cfg, workloads)
        results.append(r)
        policies[f"{args.algo}-{seed}"] = runtime.load(r.policy_dir)
        reach = r.to_time_to(0.95)
        print(
            f"seed {seed}: best held-out {r.best_score:.3f} after {r.timesteps} timesteps, "
            f"{r.wall_s:.0f} s; 95% of the final gain at "
            f"{reach.timesteps if reach else '?'} timesteps, {reach.wall_s if reach else 0:.0f} s"
            + (" (stopped early)" if r.stopped_early else "")
        )
    factories = {name: (lambda _w, p=p: p) for name, p in policies.items()}
    for b in ("default", "static-best", "heuristic", "random"):
        factories[b] = lambda w, b=b: bl.make(b, w)
    episodes = evaluate(factories, workloads, list(range(args.eval_seeds)))
    summ = {(s.policy, s.workload): s for s in summarize(episodes)}
    names = [w.name for w in workloads]
    trained = list(policies)

    def mean_of(policy_names: list[str], workload: str) -> float:
        return statistics.mean(summ[(p, workload)].mean for p in policy_names)

    print()
    print(
        f"{'workload':<14}{'trained':>9}{'default':>9}{'static':>9}{'heurist':>9}{'random':>9}"
        f"{'vs static':>11}{'vs heur':>9}"
    )
    ok = True
    for w in [*names, "all"]:
        t = mean_of(trained, w)
        st, he = summ[("static-best", w)].mean, summ[("heuristic", w)].mean
        print(
            f"{w:<14}{t:9.3f}{summ[('default', w)].mean:9.3f}{st:9.3f}{he:9.3f}"
            f"{summ[('random', w)].mean:9.3f}{t / st:11.3f}{t / he:9.3f}"
        )
        if w == PHASED:
            ok &= t >= st
        elif w != "all":
            ok &= t >= 0.95 * st
    ok &= mean_of(trained, "all") > summ[("heuristic", "all")].mean
    spread = [summ[(p, "all")].mean for p in trained]
    print(f"\ntrained policies overall, per seed: {', '.join(f'{x:.3f}' for x in spread)}")
    print(
        f"targets (>= static-best on {PHASED}, within 5% elsewhere, > heuristic overall): "
        f"{'met' if ok else 'NOT met'}"
    )
    print(f"(tracking: {uri})")


if __name__ == "__main__":
    main()

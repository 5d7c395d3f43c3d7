"""Policy decision latency from the exported weights (numpy), beside SB3's own predict (torch).

    .venv/bin/python -m bench.agents.inference [--decisions N] [--algo ppo]

Trains a tiny policy for a few hundred steps on the bundled workloads (the weights' values do
not change the cost of a decision), exports it, and times ``Policy.decide`` (what the online
tuner runs) against ``model.predict`` in the same process, interleaved. Target: p99 <= 1 ms.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=5000)
    ap.add_argument("--algo", default="ppo")
    ap.add_argument("--net", default="64,64", help="hidden layers of the timed network")
    args = ap.parse_args()

    from stable_baselines3.common.logger import Logger

    from autotune import policy as runtime
    from autotune.agents import algos
    from autotune.agents.export import export
    from autotune.envs.replay import ReplayEnv
    from autotune.envs.workload import list_bundled, load

    algo = algos.get(args.algo)
    env = ReplayEnv([load(w) for w in list_bundled()])
    wrapped = algo.wrapper(env) if algo.wrapper else env
    hp = algo.hyperparameters(tiny=True)
    hp["policy_kwargs"] = {**hp["policy_kwargs"], "net_arch": [int(x) for x in args.net.split(",")]}
    model = algo.load_class()(algo.policy, wrapped, seed=0, **hp)
    model.set_logger(Logger(folder=None, output_formats=[]))  # no /tmp/SB3-<date> folder
    model.learn(256)
    with tempfile.TemporaryDirectory() as tmp:
        pol = runtime.load(export(model, Path(tmp) / "p", algo=args.algo))
        rng = np.random.default_rng(0)
        obs = rng.random((args.decisions, env.observation_space.shape[0])).astype(np.float32)
        cur = np.zeros(len(runtime.LEVELS), dtype=np.int64)
        ours, theirs = [], []
        for o in obs:
            t0 = time.perf_counter()
            pol.decide(o, cur)
            t1 = time.perf_counter()
            model.predict(o, deterministic=True)
            t2 = time.perf_counter()
            ours.append((t1 - t0) * 1e6)
            theirs.append((t2 - t1) * 1e6)
    p = np.percentile
    print(f"{args.algo} net {args.net}, {args.decisions} decisions, interleaved")
    print(
        f"exported policy (numpy): p50 {p(ours, 50):7.1f} µs  p99 {p(ours, 99):7.1f} µs"
        "  (target p99 <= 1000 µs)"
    )
    print(f"SB3 model.predict (torch): p50 {p(theirs, 50):7.1f} µs  p99 {p(theirs, 99):7.1f} µs")
    print(
        f"ratio numpy / torch: p50 {p(ours, 50) / p(theirs, 50):.3f}"
        f"  p99 {p(ours, 99) / p(theirs, 99):.3f}"
    )


if __name__ == "__main__":
    main()

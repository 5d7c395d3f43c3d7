"""ReplayEnv speed, single process and vectorized, and LiveEnv's overhead per step.

    .venv/bin/python -m bench.envs.env_speed [--workload NAME] [--steps N] [--live]

Prints steps/s of ReplayEnv with random actions (one process; SB3's DummyVecEnv of 4), beside
gymnasium's CartPole-v1 measured in the same run (a reference for how fast a trivial Python env
steps on this machine now), and with --live, LiveEnv's wall time per step beyond the interval on
a small real job (needs root and BPF).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import gymnasium as gym
import numpy as np


def steps_per_s(env: gym.Env, steps: int, seed: int = 0) -> float:  # type: ignore[type-arg]
    env.reset(seed=seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def vec_steps_per_s(make, n_envs: int, steps: int) -> float:  # type: ignore[no-untyped-def]
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([make] * n_envs)
    venv.seed(0)
    venv.reset()
    actions = [np.stack([venv.action_space.sample() for _ in range(n_envs)]) for _ in range(steps)]
    t0 = time.perf_counter()
    for a in actions:
        venv.step(a)
    return steps * n_envs / (time.perf_counter() - t0)


def live_overhead(steps: int, interval_ms: int) -> list[float]:
    from autotune.envs.live import LiveEnv

    job = [sys.executable, "tests/envs/job.py", str(steps * interval_ms / 1000 + 20)]
    env = LiveEnv(command=job, interval_ms=interval_ms)
    try:
        env.reset(seed=0)
        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            env.step(env.action_space.sample())
            out.append((time.perf_counter() - t0) * 1e3 - interval_ms)
        return out
    finally:
        env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", action="append", help="bundled name or trace (default: all)")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--live", action="store_true", help="also measure LiveEnv (root, BPF)")
    args = ap.parse_args()

    from autotune.envs.replay import ReplayEnv
    from autotune.envs.workload import list_bundled, load

    workloads = [load(w) for w in (args.workload or list_bundled())]
    replay, cartpole, vec = [], [], []
    for _ in range(args.repeat):  # interleaved, so drift hits both alike
        cartpole.append(steps_per_s(gym.make("CartPole-v1"), args.steps))
        replay.append(steps_per_s(ReplayEnv(workloads), args.steps))
        vec.append(vec_steps_per_s(lambda: ReplayEnv(workloads), 4, args.steps // 4))
    med = statistics.median
    print(f"workloads: {', '.join(w.name for w in workloads)}")
    print(
        f"ReplayEnv, 1 process:          {med(replay):>9,.0f} steps/s"
        f"  (runs {min(replay):,.0f}–{max(replay):,.0f}; target >= 10,000)"
    )
    print(
        f"ReplayEnv, DummyVecEnv x4:     {med(vec):>9,.0f} steps/s"
        f"  (runs {min(vec):,.0f}–{max(vec):,.0f})"
    )
    print(f"CartPole-v1, same run:         {med(cartpole):>9,.0f} steps/s")
    print(f"ratio ReplayEnv / CartPole:    {med(replay) / med(cartpole):9.3f}")
    if args.live:
        over = live_overhead(40, 250)
        print(
            f"LiveEnv step beyond the 250 ms interval: median {med(over):.1f} ms, "
            f"p90 {np.percentile(over, 90):.1f} ms over {len(over)} steps"
        )


if __name__ == "__main__":
    main()

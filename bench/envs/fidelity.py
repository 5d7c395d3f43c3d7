"""Replay fidelity: does ReplayEnv answer a knob setting the way the machine does?

    .venv/bin/python -m bench.envs.fidelity [--workload NAME ...] [--repeats 2] [--samples N]

For each bundled workload, real runs of the same job (workloads harness, cold data on a
loop device of its own) at settings its recording did not visit, interleaved and repeated;
beside them ReplayEnv's prediction at the same settings (the whole trace replayed at that fixed
setting, noise off). Printed per workload: Spearman rank correlation of throughput (target
>= 0.8), median absolute error of the predicted throughput (target <= 15 %) and of the predicted
ratio to the default setting, and the real runs' own repeat-to-repeat rank correlation (the
ceiling noise allows).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np

# Settings to try per workload: the knob that should matter across its ladder, far enough apart
# for the outcomes to differ by more than the noise (workloads/README.md, sensitivity).
SETTINGS: dict[str, list[dict[str, float]]] = {
    "cnn": [
        {},
        {"cpus.trainer": 0.5},
        {"cpus.loader": 0.5},
        {"cpus.trainer": 0.5, "cpus.loader": 0.5},
        {"weight.trainer": 0.25},
        {"weight.loader": 0.25},
        {"weight.trainer": 8.0, "weight.loader": 8.0},
    ],
    "cnn_noisy": [
        {"weight.trainer": w, "weight.loader": w} for w in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    ],
    "shards": [{"readahead": r} for r in (16.0, 32.0, 64.0, 256.0, 1024.0, 4096.0)],
    "randread": [{"readahead": r} for r in (16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0)],
    "phases": [
        {"readahead": 16.0},
        {"readahead": 64.0},
        {"readahead": 1024.0},
        {"readahead": 4096.0},
        {"readahead": 1024.0, "cpus.trainer": 0.5},
        {"readahead": 64.0, "weight.trainer": 0.25},
    ],
}


# Samples per run: 15 to 40 s at the default knobs on this VM (workloads/README.md).
SAMPLES: dict[str, int] = {
    "cnn": 8192,
    "cnn_noisy": 4096,
    "shards": 65536,
    "randread": 16384,
    "phases": 32768,
}


def predict(wl: Any, setting: Mapping[str, float]) -> float:
    """Mean progress rate ReplayEnv gives over the whole trace at one fixed setting."""
    from autotune.envs import spaces
    from autotune.envs.replay import ReplayEnv

    env = ReplayEnv([wl], episode_steps=len(wl), noise=0.0)
    levels = spaces.values_to_levels({**wl.defaults, **setting})
    env.reset(seed=0, options={"start": 0})
    rates, done = [], False
    while not done:
        _, _, _, done, info = env.step(levels)
        rates.append(info["rate"])
    return float(np.mean(rates))


def seen(wl: Any) -> set[str]:
    return {json.dumps(k, sort_keys=True) for k in wl.knobs}


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", action="append", choices=sorted(SETTINGS))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--samples", type=int, help="samples per run (default: SAMPLES)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    from autotune.envs.workload import load
    from workloads.run import Workbench

    report: dict[str, Any] = {}
    with Workbench() as wb:
        for name in args.workload or sorted(SETTINGS):
            wl = load(name)
            visited = seen(wl)
            settings = [
                s
                for s in SETTINGS[name]
                if json.dumps({**wl.defaults, **s}, sort_keys=True) not in visited
            ]
            samples = args.samples or SAMPLES[name]
            # The recording's starting read-ahead is the replay's default: hold it unless a
            # setting moves it (a fresh loop device would come up at its own).
            base = {"readahead": wl.defaults["readahead"]}
            measured: list[list[float]] = [[] for _ in settings]
            defaults: list[float] = []
            for _ in range(args.repeats):  # interleaved: each repeat visits every setting
                defaults.append(wb.run(name, samples, base).samples_per_s)
                for i, s in enumerate(settings):
                    measured[i].append(wb.run(name, samples, {**base, **s}).samples_per_s)
            default = statistics.median(defaults)
            pred = [predict(wl, s) for s in settings]
            pred_default = predict(wl, {})
            real = [statistics.median(m) for m in measured]
            err = [abs(p / m - 1) for p, m in zip(pred, real, strict=True)]
            rel_err = [
                abs((p / pred_default) / (m / default) - 1) for p, m in zip(pred, real, strict=True)
            ]
            ceiling = spearman([m[0] for m in measured], [m[-1] for m in measured])
            rho = spearman(pred, real)
            report[name] = {
                "settings": settings,
                "measured": measured,
                "predicted": pred,
                "spearman": rho,
                "median_abs_error": statistics.median(err),
                "median_abs_error_vs_default": statistics.median(rel_err),
                "repeat_spearman": ceiling,
                "default_measured": defaults,
                "default_predicted": pred_default,
            }
            print(
                f"\n{name}: {len(settings)} settings unseen by calibration, {args.repeats} repeats"
            )
            for s, m, p in zip(settings, measured, pred, strict=True):
                label = " ".join(f"{k}={v:g}" for k, v in s.items()) or "default"
                print(
                    f"  {label:<44} real {statistics.median(m):9.1f}/s"
                    f" [{min(m):.1f}–{max(m):.1f}]  replay {p:9.1f}/s"
                )
            print(
                f"  Spearman {rho:+.2f} (target >= 0.8; repeat-to-repeat {ceiling:+.2f}), "
                f"median abs error {statistics.median(err):.1%} (target <= 15%), "
                f"relative to default {statistics.median(rel_err):.1%}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    import sys

    from workloads.jobkit import entry

    sys.exit(entry(lambda _argv: main()))

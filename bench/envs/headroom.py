"""Headroom for adapting: per workload, the replay's per-row oracle against its best fixed setting.

    .venv/bin/python -m bench.envs.headroom [--part all|train|validation|test] [--json] [--out FILE]
                                             [--workload NAME ...]

For every bundled workload (or those named), exhaustively over the knob ladders (every setting,
through the vectorized model, noise off): progress relative to the default knobs of the per-row
oracle (the best setting chosen separately for each interval, changes free) and of the best
single fixed setting, over the same rows, and their ratio. A ratio of 1 means a constant is all
the replay rewards on that workload; above 1, adapting during the job can pay. Deterministic (no
noise, no sampling), so one pass is the figure. With ``--json`` prints ``{NAME: {"per_row_oracle":
x, "best_fixed": y, "ratio": x / y, ...}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.results import provenance, write_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "train", "validation", "test"), default="all")
    ap.add_argument("--workload", action="append", default=[], metavar="NAME|PATH")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument(
        "--out", metavar="FILE", help="also write the figures with commit, machine and date here"
    )
    args = ap.parse_args(argv)

    from autotune.agents.evaluate import episode_rows
    from autotune.envs import splits
    from autotune.envs.oracle import headroom
    from autotune.envs.spaces import levels_to_values
    from autotune.envs.workload import list_bundled, load
    from autotune.errors import UserError

    try:
        workloads = [load(w) for w in (args.workload or list_bundled())]
    except UserError as e:
        print(f"headroom: {e}", file=sys.stderr)
        return 2
    out: dict[str, dict[str, object]] = {}
    t0 = time.perf_counter()
    for wl in workloads:
        h = headroom(wl, episode_rows(wl, splits.PARTS[args.part]))
        out[wl.name] = {
            "per_row_oracle": round(h.per_row_oracle, 5),
            "best_fixed": round(h.best_fixed, 5),
            "ratio": round(h.ratio, 5),
            "rows": h.rows,
            "part": args.part,
            "best_fixed_setting": levels_to_values(h.best_levels),
        }
    seconds = time.perf_counter() - t0
    if args.out:
        write_json(
            args.out,
            {**provenance(), "command": " ".join(["bench.envs.headroom", *sys.argv[1:]]),
             "workloads": out},
        )  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"progress vs default over the {args.part} rows, replay, noise off, every setting")
    print(f"{'workload':<18}{'rows':>6}{'per-row oracle':>16}{'best fixed':>12}{'ratio':>8}")
    for name, r in out.items():
        print(
            f"{name:<18}{r['rows']:>6}{r['per_row_oracle']:>16.5f}{r['best_fixed']:>12.5f}"
            f"{r['ratio']:>8.4f}"
        )
    print(f"({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

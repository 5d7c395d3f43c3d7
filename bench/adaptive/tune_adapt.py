"""A first real check of `autotune tune --adapt` (issue 20, online adaptation): the same job under
the tuner with a constant policy, without and with the adapter, and at the best static setting
set directly, interleaved, the order rotated each repeat.

    python -m bench.adaptive.tune_adapt --workload cnn_noisy \\
        --policy weight.trainer=4,weight.loader=4 --static weight.trainer=8,weight.loader=8 \\
        --repeats 1 --first 0 --out bench/results/adapt_check.json

The policy is a constant one (``tests/policy_kit.py``, the tests' own writer): a policy that
leaves gain on the table on purpose, so that the check asks whether the adapter finds it. Each
call runs ``--repeats`` repeats starting at repeat ``--first`` (the rotation follows the repeat
index) and adds them to ``--out``, so a long check is run in short calls; the analysis is over
every repeat in the file: wall-time rates (samples / wall seconds) paired by repeat, geometric
mean and 95 % bootstrap interval (``scipy.stats.bootstrap``), against plain ``tune``.

This is not the fair online bench (``bench/online/online.py``, which runs ``--adapt`` as an
arm): one workload, a constant policy, a few repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.adaptive.oracle import paired  # geometric mean and 95 % bootstrap interval
from bench.results import provenance, write_json
from workloads.knobs import parse
from workloads.run import Workbench

REPO = Path(__file__).resolve().parents[2]
ARMS = ("tune", "adapt", "static")


def write_policy(folder: Path, values: dict[str, float]) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from policy_kit import write_constant_policy

    return write_constant_policy(folder, values)


def run_arm(
    wb: Workbench, arm: str, args: argparse.Namespace, policy: Path, work: Path
) -> dict[str, Any]:
    decisions = work / f"decisions-{arm}.jsonl"
    decisions.unlink(missing_ok=True)
    under = None
    knobs = None
    if arm == "static":
        knobs = parse(args.static)
    else:
        under = (
            f"{REPO}/.venv/bin/autotune tune --model {policy} --no-view --decisions {decisions}"
            + (" --adapt" if arm == "adapt" else "")
        )
    r = wb.run(args.workload, args.samples, knobs, under=under, timeout_s=900)
    rows = (
        [json.loads(x) for x in decisions.read_text().splitlines() if x.strip()]
        if decisions.exists()
        else []
    )
    moves = [d for d in rows if str(d.get("reason", "")).startswith("adapt:")]
    return {
        "arm": arm,
        "wall_s": r.wall_s,
        "job_s": r.job_s,
        "samples": r.samples,
        "rate": r.samples / r.wall_s,
        "load1": r.load1,
        "in_effect": r.in_effect,
        "adapt_moves": len(moves),
        "adapt_first": [f"{d['knob']}={d.get('value')}: {d['reason']}" for d in moves[:6]],
        "tuner": [line for line in r.stderr_tail if "tuned" in line][-1:],
    }


def analyse(raw: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[int, dict[str, float]] = {}
    for row in raw:
        by.setdefault(row["repeat"], {})[row["arm"]] = row["rate"]
    full = [v for v in by.values() if all(a in v for a in ARMS)]
    out: dict[str, Any] = {"repeats": len(full)}
    if full:
        tune = [v["tune"] for v in full]
        out["adapt_vs_tune"] = paired([v["adapt"] for v in full], tune)
        out["static_vs_tune"] = paired([v["static"] for v in full], tune)
        out["adapt_vs_static"] = paired([v["adapt"] for v in full], [v["static"] for v in full])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="cnn_noisy")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--policy", required=True, help="the constant policy's knobs, k=v,...")
    p.add_argument("--static", required=True, help="the best static setting, k=v,...")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--first", type=int, default=0, help="index of the first repeat (rotation)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    raw: list[dict[str, Any]] = old.get("raw", [])
    with tempfile.TemporaryDirectory(prefix="adapt-check-") as tmp, Workbench() as wb:
        work = Path(tmp)
        os.environ["AUTOTUNE_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
        policy = write_policy(work / "policy", parse(args.policy))
        for rep in range(args.first, args.first + args.repeats):
            k = rep % len(ARMS)
            for pos, arm in enumerate(ARMS[k:] + ARMS[:k]):
                row = {"repeat": rep, "position": pos, **run_arm(wb, arm, args, policy, work)}
                raw = [x for x in raw if (x["repeat"], x["arm"]) != (rep, arm)] + [row]
                print(
                    f"repeat {rep} {arm:<6} wall {row['wall_s']:6.1f} s  rate "
                    f"{row['rate']:7.1f}/s  adapt moves {row['adapt_moves']}  "
                    f"load {row['load1']:.1f}  {' '.join(row['tuner'])}",
                    flush=True,
                )
    doc = {
        **provenance("2 CPUs shared with six engineers; runs under /work/bin/quiet measure"),
        "workload": args.workload,
        "samples": args.samples,
        "policy": args.policy,
        "static": args.static,
        "analysis": analyse(raw),
        "raw": raw,
    }
    write_json(args.out, doc)
    print(json.dumps(doc["analysis"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay fidelity: does ReplayEnv answer a knob setting the way the machine does?

    .venv/bin/python -m bench.envs.fidelity [--grid bench/results/grid.json] [--workload NAME ...]
        [--out bench/results/fidelity.json]

No real runs: the real side is the grid (``python -m bench.grid``, bench/results/grid.json), the
replay side is computed now, from the current model, so this reruns in seconds after the model
changes. For each workload in the grid and each knob family, over the family's settings:

* ``real_ratio``: the setting's wall-time rate over the default's in the same repeat (geometric
  mean over the grid's repeats); ``predicted_ratio``: the replay's mean rate over the whole trace
  at the setting over its rate at the default (noise off);
* ``spearman``: rank correlation of predicted and real ratios (target >= 0.9 where the ceiling
  is >= 0.9; null when either side is constant);
* ``repeat_ceiling``: Spearman of repeat 1's real ratios against repeat 2's (what noise allows);
* ``mdape_ratio``: median absolute error of the predicted ratio, relative (target <= 10 %);
* ``sign_errors``: settings whose real effect is over 5 % and whose predicted ratio lies on the
  other side of 1.0 (target 0).

Per workload, too: the replay's static-best now (``search_static_best``) and its real ratio in the
grid (``not in grid`` when the model now picks a setting the grid never ran), the grid's real
static-best, and whether the pick is within 5 % of it.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from bench.grid.grid import load_doc, ratios_by_repeat, summarise
from bench.grid.settings import COMBINED, DEFAULT, key, label
from bench.results import provenance, write_json

GRID = Path("bench/results/grid.json")
OUT = Path("bench/results/fidelity.json")
EFFECT = 0.05  # a real effect this large must be predicted on the right side of 1.0
WITHIN = 0.05  # the replay's pick, run for real, within this of the real static-best

Predictor = Callable[[Mapping[str, float]], float]


def spearman(a: list[float], b: list[float]) -> float | None:
    """Rank correlation; None when it is undefined (fewer than 3 points, or a constant side)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return float(spearmanr(a, b).statistic)


def geomean(xs: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(x) for x in xs))


def cells(name: str, entry: Mapping[str, Any], predict: Predictor) -> list[dict[str, Any]]:
    """One cell per knob family of one workload's grid entry."""
    runs = [r for r in entry["runs"] if r["stage"] == "grid" and "error" not in r]
    real = ratios_by_repeat(runs)
    at_default = predict({})
    families: dict[str, list[dict[str, Any]]] = {}
    for s in entry["settings"]:
        if s["family"] in (DEFAULT, COMBINED) or "not_applicable" in s:
            continue
        if s["setting"] in real:
            families.setdefault(s["family"], []).append(s)
    out = []
    for family, group in families.items():
        rows = []
        for s in group:
            by_rep = real[s["setting"]]
            rows.append(
                {
                    "setting": s["setting"],
                    "real_ratio": geomean(list(by_rep.values())),
                    "predicted_ratio": predict(s["knobs"]) / at_default,
                    "real_by_repeat": [by_rep[r] for r in sorted(by_rep)],
                }
            )
        both = [r for r in rows if len(r["real_by_repeat"]) >= 2]
        r_real = [r["real_ratio"] for r in rows]
        r_pred = [r["predicted_ratio"] for r in rows]
        out.append(
            {
                "workload": name,
                "family": family,
                "spearman": spearman(r_pred, r_real),
                "repeat_ceiling": spearman(
                    [r["real_by_repeat"][0] for r in both], [r["real_by_repeat"][1] for r in both]
                ),
                "mdape_ratio": statistics.median(
                    abs(p / m - 1) for p, m in zip(r_pred, r_real, strict=True)
                ),
                "sign_errors": sum(
                    1
                    for p, m in zip(r_pred, r_real, strict=True)
                    if abs(m - 1) > EFFECT and (p - 1) * (m - 1) < 0
                ),
                "settings": rows,
            }
        )
    return out


def real_ratio(entry: Mapping[str, Any], setting: str) -> dict[str, Any] | None:
    """A setting's real ratio in the grid: the verify pass's when it was verified, else the
    first pass's (from the raw runs); None when the grid never ran it."""
    if setting == DEFAULT:
        return {"ratio": 1.0, "ci95": [1.0, 1.0], "pass": "grid"}
    for s in entry["settings"]:
        if s["setting"] == setting and "verify" in s:
            return {**s["verify"], "pass": "verify"}
    first = summarise([r for r in entry["runs"] if r["stage"] == "grid" and "error" not in r])
    return {**first[setting], "pass": "grid"} if setting in first else None


def pick_vs_best(entry: Mapping[str, Any], pick: Mapping[str, float]) -> dict[str, Any]:
    """The replay's pick, its real ratio, the real static-best, and whether they are close."""
    name = label(pick)
    known = {key(s["knobs"]): s["setting"] for s in entry["settings"]}
    found = known.get(key(pick), DEFAULT if not pick else None)
    got = real_ratio(entry, found) if found is not None else None
    best = entry["static_best"]
    out: dict[str, Any] = {
        "replay_pick": name,
        "replay_pick_real": got if got is not None else "not in grid",
        "real_static_best": best,
    }
    if got is not None:
        out["pick_within_5pct"] = bool(got["ratio"] >= (1 - WITHIN) * best["ratio"])
    return out


def report(doc: Mapping[str, Any], names: list[str] | None) -> dict[str, Any]:
    from bench.grid.replay import predict, recording, replay_pick

    grid = doc.get("workloads", {})
    for n in names or []:
        if n not in grid:
            raise UserError(f"no grid for {n!r} in the grid file; it has {', '.join(grid)}")
    out_cells: list[dict[str, Any]] = []
    workloads: list[dict[str, Any]] = []
    for name in names or sorted(grid):
        wl, source = recording(name)
        if wl is None:
            workloads.append({"workload": name, "skipped": source})
            continue
        out_cells += cells(name, grid[name], functools.partial(predict, wl))
        workloads.append(
            {
                "workload": name,
                "grid_commit": grid[name].get("commit"),
                **pick_vs_best(grid[name], replay_pick(wl)),
            }
        )
    return {
        **provenance(),
        "grid_date": doc.get("date"),
        "cells": out_cells,
        "workloads": workloads,
    }


def fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:+.2f}"


def show(rep: Mapping[str, Any]) -> None:
    print(
        f"{'workload':<16} {'family':<10} {'n':>2} {'spearman':>8} {'ceiling':>8} "
        f"{'mdape':>6} {'sign':>4}"
    )
    for c in rep["cells"]:
        print(
            f"{c['workload']:<16} {c['family']:<10} {len(c['settings']):>2} "
            f"{fmt(c['spearman']):>8} {fmt(c['repeat_ceiling']):>8} "
            f"{c['mdape_ratio']:>6.1%} {c['sign_errors']:>4}"
        )
        for s in c["settings"]:
            print(
                f"    {s['setting']:<44} real {s['real_ratio']:.3f}  "
                f"replay {s['predicted_ratio']:.3f}"
            )
    print()
    for w in rep["workloads"]:
        if "skipped" in w:
            print(f"{w['workload']:<16} skipped: {w['skipped']}")
            continue
        got, best = w["replay_pick_real"], w["real_static_best"]
        real = got if isinstance(got, str) else f"{got['ratio']:.3f} ({got['pass']})"
        within = w.get("pick_within_5pct")
        print(
            f"{w['workload']:<16} replay pick {w['replay_pick']} -> real {real}; "
            f"real static-best {best['setting']} {best['ratio']:.3f}; "
            f"within 5 %: {'n/a' if within is None else within}"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.envs.fidelity", description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=Path, default=GRID, help=f"the real grid (default {GRID})")
    ap.add_argument("--workload", action="append", help="only these (default: all in the grid)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result file (default {OUT})")
    args = ap.parse_args(argv)
    doc = load_doc(args.grid, missing_ok=False)
    rep = report(doc, args.workload)
    write_json(args.out, rep)
    show(rep)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    from workloads.jobkit import entry

    sys.exit(entry(main))

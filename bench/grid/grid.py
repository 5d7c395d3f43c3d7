"""Run one workload's grid on the real machine, and reduce it to ratios and a static-best.

A run's quantity is its wall-time rate (samples over wall seconds, interpreter start-up included,
as a person waits); a setting's ratio is its rate over the default's in the same repeat (the
paired ratio), summarised by the geometric mean over repeats with a 95 % bootstrap interval
(:func:`bench.adaptive.oracle.paired`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.knobs import by_name
from bench.adaptive.oracle import paired
from bench.grid.settings import DEFAULT, Setting, combined
from workloads.knobs import KnobNotHeld
from workloads.run import Result, Workbench

BATCH = 64  # samples are rounded up to this (every job's batch divides it)
VERIFY_TOP = 3
GRID_DEFAULTS = 3  # default runs per grid repeat, spread among the settings
MAX_FAILED = 3  # runs failing in a row: the machine, not a setting; stop, writing nothing


@dataclass
class Grid:
    """One workload's grid: the plan, every run, and what they add up to."""

    workload: str
    samples: int
    base: dict[str, float]
    settings: list[Setting]
    runs: list[dict[str, Any]] = field(default_factory=list)
    not_applicable: dict[str, str] = field(default_factory=dict)
    sizing: dict[str, Any] = field(default_factory=dict)

    def runs_of(self, stage: str) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["stage"] == stage and "error" not in r]


def load_doc(path: Path, missing_ok: bool = True) -> dict[str, Any]:
    """A grid result file (``{"workloads": {}}`` when missing and ``missing_ok``); a damaged one
    is a UserError, raised before any run."""
    from bench.results import read_merged

    return read_merged(
        path,
        "workloads",
        "a grid result file",
        "cannot read the grid; run python -m bench.grid",
        missing_ok,
    )


def rotate(items: Sequence[Any], repeat: int, repeats: int) -> list[Any]:
    """``items`` in the order repeat ``repeat`` of ``repeats`` visits them: rotated by an even
    share each repeat, so every setting runs early in one repeat and late in another."""
    if not items:
        return []
    shift = (repeat * len(items) // max(repeats, 1)) % len(items)
    return [*items[shift:], *items[:shift]]


def with_defaults(order: Sequence[Setting], n: int) -> list[Setting]:
    """``order`` with the default ``n`` times in all, spread evenly between the other settings
    (never first): a slow or fast stretch of the machine then weighs on every ratio alike."""
    rest = [s for s in order if s.knobs]
    if n <= 1 or not rest:
        return list(order)
    marks = {math.floor((i + 0.5) * len(rest) / n) for i in range(n)}
    out: list[Setting] = []
    for i, s in enumerate(rest):
        if i in marks:
            out.append(Setting({}))
        out.append(s)
    return out


def row(r: Result, stage: str, repeat: int, s: Setting, order: int) -> dict[str, Any]:
    return {
        "stage": stage,
        "repeat": repeat,
        "order": order,
        "setting": s.label,
        "knobs": s.knobs,
        "wall_s": r.wall_s,
        "job_s": r.job_s,
        "samples": r.samples,
        "samples_per_s": r.samples_per_s,
        "load1": r.load1,
        "in_effect": r.in_effect,
    }


def unheld(s: Setting, r: Result) -> tuple[str, str] | None:
    """A knob of ``s`` that needs the job's cooperation and was never acknowledged: its family
    and the reason."""
    for name, value in s.knobs.items():
        knob = by_name(name)
        if knob.requires and r.in_effect.get(name) != value:
            return str(knob.family), (
                f"the job never acknowledged {name}={value:g} "
                f"(requires {knob.requires}: a DataLoader with workers using autotune.client)"
            )
    return None


def ratios_by_repeat(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """label → repeat → wall-time rate over the default's in that repeat (the geometric mean of
    the repeat's default runs, when it has several)."""
    walls: dict[int, list[float]] = {}
    for r in runs:
        if r["setting"] == DEFAULT:
            walls.setdefault(r["repeat"], []).append(math.log(r["wall_s"]))
    default = {rep: math.exp(sum(w) / len(w)) for rep, w in walls.items()}
    out: dict[str, dict[int, float]] = {}
    for r in runs:
        if r["repeat"] in default:
            ratio = 1.0 if r["setting"] == DEFAULT else default[r["repeat"]] / r["wall_s"]
            out.setdefault(r["setting"], {})[r["repeat"]] = ratio
    return out


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """label → paired ratio to default (geometric mean, 95 % interval, n) over the runs' repeats."""
    out = {}
    for name, by_rep in ratios_by_repeat(runs).items():
        ratios = [by_rep[i] for i in sorted(by_rep)]
        p = paired(ratios, [1.0] * len(ratios))
        out[name] = {"ratio": p["mean"], "ci95": p["ci95"], "n": p["n"]}
    return out


def size(probe: Result, target_wall_s: float) -> int:
    """Samples for a default run of about ``target_wall_s`` of wall time, from one probe run:
    its own rate, and its wall time beyond the job's (start-up, tear-down)."""
    overhead = max(probe.wall_s - probe.job_s, 0.0)
    rate = probe.samples / max(probe.job_s, 1e-3)
    want = max(target_wall_s - overhead, 1.0) * rate
    return max(BATCH, math.ceil(want / BATCH) * BATCH)


class Runner:
    """Runs settings on one workbench, in rotated order, recording every run."""

    def __init__(self, wb: Workbench, grid: Grid, log: Callable[[str], None] = print) -> None:
        self.wb = wb
        self.grid = grid
        self.log = log
        self.failed_in_a_row = 0
        self.acknowledged: set[str] = set()  # families whose knobs the job acknowledged once

    def one(self, stage: str, repeat: int, s: Setting, order: int) -> Result | None:
        g = self.grid
        t = time.monotonic()
        try:
            r = self.wb.run(g.workload, g.samples, {**g.base, **s.knobs})
        except KnobNotHeld as e:
            family = str(by_name(e.knob).family)
            if not by_name(e.knob).requires or family in self.acknowledged:
                return self.failed(stage, repeat, s, e)
            # The job cannot hold it (no DataLoader workers to ask for a prefetch depth): not a
            # failure of the machine, and it may drop the family, as a run that ends with the
            # knob never acknowledged does.
            why = str(e)
            g.runs.append(
                {"stage": stage, "repeat": repeat, "setting": s.label, "error": why, "unheld": why}
            )
            self.drop(s, family, why)
            return None
        except UserError as e:  # a setting the machine would not hold, a failed job
            return self.failed(stage, repeat, s, e)
        self.failed_in_a_row = 0
        g.runs.append(row(r, stage, repeat, s, order))
        self.log(
            f"  {stage} r{repeat} {s.label:<46} wall {r.wall_s:6.2f} s  job {r.job_s:6.2f} s  "
            f"load {r.load1:.1f}  ({time.monotonic() - t:.1f} s)"
        )
        return r

    def failed(self, stage: str, repeat: int, s: Setting, e: UserError) -> None:
        """A run that failed: recorded; :data:`MAX_FAILED` in a row stop the grid."""
        g = self.grid
        g.runs.append({"stage": stage, "repeat": repeat, "setting": s.label, "error": str(e)})
        self.log(f"  {stage} r{repeat} {s.label:<46} FAILED: {e}")
        self.failed_in_a_row += 1
        if self.failed_in_a_row >= MAX_FAILED:
            raise UserError(f"{MAX_FAILED} runs in a row failed, the last: {e}") from None

    def drop(self, s: Setting, family: str, why: str) -> None:
        """Mark ``family`` not applicable after ``s`` ran without the job holding its knob. Only
        the family's own settings judge it, and only until the job has once acknowledged one:
        a short run may end before its acknowledgement comes."""
        if s.family == family and family not in self.acknowledged:
            self.grid.not_applicable[family] = why
            self.log(f"  {family}: not applicable: {why}")

    def sweep(
        self,
        stage: str,
        settings: Sequence[Setting],
        repeats: int,
        first: int = 0,
        defaults: int = 1,
    ) -> None:
        """Every setting once per repeat (the default ``defaults`` times), the order rotated each
        repeat. A setting that needs the job's cooperation and did not get it drops out with its
        family, as not applicable."""
        for rep in range(repeats):
            visits = with_defaults(rotate(settings, rep, repeats), defaults)
            for order, s in enumerate(visits):
                if s.family in self.grid.not_applicable:
                    continue
                r = self.one(stage, first + rep, s, order)
                lost = unheld(s, r) if r is not None else None
                if lost is None:
                    if r is not None:
                        self.acknowledged.add(s.family)
                    continue
                self.grid.runs[-1]["unheld"] = lost[1]
                self.drop(s, *lost)


def run_grid(
    wb: Workbench,
    grid: Grid,
    repeats: int,
    verify_repeats: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The first pass over the plan, then the best few and the combined settings again with
    fresh repeats beside the default; returns the workload's entry for grid.json."""
    runner = Runner(wb, grid, log)
    runner.sweep("grid", grid.settings, repeats, defaults=GRID_DEFAULTS)
    first = summarise(grid.runs_of("grid"))
    ranked = sorted(
        (
            s
            for s in grid.settings
            if s.label in first and s.label != DEFAULT and s.family not in grid.not_applicable
        ),
        key=lambda s: first[s.label]["ratio"],
        reverse=True,
    )
    ratios = {k: v["ratio"] for k, v in first.items()}
    extra = combined(ratios, grid.settings)
    verify = [Setting({}), *ranked[:VERIFY_TOP], *extra]
    log(f"  verifying {', '.join(s.label for s in verify[1:])}")
    runner.sweep("verify", verify, verify_repeats, first=repeats)
    second = summarise(grid.runs_of("verify"))
    return entry(grid, first, second, verify, extra)


def entry(
    grid: Grid,
    first: Mapping[str, Mapping[str, Any]],
    second: Mapping[str, Mapping[str, Any]],
    verify: Sequence[Setting],
    extra: Sequence[Setting],
) -> dict[str, Any]:
    """The workload's record: plan, raw runs, ratios per pass, and the real static-best."""
    settings = []
    for s in [*grid.settings, *extra]:
        d = s.to_dict()
        if s.family in grid.not_applicable:
            d["not_applicable"] = grid.not_applicable[s.family]
        if s.label in first:
            d["grid"] = first[s.label]
        if s.label in second:
            d["verify"] = second[s.label]
        settings.append(d)
    verified = [s.label for s in verify if s.label != DEFAULT and s.label in second]
    best = max(verified, key=lambda x: second[x]["ratio"], default=None)
    if best is None or second[best]["ratio"] <= 1.0:
        static_best = {"setting": DEFAULT, "ratio": 1.0, "ci95": [1.0, 1.0]}
        if best is not None:
            static_best["best_other"] = {"setting": best, **second[best]}
    else:
        static_best = {"setting": best, **second[best]}
    pick = next((s for s in grid.settings if s.replay_pick), None)
    return {
        "samples": grid.samples,
        "base": grid.base,
        "sizing": grid.sizing,
        "settings": settings,
        "not_applicable": grid.not_applicable,
        "static_best": static_best,
        "replay_pick": None if pick is None else pick.label,
        "runs": grid.runs,
    }

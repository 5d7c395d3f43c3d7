"""The report's plots, as inline SVG (:mod:`autotune.compare.svg`; nothing to fetch).

Only the plotted runs' metric histories are read: at most :data:`MAX_PLOTTED` sessions and
training runs, the newest, so a report over thousands of runs costs a few dozen calls.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from autotune.compare import svg
from autotune.compare.comparison import Comparison
from autotune.compare.fetch import RunRecord
from autotune.compare.groups import Linker, Row, run_value
from autotune.tracking.schema import (
    EVAL_RESULT,
    KNOB_METRIC_PREFIX,
    M_EPISODE_REWARD,
    M_EVAL_PROGRESS,
    M_PROGRESS_VS_DEFAULT,
    TAG_POLICY,
    TAG_WORKLOAD,
    TUNE,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MAX_PLOTTED = 6


def progress(cmp: Comparison) -> str | None:
    """Bars of the metric per workload (x) and policy (bars), mean with its 95% interval."""
    runs = [r for r in cmp.runs if r.kind == EVAL_RESULT and run_value(r, cmp.metric) is not None]
    linker = Linker(cmp.runs)
    if not runs:  # no evaluation: show the tuning sessions instead, by the model they ran
        runs = [r for r in cmp.runs if r.kind == TUNE and run_value(r, cmp.metric) is not None]
    if not runs:
        return None
    cells: dict[tuple[str, str], Row] = {}
    for r in runs:
        policy = r.tags.get(TAG_POLICY) or linker.model_label(r) or "?"
        workload = r.tags.get(TAG_WORKLOAD, "?")
        cell = cells.setdefault((workload, policy), Row(source="", group=policy))
        value = run_value(r, cmp.metric)
        if value is not None and math.isfinite(value):
            cell.values.append(value)
    summary = {}
    for key, cell in cells.items():
        if cell.values:
            lo, hi = cell.interval
            summary[key] = (cell.mean, (hi - lo) / 2)
    reference = 1.0 if cmp.metric == M_PROGRESS_VS_DEFAULT else None
    return svg.bars(
        sorted({w for w, _ in summary}), sorted({p for _, p in summary}), summary,
        cmp.metric, reference,
    )  # fmt: skip


def _history(c: MlflowClient, run: RunRecord, key: str) -> tuple[list[float], list[float]]:
    """(x, y) of a metric's history: x the step."""
    points = sorted(c.get_metric_history(run.run_id, key), key=lambda m: (m.step, m.timestamp))
    return [float(m.step) for m in points], [float(m.value) for m in points]


def _newest(runs: list[RunRecord]) -> list[RunRecord]:
    return sorted(runs, key=lambda r: r.start_time, reverse=True)[:MAX_PLOTTED]


def knob_trajectories(c: MlflowClient, cmp: Comparison) -> str | None:
    """One panel per knob: its value over a session's control intervals, a line per session."""
    sessions = _newest(cmp.sessions())
    knobs = sorted({k for s in sessions for k in s.metrics if k.startswith(KNOB_METRIC_PREFIX)})
    if not knobs:
        return None
    linker = Linker(cmp.runs)
    labels = {s.run_id: f"{s.short} · {linker.model_label(s) or 'no model'}" for s in sessions}
    panels = []
    for i, knob in enumerate(knobs):
        series = [(labels[s.run_id], *_history(c, s, knob)) for s in sessions if knob in s.metrics]
        panels.append(
            svg.lines(
                series,
                knob.removeprefix(KNOB_METRIC_PREFIX),
                "control interval",
                step=True,
                legend=i == 0,
            )
        )
    return '<div class="panels">' + "".join(panels) + "</div>"


def learning_curves(c: MlflowClient, cmp: Comparison) -> str | None:
    """Episode reward and evaluation progress over timesteps, a line per training run."""
    runs = _newest(cmp.training_runs())
    keys = [k for k in (M_EPISODE_REWARD, M_EVAL_PROGRESS) if any(k in r.metrics for r in runs)]
    if not keys:
        return None
    panels = []
    for i, key in enumerate(keys):
        series = [(f"{r.short} {r.name}", *_history(c, r, key)) for r in runs if key in r.metrics]
        panels.append(svg.lines(series, key, "timesteps", legend=i == 0))
    return '<div class="panels">' + "".join(panels) + "</div>"

"""The report's plots, drawn with matplotlib as inline SVG (nothing to fetch).

Only the plotted runs' metric histories are read: at most :data:`MAX_PLOTTED` sessions and
training runs, the newest, so a report over thousands of runs costs a few dozen calls.
"""

from __future__ import annotations

import io
import math
import re
from typing import TYPE_CHECKING, Any

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
    from matplotlib.figure import Figure
    from mlflow.tracking import MlflowClient

MAX_PLOTTED = 6


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # The RDF block only credits matplotlib; namespace URIs stay (they are names, not fetched).
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)


def _figure(nrows: int, ncols: int, width: float, height: float) -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # Text as <text> in the browser's own sans-serif: a third faster to write than as paths,
    # and still nothing to fetch.
    matplotlib.rcParams["svg.fonttype"] = "none"
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


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
        if value is not None:
            cell.values.append(value)
    workloads = sorted({w for w, _ in cells})
    policies = sorted({p for _, p in cells})
    fig, axes = _figure(1, 1, max(6.0, 1.2 * len(workloads) * max(1, len(policies)) / 2), 4.0)
    ax = axes[0][0]
    width = 0.8 / len(policies)
    for i, policy in enumerate(policies):
        xs, means, errs = [], [], []
        for j, workload in enumerate(workloads):
            found = cells.get((workload, policy))
            if found is None:
                continue
            lo, hi = found.interval
            xs.append(j - 0.4 + width * (i + 0.5))
            means.append(found.mean)
            errs.append(0.0 if math.isnan(lo) else (hi - lo) / 2)
        ax.bar(xs, means, width=width * 0.9, yerr=errs, capsize=3, label=policy)
    if cmp.metric == M_PROGRESS_VS_DEFAULT:
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel(cmp.metric)
    # Below the axes: inside, it would cover the bars it explains.
    ax.legend(
        fontsize="small",
        ncols=min(4, len(policies)),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        frameon=False,
    )
    return _svg(fig)


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
    ncols = 2 if len(knobs) > 1 else 1
    nrows = math.ceil(len(knobs) / ncols)
    fig, axes = _figure(nrows, ncols, 10.0, 2.6 * nrows)
    for idx, knob in enumerate(knobs):
        ax = axes[idx // ncols][idx % ncols]
        for s in sessions:
            if knob in s.metrics:
                xs, ys = _history(c, s, knob)
                label = f"{s.short} · {linker.model_label(s) or 'no model'}"
                ax.step(xs, ys, where="post", label=label)
        ax.set_title(knob.removeprefix(KNOB_METRIC_PREFIX), fontsize="medium")
        ax.set_xlabel("control interval")
    for idx in range(len(knobs), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_visible(False)
    axes[0][0].legend(fontsize="x-small")
    fig.tight_layout()
    return _svg(fig)


def learning_curves(c: MlflowClient, cmp: Comparison) -> str | None:
    """Episode reward and evaluation progress over timesteps, a line per training run."""
    runs = _newest(cmp.training_runs())
    keys = [k for k in (M_EPISODE_REWARD, M_EVAL_PROGRESS) if any(k in r.metrics for r in runs)]
    if not keys:
        return None
    fig, axes = _figure(1, len(keys), 5.0 * len(keys), 3.6)
    for col, key in enumerate(keys):
        ax = axes[0][col]
        for r in runs:
            if key in r.metrics:
                xs, ys = _history(c, r, key)
                ax.plot(xs, ys, marker=".", label=f"{r.short} {r.name}")
        ax.set_title(key, fontsize="medium")
        ax.set_xlabel("timesteps")
    axes[0][0].legend(fontsize="x-small")
    fig.tight_layout()
    return _svg(fig)

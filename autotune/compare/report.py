"""The HTML report: one self-contained page (inline CSS and SVG; no script, nothing fetched)."""

from __future__ import annotations

import html
import math
import time
from typing import TYPE_CHECKING

from autotune.compare import plots
from autotune.compare.comparison import Comparison, fmt
from autotune.compare.fetch import RunRecord
from autotune.compare.groups import Linker, run_value
from autotune.tracking.schema import (
    M_EVAL_PROGRESS,
    TAG_ALGO,
    TAG_HOST,
    TAG_TARGET_COMMAND,
    TAG_WORKLOADS,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best { background: #e6f4e6; font-weight: bold; }
figure { margin: 1em 0 2em; } figcaption { color: #555; font-size: 0.9em; }
figure svg { max-width: 100%; height: auto; }
.panels { display: flex; flex-wrap: wrap; gap: 8px; }
code { font-size: 0.9em; } .none { color: #777; font-style: italic; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if ms else "?"


def _summary(cmp: Comparison) -> str:
    head = (
        f"<tr><th>source</th><th>{_e(cmp.group_by)}</th><th>n</th><th>mean</th>"
        "<th>95% interval</th><th>best</th></tr>"
    )
    rows = []
    for r in cmp.rows:
        lo, hi = r.interval
        interval = "—" if math.isnan(lo) else f"{fmt(lo)} … {fmt(hi)}"
        rows.append(
            f'<tr class="{"best" if r.best else ""}"><td>{_e(r.source)}</td><td>{_e(r.group)}</td>'
            f'<td class="num">{r.n}</td><td class="num">{fmt(r.mean)}</td>'
            f'<td class="num">{interval}</td><td>{"★" if r.best else ""}</td></tr>'
        )
    return f'<table id="summary">{head}{"".join(rows)}</table>'


def _figure(svg: str | None, ident: str, caption: str, missing: str) -> str:
    if svg is None:
        return f'<p class="none" id="{ident}-none">{_e(missing)}</p>'
    return f'<figure id="{ident}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def _training(cmp: Comparison) -> str:
    runs = sorted(cmp.training_runs(), key=lambda r: r.start_time, reverse=True)
    if not runs:
        return '<p class="none">No training runs in this comparison.</p>'
    rows = []
    for r in runs:
        final = r.metrics.get(M_EVAL_PROGRESS, math.nan)
        rows.append(
            f'<tr id="run-{_e(r.run_id)}"><td><code>{_e(r.short)}</code></td><td>{_e(r.name)}</td>'
            f"<td>{_e(r.tags.get(TAG_ALGO, '?'))}</td><td>{_e(r.tags.get(TAG_WORKLOADS, ''))}</td>"
            f'<td class="num">{fmt(final)}</td><td>{_e(r.status)}</td>'
            f"<td>{_when(r.start_time)}</td></tr>"
        )
    head = (
        "<tr><th>run</th><th>name</th><th>algo</th><th>workloads</th>"
        f"<th>{_e(M_EVAL_PROGRESS)}</th><th>status</th><th>started</th></tr>"
    )
    return f'<table id="training">{head}{"".join(rows)}</table>'


def _model_cell(run: RunRecord, linker: Linker) -> str:
    label = linker.model_label(run)
    if label is None:
        return '<span class="none">none</span>'
    model = linker.model_of(run)
    if model is None:
        return f'{_e(label)} <span class="none">(not in this comparison)</span>'
    return f'<a href="#run-{_e(model.run_id)}">{_e(label)}</a>'


def _sessions(cmp: Comparison) -> str:
    sessions = sorted(cmp.sessions(), key=lambda r: r.start_time, reverse=True)
    if not sessions:
        return '<p class="none">No tuning sessions in this comparison.</p>'
    linker = Linker(cmp.runs)
    rows = []
    for s in sessions:
        value = run_value(s, cmp.metric)
        rows.append(
            f'<tr id="run-{_e(s.run_id)}"><td><code>{_e(s.short)}</code></td>'
            f"<td>{_model_cell(s, linker)}</td>"
            f"<td><code>{_e(s.tags.get(TAG_TARGET_COMMAND, ''))}</code></td>"
            f"<td>{_e(s.tags.get(TAG_HOST, '?'))}</td>"
            f'<td class="num">{fmt(math.nan if value is None else value)}</td>'
            f"<td>{_e(s.status)}</td><td>{_when(s.start_time)}</td></tr>"
        )
    head = (
        "<tr><th>session</th><th>model (training run)</th><th>target command</th><th>host</th>"
        f"<th>{_e(cmp.metric)}</th><th>status</th><th>started</th></tr>"
    )
    return f'<table id="sessions">{head}{"".join(rows)}</table>'


def render(cmp: Comparison, c: MlflowClient) -> str:
    """The whole page."""
    n = plots.MAX_PLOTTED
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>autotune compare — {_e(cmp.where)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>autotune compare — {_e(cmp.where)}</h1>",
        f"<p>{len(cmp.runs)} runs from <code>{_e(c.tracking_uri)}</code>, "
        f"{_e(cmp.metric)} by {_e(cmp.group_by)}; {cmp.left_out} without it. "
        f"Made {_when(int(time.time() * 1000))}.</p>",
        "<h2>Summary</h2>",
        _summary(cmp),
        "<h2>Progress vs default, per workload and policy</h2>",
        _figure(
            plots.progress(cmp),
            "plot-progress",
            f"mean {cmp.metric} with its 95% interval; dashed: the default knobs",
            f"No evaluation results or sessions with {cmp.metric}.",
        ),
        "<h2>Knob trajectories of tuning sessions</h2>",
        _figure(
            plots.knob_trajectories(c, cmp),
            "plot-knobs",
            f"each knob's value per control interval, the newest {n} sessions",
            "No tuning sessions with knob metrics.",
        ),
        "<h2>Learning curves</h2>",
        _figure(
            plots.learning_curves(c, cmp),
            "plot-learning",
            f"episode reward and evaluation progress over timesteps, the newest {n} runs",
            "No training runs with learning metrics.",
        ),
        "<h2>Training runs</h2>",
        _training(cmp),
        "<h2>Tuning sessions and the models they ran</h2>",
        _sessions(cmp),
        "</body></html>",
    ]
    return "\n".join(parts)

"""A comparison: the runs, their groups, the links between sessions and models; as table,
CSV or JSON (the HTML report is :mod:`autotune.compare.report`)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

from autotune.compare.fetch import RunRecord
from autotune.compare.groups import GroupBy, Linker, Row, run_value, summarize
from autotune.tracking.schema import TAG_MODEL_RUN_ID, TAG_TARGET_COMMAND, TRAIN, TUNE


@dataclass
class Comparison:
    """Everything one `autotune compare` shows."""

    metric: str
    group_by: GroupBy
    where: str  # "experiment 'x'" or "3 named runs"
    runs: list[RunRecord]
    rows: list[Row]

    @classmethod
    def of(cls, runs: list[RunRecord], metric: str, group_by: GroupBy, where: str) -> Comparison:
        return cls(metric, group_by, where, runs, summarize(runs, metric, group_by))

    @property
    def left_out(self) -> int:
        """Runs without the metric (an eval parent, a recording, a run still starting)."""
        return sum(1 for r in self.runs if run_value(r, self.metric) is None)

    def links(self) -> list[dict[str, Any]]:
        """Each run that names a model, with the training run it names (when found)."""
        linker = Linker(self.runs)
        out = []
        for run in self.runs:
            ref = run.tags.get(TAG_MODEL_RUN_ID)
            if not ref:
                continue
            model = linker.model_of(run)
            out.append(
                {
                    "run_id": run.run_id,
                    "kind": run.kind,
                    "name": run.name,
                    "model_run_id": model.run_id if model else ref,
                    "model": linker.model_label(run),
                    "model_found": model is not None,
                    "target_command": run.tags.get(TAG_TARGET_COMMAND),
                    "value": run_value(run, self.metric),
                }
            )
        return out

    def training_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.kind == TRAIN]

    def sessions(self) -> list[RunRecord]:
        return [r for r in self.runs if r.kind == TUNE]


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def row_dict(row: Row) -> dict[str, Any]:
    lo, hi = row.interval
    return {
        "source": row.source,
        "group": row.group,
        "n": row.n,
        "mean": row.mean,
        "ci95_low": _num(lo),
        "ci95_high": _num(hi),
        "best": row.best,
        "run_ids": row.run_ids,
    }


def to_json(cmp: Comparison) -> str:
    """The comparison as JSON: rows, links, and what was left out."""
    doc = {
        "metric": cmp.metric,
        "group_by": cmp.group_by,
        "where": cmp.where,
        "runs": len(cmp.runs),
        "runs_without_metric": cmp.left_out,
        "rows": [row_dict(r) for r in cmp.rows],
        "links": cmp.links(),
    }
    return json.dumps(doc, indent=2)


CSV_FIELDS = ("source", "group", "n", "mean", "ci95_low", "ci95_high", "best")


def to_csv(cmp: Comparison) -> str:
    """One line per row (no run ids: JSON has them)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in cmp.rows:
        d = row_dict(row)
        w.writerow({k: ("" if d[k] is None else d[k]) for k in CSV_FIELDS})
    return buf.getvalue()


def fmt(x: float) -> str:
    """A ratio or metric value as shown in tables."""
    return "—" if math.isnan(x) else f"{x:.3f}"


def to_table(cmp: Comparison) -> Any:
    """A rich Table: source, group, n, mean, 95% interval, best marked ★."""
    from rich.table import Table

    table = Table(
        title=f"{cmp.metric} by {cmp.group_by} — {cmp.where}",
        title_justify="left",
        caption=(
            f"{cmp.left_out} run(s) without {cmp.metric} left out; ★ best of its source"
            if cmp.left_out
            else "★ best of its source"
        ),
        caption_justify="left",
    )
    for col, justify in (
        ("source", "left"),
        (cmp.group_by, "left"),
        ("n", "right"),
        ("mean", "right"),
        ("95% interval", "right"),
        ("", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in cmp.rows:
        lo, hi = row.interval
        interval = "—" if math.isnan(lo) else f"{fmt(lo)} … {fmt(hi)}"
        style = "bold green" if row.best else None
        table.add_row(
            row.source,
            row.group,
            str(row.n),
            fmt(row.mean),
            interval,
            "★" if row.best else "",
            style=style,
        )
    return table

"""Evaluation output: a rich table and a PNG plot of progress relative to the default knobs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from autotune.agents.evaluate import Summary


def _p_improve(s: Summary, baseline: str) -> str:
    if baseline not in s.p_improve:
        return ""
    p, lo, hi = s.p_improve[baseline]
    return f"{p:.2f} [{lo:.2f}, {hi:.2f}]"


def table(summaries: Sequence[Summary], title: str = "progress vs default (test parts)") -> Table:
    """One row per (workload, policy), the best mean of each workload marked ★: mean and its
    95 % bootstrap interval over runs, IQM, and P(improvement) over default and static-best."""
    t = Table(title=title, title_justify="left")
    for col, justify in (
        ("workload", "left"),
        ("policy", "left"),
        ("progress vs default", "right"),
        ("95% interval", "right"),
        ("IQM", "right"),
        ("n", "right"),
        ("P(> default)", "right"),
        ("P(> static-best)", "right"),
        ("changes/min", "right"),
        ("worst regression", "right"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    workloads = sorted({s.workload for s in summaries}, key=lambda w: (w == "all", w))
    for w in workloads:
        rows = sorted((s for s in summaries if s.workload == w), key=lambda s: -s.mean)
        best = rows[0].mean if rows else None
        for s in rows:
            mark = " ★" if s.mean == best else ""
            t.add_row(
                w,
                s.policy + mark,
                f"{s.mean:.3f}",
                f"[{s.low:.3f}, {s.high:.3f}]",
                f"{s.iqm:.3f}",
                str(s.n),
                _p_improve(s, "default"),
                _p_improve(s, "static-best"),
                f"{s.changes_per_min:.1f}",
                f"{s.worst_regression:.1%}",
                style="bold" if w == "all" else None,
            )
        t.add_section()
    return t


def plot(summaries: Sequence[Summary], path: Path) -> Path:
    """Grouped bars with 95 % intervals: one group per workload, one bar per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    workloads = sorted({s.workload for s in summaries}, key=lambda w: (w == "all", w))
    policies = sorted({s.policy for s in summaries})
    by = {(s.workload, s.policy): s for s in summaries}
    width = 0.8 / max(len(policies), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(workloads)), 4.0))
    x = np.arange(len(workloads))
    for j, p in enumerate(policies):
        means = [by[(w, p)].mean if (w, p) in by else np.nan for w in workloads]
        err = [
            [by[(w, p)].mean - by[(w, p)].low if (w, p) in by else 0 for w in workloads],
            [by[(w, p)].high - by[(w, p)].mean if (w, p) in by else 0 for w in workloads],
        ]
        ax.bar(
            x + (j - (len(policies) - 1) / 2) * width, means, width, yerr=err, label=p, capsize=2
        )
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(x, workloads, rotation=15)
    ax.set_ylabel("progress / progress at default knobs")
    ax.set_title("test parts (mean and 95% bootstrap interval over runs)")
    ax.legend(fontsize=8, ncol=min(len(policies), 5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Which value each run contributes, to which group, and each group's mean and 95% interval.

A run's value is its metric (``--metric``); a training run that lacks it contributes its last
``eval/<metric>``. Rows are kept apart by source (``eval`` results, ``train`` runs, ``tune``
sessions), since an offline replay and an online session measure different things; within a
source the best row is marked. A tuning session is grouped under the model it ran: the algo and
name of the training run its ``autotune.model_run_id`` points at (a local id is matched too).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

from autotune.compare.fetch import RunRecord
from autotune.errors import UserError
from autotune.tracking.schema import (
    EVAL_RESULT,
    M_KNOB_CHANGES_PER_MIN,
    M_LOOP_CPU,
    TAG_ALGO,
    TAG_HOST,
    TAG_MODEL_RUN_ID,
    TAG_POLICY,
    TAG_TARGET_COMMAND,
    TAG_WORKLOAD,
    TAG_WORKLOADS,
    TRAIN,
    TUNE,
)

GroupBy = Literal["policy", "algo", "workload", "host"]
GROUP_BYS: tuple[GroupBy, ...] = ("policy", "algo", "workload", "host")
# Metrics where less is better; for every other one (ratios of progress) more is better.
LOWER_IS_BETTER = frozenset({M_KNOB_CHANGES_PER_MIN, M_LOOP_CPU})
SOURCES = {EVAL_RESULT: "eval", TRAIN: "train", TUNE: "tune"}


@dataclass
class Row:
    """One group's summary."""

    source: str
    group: str
    values: list[float] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    best: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% confidence interval of the mean (Student's t); NaN for a single value."""
        if self.n < 2:
            return math.nan, math.nan
        from scipy.special import stdtrit

        m = self.mean
        sd = math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / (self.n - 1))
        half = float(stdtrit(self.n - 1, 0.975)) * sd / math.sqrt(self.n)
        return m - half, m + half


def run_value(run: RunRecord, metric: str) -> float | None:
    """The value ``run`` contributes for ``metric``, or None."""
    if metric in run.metrics:
        return run.metrics[metric]
    if run.kind == TRAIN:
        return run.metrics.get(f"eval/{metric}")
    return None


class Linker:
    """Finds the training run a session or result names, by MLflow id or by local id."""

    def __init__(self, runs: list[RunRecord]) -> None:
        self.by_id = {r.run_id: r for r in runs}
        self.by_local = {r.local_id: r for r in runs if r.local_id}

    def model_of(self, run: RunRecord) -> RunRecord | None:
        ref = run.tags.get(TAG_MODEL_RUN_ID)
        if not ref:
            return None
        return self.by_id.get(ref) or self.by_local.get(ref)

    def model_label(self, run: RunRecord) -> str | None:
        """``ppo (a1b2c3d4)`` for the model a session used; None when it used none."""
        ref = run.tags.get(TAG_MODEL_RUN_ID)
        if not ref:
            return None
        model = self.model_of(run)
        if model is None:  # trained elsewhere, or in another experiment
            return f"{run.tags.get(TAG_ALGO, 'model')} ({ref[:8]})"
        return f"{model.tags.get(TAG_ALGO, model.name or 'model')} ({model.short})"


def group_key(run: RunRecord, by: GroupBy, linker: Linker) -> str:
    """The label of ``run``'s group under ``by``."""
    tags = run.tags
    if by == "host":
        return tags.get(TAG_HOST, "?")
    if by == "workload":
        if TAG_WORKLOAD in tags:
            return tags[TAG_WORKLOAD]
        if TAG_WORKLOADS in tags:
            return tags[TAG_WORKLOADS]
        command = tags.get(TAG_TARGET_COMMAND, "")
        return os.path.basename(command.split()[0]) if command.strip() else "?"
    if run.kind == TUNE:
        return linker.model_label(run) or tags.get(TAG_ALGO) or tags.get(TAG_POLICY, "?")
    if by == "algo":
        return tags.get(TAG_ALGO) or tags.get(TAG_POLICY, "?")
    return tags.get(TAG_POLICY) or tags.get(TAG_ALGO, "?")


def _metrics_of(runs: list[RunRecord]) -> str:
    counts: dict[str, int] = {}
    for r in runs:
        for key in r.metrics:
            counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    return ", ".join(f"{k} ({n} runs)" for k, n in top) or "no metrics at all"


def check_metric(runs: list[RunRecord], metric: str, named: bool, where: str) -> None:
    """Refuse a comparison whose runs do not share ``metric``.

    Runs named one by one must all have it; of an experiment's runs at least one must.

    Raises:
        UserError: saying which metrics the runs have instead.
    """
    lacking = [r for r in runs if run_value(r, metric) is None]
    if named and lacking:
        having = [r for r in runs if r not in lacking]
        parts = [
            f"{r.short} ({r.kind}) has {', '.join(sorted(r.metrics)) or 'no metrics'}"
            for r in lacking[:4]
        ]
        if having:
            parts.append(f"{len(having)} other(s) have {metric}")
        raise UserError(
            f"runs have different metrics, not all {metric}: {'; '.join(parts)} "
            "(choose another --metric or other --runs)"
        )
    if len(lacking) == len(runs):
        raise UserError(f"no run in {where} has metric {metric!r}; they have {_metrics_of(runs)}")


def summarize(runs: list[RunRecord], metric: str, by: GroupBy) -> list[Row]:
    """Rows of (source, group) with the runs' values; the best row of each source marked."""
    linker = Linker(runs)
    rows: dict[tuple[str, str], Row] = {}
    for run in runs:
        value = run_value(run, metric)
        if value is None or math.isnan(value):
            continue
        source = SOURCES.get(run.kind, run.kind)
        key = (source, group_key(run, by, linker))
        row = rows.setdefault(key, Row(source=key[0], group=key[1]))
        row.values.append(value)
        row.run_ids.append(run.run_id)
    ordered = sorted(rows.values(), key=lambda r: (_source_rank(r.source), r.group))
    lower = metric in LOWER_IS_BETTER
    for source in {r.source for r in ordered}:
        candidates = [r for r in ordered if r.source == source]
        if len(candidates) > 1:
            pick = min if lower else max
            pick(candidates, key=lambda r: r.mean).best = True
    return ordered


def _source_rank(source: str) -> int:
    order = list(SOURCES.values())
    return order.index(source) if source in order else len(order)

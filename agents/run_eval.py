"""`autotune eval` end to end: resolve policies, run the protocol, report, track.

Models trained with the same algorithm on the same workloads are one policy with one run per
model (training seed): give five of them and the intervals are over five training seeds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from autotune import policy as runtime
from autotune.agents import baselines as bl
from autotune.agents import report, select
from autotune.agents.evaluate import (
    EpisodeResult,
    Factory,
    Predictor,
    Summary,
    evaluate,
    summarize,
)
from autotune.config import Settings
from autotune.envs import splits
from autotune.envs.workload import Workload
from autotune.errors import UserError


def _constant(p: runtime.Policy) -> Callable[[Workload], Predictor]:
    return lambda _w: p


def _baseline(name: str) -> Callable[[Workload], Predictor]:
    return lambda w: bl.make(name, w)


@dataclass
class _Policies:
    factories: dict[str, Factory | list[Factory]] = field(default_factory=dict)
    run_ids: dict[tuple[str, int], str] = field(default_factory=dict)  # (policy, run) → run id
    train_seeds: set[int] = field(default_factory=set)


def _policies(models: list[str], baseline_names: list[str], settings: Settings) -> _Policies:
    from autotune.tracking.models import resolve_model

    out = _Policies()
    groups: dict[tuple[str, str], str] = {}  # (algo, trained on) → policy name
    for m in models:
        folder = resolve_model(m, settings.tracking_uri, settings.runs_dir)
        pol = runtime.load(folder)
        key = (pol.algo, ",".join(pol.meta.get("trained_on") or []))
        if key not in groups:
            name, i = pol.algo, 2
            while name in groups.values():
                name, i = f"{pol.algo}-{i}", i + 1
            groups[key] = name
            out.factories[name] = []
        name = groups[key]
        runs = out.factories[name]
        if isinstance(runs, list):
            if not Path(m).exists():
                out.run_ids[(name, len(runs))] = m
            runs.append(_constant(pol))
        if "seed" in pol.meta:
            out.train_seeds.add(int(pol.meta["seed"]))
    for b in baseline_names:
        out.factories[b] = _baseline(b)
    if not out.factories:
        raise UserError("nothing to evaluate: give --model and/or --baselines")
    return out


def run(
    *,
    models: list[str],
    workload_patterns: list[str],
    baseline_names: list[str],
    seeds: int,
    plot_path: Path | None,
    experiment: str,
    settings: Settings,
    console: Console | None = None,
) -> tuple[list[Summary], list[EpisodeResult], str]:
    """Evaluate, print the table, write the plot, log it all; returns summaries, results, run id."""
    from autotune.tracking import schema as ts
    from autotune.tracking.run import tracked_run

    out = console or Console()
    pols = _policies(models, baseline_names, settings)
    factories = pols.factories
    wls = select.workloads(workload_patterns)
    eval_seeds = splits.eval_seeds(seeds, exclude=pols.train_seeds)
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("evaluating", total=len(wls) * len(factories))

        def tick(label: str) -> None:
            bar.update(task, advance=1, description=label)

        results = evaluate(factories, wls, eval_seeds, progress=tick)
    summaries = summarize(results)
    out.print(report.table(summaries))
    plot = plot_path or settings.runs_dir / "eval" / "progress_vs_default.png"
    report.plot(summaries, plot)
    out.print(f"plot: {plot}")
    params = {
        "policies": ",".join(factories),
        "workloads": ",".join(w.name for w in wls),
        "seeds": len(eval_seeds),
        "part": "test",
        "rows": json.dumps(splits.TEST),
    }
    with tracked_run(
        ts.EVAL,
        name="eval-" + "-".join(sorted(factories))[:60],
        params=params,
        tracking_uri=settings.tracking_uri,
        experiment=experiment,
        runs_dir=settings.runs_dir,
    ) as parent:
        for r in results:
            tags: dict[str, Any] = {
                ts.TAG_POLICY: r.policy,
                ts.TAG_WORKLOAD: r.workload,
                ts.TAG_SEED: r.seed,
            }
            if (r.policy, r.run) in pols.run_ids:
                tags[ts.TAG_MODEL_RUN_ID] = pols.run_ids[(r.policy, r.run)]
            runs = factories[r.policy]
            several = isinstance(runs, list) and len(runs) > 1
            with tracked_run(
                ts.EVAL_RESULT,
                name=f"{r.policy}/{r.workload}/" + (f"{r.run}/" if several else "") + str(r.seed),
                tags=tags,
                tracking_uri=settings.tracking_uri,
                experiment=experiment,
                parent=parent,
                runs_dir=settings.runs_dir,
                notify=lambda _message: None,  # the parent run already tells
            ) as child:
                child.log_metrics(
                    {
                        ts.M_PROGRESS_VS_DEFAULT: r.progress_vs_default,
                        ts.M_KNOB_CHANGES_PER_MIN: r.knob_changes_per_min,
                        ts.M_WORST_REGRESSION: r.worst_regression,
                    }
                )
        with tempfile.TemporaryDirectory() as tmp:
            table_path = Path(tmp) / "summary.json"
            table_path.write_text(json.dumps([asdict(s) for s in summaries], indent=1))
            parent.log_artifact(table_path)
        parent.log_artifact(plot)
        overall = {s.policy: s.mean for s in summaries if s.workload == "all"}
        parent.log_metrics({f"{ts.M_PROGRESS_VS_DEFAULT}/{p}": v for p, v in overall.items()})
        run_id = parent.id
    return summaries, results, run_id

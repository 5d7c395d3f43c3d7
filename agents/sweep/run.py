"""A sweep: trials on Ray Tune, one MLflow run over them, the champion in the Model Registry.

:func:`run_sweep` opens the sweep's MLflow run (kind ``sweep``), starts Ray (embedded) or joins
a cluster, runs the trials (:mod:`autotune.agents.sweep.trial`) under ASHA, shows them
(:mod:`autotune.agents.sweep.progress`), then picks the champion from MLflow: the trial run, nested
under the sweep's, with the best held-out score (``train/best_progress_vs_default``, the score
`autotune train` chooses its checkpoint by; never a test part) and a ``policy/`` artifact. It
registers that run's policy (``autotune-policy`` @ ``champion`` unless the sweep file says
otherwise). A trial that fails is reported with its error and the others go on.

Ctrl-C stops the sweep the way Ctrl-C stops `autotune train`: each running trial ends at its next
evaluation (its MLflow run ends with what it has), nothing is registered, the sweep's run ends
KILLED and the command exits 130. A second Ctrl-C (or SIGTERM) stops at once. Ray's own SIGINT
handler is turned off for this: it would end the trials the same way and then let the sweep carry
on to register a champion of the trials cut short.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from autotune.agents.sweep.spec import SweepSpec, grid_size, search_space, workload_subsets
from autotune.errors import UserError
from autotune.tracking import schema as ts

BEST_METRIC = "train/best_progress_vs_default"


@dataclass
class SweepRequest:
    """What `autotune sweep` was asked."""

    spec: SweepSpec
    address: str | None = None
    tracking_uri: str = ts.DEFAULT_TRACKING_URI
    runs_dir: Path = Path("runs")
    num_cpus: int | None = None
    register: bool = True
    live: bool | None = None  # None: a live table on a terminal, lines otherwise


@dataclass
class SweepResult:
    """How a sweep went."""

    run_id: str
    trials: list[dict[str, Any]]
    champion_run_id: str | None
    champion_score: float
    model_uri: str | None
    wall_s: float
    ray_start_s: float
    ray_stop_s: float
    nodes: int
    errors: int
    stopped_early: int
    extra: dict[str, Any] = field(default_factory=dict)


def _check_workloads(spec: SweepSpec) -> list[str]:
    """Resolve every workload subset once here, so a bad name fails before Ray starts."""
    from autotune.agents import select
    from autotune.envs.workload import list_bundled

    subsets = workload_subsets(spec.space)
    for subset in subsets:
        select.workloads(subset)
    if subsets:
        return []
    names = list_bundled()
    if not names:
        raise UserError("no bundled workloads found; give space.workloads in the sweep file")
    return names


def run_sweep(req: SweepRequest, console: Console | None = None) -> SweepResult:
    """Run the sweep end to end; Ray is stopped (or left) before this returns or raises.

    Raises:
        UserError: a bad sweep, workload, address or tracking store (before any trial runs).
    """
    from autotune.agents.sweep import cluster
    from autotune.tracking import store
    from autotune.tracking.run import tracked_run

    console = console or Console(stderr=True, soft_wrap=True)
    spec = req.spec
    default_workloads = _check_workloads(spec)
    if req.address is not None:
        cluster.probe(req.address)  # before anything is logged: a wrong address is a typo
    uri = store.normalize(req.tracking_uri)
    runs_dir = req.runs_dir.resolve()
    if req.address is not None and store.sqlite_path(uri) is not None:
        console.print(
            f"autotune: warning: trials on other machines cannot write {uri}; give "
            "--tracking-uri http://HOST:PORT (`autotune server`) for a cluster",
            highlight=False,
        )
    name = f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    params = {
        "trials": spec.trials,
        "timesteps": spec.timesteps,
        "eval_freq": spec.eval_freq,
        "patience": spec.patience,
        "n_envs": spec.n_envs,
        "tiny": spec.tiny,
        "cpus_per_trial": spec.cpus_per_trial,
        "asha": json.dumps(spec.asha.model_dump()),
        "space": json.dumps(spec.space),
        "address": req.address or "embedded",
    }
    t0 = time.perf_counter()
    with tracked_run(
        ts.SWEEP,
        name=name,
        params=params,
        tracking_uri=uri,
        experiment=spec.experiment,
        runs_dir=runs_dir,
    ) as run:
        t_ray = time.perf_counter()
        with cluster.ray_session(req.address, num_cpus=req.num_cpus) as ray_info:
            ray_start_s = time.perf_counter() - t_ray
            console.print(
                f"sweep {name}: {spec.trials * grid_size(spec.space)} trials on Ray "
                f"({'embedded' if req.address is None else req.address}, {ray_info.nodes} "
                f"node{'s' if ray_info.nodes != 1 else ''}, {ray_info.cpus:g} CPUs); "
                f"MLflow run {run.id} at {uri}",
                highlight=False,
            )
            view = _fit(spec, req, run.id, uri, runs_dir, name, default_workloads, console)
            t_stop = time.perf_counter()
        ray_stop_s = time.perf_counter() - t_stop
        _upload_leftovers(runs_dir, run.id)
        records = list(view.records.values())
        champion = _champion(uri, run.id, spec.experiment, records)
        champion_run, champion_score = champion if champion else (None, math.nan)
        model_uri = None
        if champion_run is not None and req.register and spec.registry.enabled:
            from autotune.tracking import registry

            version = registry.register(
                champion_run, uri, name=spec.registry.name, alias=spec.registry.alias
            )
            model_uri = version.uri
            run.set_tags({ts.TAG_MODEL_NAME: version.name, ts.TAG_MODEL_VERSION: version.version})
        errors = sum(r.status == "failed" for r in records)
        stopped = sum(r.status == "stopped early" for r in records)
        wall = time.perf_counter() - t0
        if champion_run is not None:
            run.set_tags({ts.TAG_CHAMPION_RUN_ID: champion_run})
        run.log_metrics(
            {
                "sweep/trials": len(records),
                "sweep/errors": errors,
                "sweep/stopped_early": stopped,
                "sweep/wall_s": wall,
                "sweep/ray_start_s": ray_start_s,
                "sweep/ray_stop_s": ray_stop_s,
                **({"sweep/best_progress_vs_default": champion_score} if champion_run else {}),
            },
            step=0,
        )
        trials = [r.as_dict() for r in records]
        run.log_dict(
            {"champion_run_id": champion_run, "model_uri": model_uri, "trials": trials},
            ts.SWEEP_ARTIFACT,
        )
        return SweepResult(
            run_id=run.id,
            trials=trials,
            champion_run_id=champion_run,
            champion_score=champion_score,
            model_uri=model_uri,
            wall_s=wall,
            ray_start_s=ray_start_s,
            ray_stop_s=ray_stop_s,
            nodes=ray_info.nodes,
            errors=errors,
            stopped_early=stopped,
        )


def _fit(  # noqa: PLR0917 - the sweep's pieces, passed once
    spec: SweepSpec,
    req: SweepRequest,
    parent: str,
    uri: str,
    runs_dir: Path,
    name: str,
    default_workloads: list[str],
    console: Console,
) -> Any:
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from autotune.agents.sweep.interrupt import CtrlC, ctrl_c_stops_trials
    from autotune.agents.sweep.progress import RecordingASHA, SweepView
    from autotune.agents.sweep.trial import Budget, Trial

    budget = Budget(
        timesteps=spec.timesteps,
        eval_freq=min(spec.eval_freq, spec.timesteps),
        patience=spec.patience,
        n_envs=spec.n_envs,
        tiny=spec.tiny,
        tracking_uri=uri,
        experiment=spec.experiment,
        runs_dir=str(runs_dir),
        out_dir=str(runs_dir / "training" / name),
        parent_run=parent,
        default_workloads=default_workloads,
    )
    scheduler = None
    if spec.asha.enabled:
        scheduler = RecordingASHA(
            time_attr="timesteps",
            max_t=spec.timesteps,
            grace_period=min(spec.asha.grace_evals * budget.eval_freq, spec.timesteps),
            reduction_factor=spec.asha.reduction_factor,
        )
    view = SweepView(console, scheduler, live=req.live)
    ctrl_c = CtrlC()
    tuner = tune.Tuner(
        tune.with_resources(Trial, {"cpu": spec.cpus_per_trial}),
        param_space={**search_space(spec.space), "budget": budget.as_dict()},
        tune_config=tune.TuneConfig(
            metric="best",
            mode="max",
            num_samples=spec.trials,
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(
                max_concurrent=spec.max_concurrent, random_state=spec.search_seed
            ),
            trial_dirname_creator=lambda t: t.trial_id,
            # A worker that ran a trial runs the next one: torch, SB3 and the workloads are
            # imported and loaded once per worker, not once per trial (Trial.reset_config).
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(runs_dir / "sweeps"),
            verbose=0,
            callbacks=[view],
            stop=ctrl_c,
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
        ),
    )
    # Through Ray Client (ray://) Tune runs on the cluster with a copy of the stopper: Ctrl-C
    # there is a KeyboardInterrupt, and Ray ends the trials when this driver leaves.
    through_client = (req.address or "").startswith("ray://")
    try:
        with ctrl_c_stops_trials(ctrl_c, console, enabled=not through_client):
            grid = tuner.fit()
    finally:
        view.close()
    if ctrl_c.pressed.is_set():
        raise KeyboardInterrupt  # the trials have ended; nothing is chosen from those cut short
    if not view.records:
        # Through Ray Client (ray://) Tune runs on the cluster with its own copy of the view:
        # what each trial did comes back in the result grid instead.
        view.from_results(grid)
    return view


def _champion(
    uri: str, parent: str, experiment: str, records: list[Any]
) -> tuple[str, float] | None:
    """The trial run under ``parent`` with the best held-out score and a policy, from MLflow."""
    from autotune.tracking import store

    if parent.startswith("local-"):
        return None  # the store did not answer: nothing to rank from (the runs are spooled)
    c = store.client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = c.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{ts.MLFLOW_PARENT_RUN_ID}` = '{parent}'",
        max_results=10_000,
    )
    by_trial = {r.data.tags.get(ts.TAG_SWEEP_TRIAL, ""): r for r in runs}
    for rec in records:
        found = by_trial.get(rec.trial_id)
        if found is not None:
            rec.run_id = found.info.run_id
    ranked = sorted(
        (r for r in runs if BEST_METRIC in r.data.metrics and r.info.status == "FINISHED"),
        key=lambda r: r.data.metrics[BEST_METRIC],
        reverse=True,
    )
    for r in ranked:
        if any(a.path == ts.POLICY_ARTIFACT for a in c.list_artifacts(r.info.run_id)):
            return r.info.run_id, float(r.data.metrics[BEST_METRIC])
    return None


def _upload_leftovers(runs_dir: Path, parent: str) -> None:
    """Upload the trial runs on this node whose last upload had not finished when Ray ended
    their worker (each run's end waits 20 s for it; on a node at load 80 that was not enough).

    Only this sweep's trials (their spool names the sweep's run as parent); a trial on another
    node keeps its spool there, for `autotune sync`.
    """
    from autotune.tracking.spool import Spool, spools
    from autotune.tracking.sync import sync_one
    from autotune.tracking.upload import Unreachable

    for path in spools(runs_dir / ts.SPOOL_DIR):
        try:
            first = next(iter(Spool.open(path).ops_from(0)), None)
        except (OSError, ValueError):
            continue
        if first is None or first[1].get("parent") != parent:
            continue
        try:
            sync_one(path)
        except (BlockingIOError, Unreachable):
            continue

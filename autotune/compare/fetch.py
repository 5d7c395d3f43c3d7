"""Read runs through MLflow's client API: one paginated search, no per-run calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autotune.errors import UserError
from autotune.tracking import store
from autotune.tracking.schema import TAG_KIND, TAG_LOCAL_ID
from autotune.tracking.spool import LOCAL_PREFIX

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

# Runs per search page: MLflow's stores accept up to 50,000; a few thousand keeps one page's
# JSON (a REST server) to a few megabytes.
PAGE_SIZE = 5000


@dataclass
class RunRecord:
    """What a comparison needs of one run (its latest metric values, not their histories)."""

    run_id: str
    name: str
    kind: str
    status: str
    start_time: int
    experiment_id: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def short(self) -> str:
        """The first 8 characters of the run id, as MLflow's UI shows them."""
        return self.run_id[:8]

    @property
    def local_id(self) -> str | None:
        return self.tags.get(TAG_LOCAL_ID)


def _record(run: Run) -> RunRecord:
    tags = dict(run.data.tags)
    return RunRecord(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        kind=tags.get(TAG_KIND, "?"),
        status=run.info.status,
        start_time=int(run.info.start_time or 0),
        experiment_id=str(run.info.experiment_id),
        tags=tags,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


def experiment_runs(c: MlflowClient, experiment: str) -> list[RunRecord]:
    """Every active run of ``experiment``, newest first.

    Raises:
        UserError: no such experiment, or it has no runs.
    """
    exp = c.get_experiment_by_name(experiment)
    if exp is None or exp.lifecycle_stage != "active":
        names = sorted(e.name for e in c.search_experiments())
        known = ", ".join(names) if names else "none"
        raise UserError(f"no experiment {experiment!r} at {c.tracking_uri} (experiments: {known})")
    records: list[RunRecord] = []
    token: str | None = None
    while True:
        page = c.search_runs([exp.experiment_id], max_results=PAGE_SIZE, page_token=token)
        records.extend(_record(r) for r in page)
        token = page.token
        if not token:
            break
    if not records:
        raise UserError(f"experiment {experiment!r} has no runs yet")
    return records


def named_runs(c: MlflowClient, run_ids: list[str]) -> list[RunRecord]:
    """The runs named by id, in the order given.

    Raises:
        UserError: a run id that the store does not know.
    """
    from mlflow.exceptions import MlflowException

    records = []
    for run_id in run_ids:
        if run_id.startswith(LOCAL_PREFIX):
            records.append(_by_local_id(c, run_id))
            continue
        try:
            records.append(_record(c.get_run(run_id)))
        except MlflowException as e:
            if e.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                raise UserError(f"no run {run_id} at {c.tracking_uri}") from e
            raise UserError(f"cannot read run {run_id}: {e.message.splitlines()[0]}") from e
    return records


def _by_local_id(c: MlflowClient, local_id: str) -> RunRecord:
    """The run uploaded from spool ``local_id`` (a run's id while its store was down)."""
    exp_ids = [e.experiment_id for e in c.search_experiments()]
    found = c.search_runs(exp_ids, f"tags.`{TAG_LOCAL_ID}` = '{local_id}'", max_results=1)
    if not found:
        raise UserError(
            f"no run {local_id} at {c.tracking_uri} (still in the spool? `autotune sync`)"
        )
    return _record(found[0])


def open_store(uri: str) -> MlflowClient:
    """A client for reading ``uri``; raises UserError when there is nothing there to read."""
    return store.client(uri, must_exist=True)

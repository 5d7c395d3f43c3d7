"""Replay a spool onto a tracking store, idempotently.

Uploading twice adds nothing: the run is found again by its ``autotune.local_id`` tag, the spool
records how far it got, and a metric sent twice (same key, step, timestamp and value) is
dropped by MLflow's store. Consecutive metrics, params and tags go up in ``log_batch`` calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.tracking import store
from autotune.tracking.schema import MLFLOW_PARENT_RUN_ID, TAG_LOCAL_ID, TAG_PARENT_LOCAL_ID
from autotune.tracking.spool import Spool, uploaded_run_id

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# MLflow's limits for one log_batch call.
MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
# Error codes meaning the store refused the data itself (retrying cannot help), as opposed to
# not answering: those operations are set aside, noted in the spool's state, and skipped.
REJECTED_CODES = frozenset(
    {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE"}
)


class Unreachable(Exception):
    """The store did not answer (or failed for a reason retrying later may cure)."""


def describe(exc: BaseException) -> str:
    """A short reason for a failed call, for one line of output."""
    text = str(exc)
    if "timeout" in text.lower() or "timed out" in text.lower():
        return "timed out"
    if "API request to" in text or "Connection" in text:
        return "no answer"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:160]}"


@dataclass
class Result:
    """What one upload did."""

    run_id: str | None = None
    uploaded_ops: int = 0
    ended: bool = False
    rejected: list[str] = field(default_factory=list)


def _rejected(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code in REJECTED_CODES


def _parent_run_id(spool: Spool, uri: str, parent: str) -> str | None:
    """The MLflow id of a parent given as a local id (its spool, or the uploaded index).

    Raises:
        Unreachable: the parent is spooled but not uploaded yet; the child waits for it, so
            that it is not uploaded without its place under the parent.
    """
    sibling = spool.path.parent / parent
    if sibling.is_dir():
        got: str | None = Spool.open(sibling).state(uri).get("run_id")
        if got is None:
            raise Unreachable(f"its parent run {parent} is not uploaded yet")
        return got
    return uploaded_run_id(spool.path.parent, parent)


class _Batch:
    """Metrics, params and tags gathered from consecutive operations, sent as one call."""

    def __init__(self) -> None:
        self.metrics: list[Any] = []
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}

    def full(self) -> bool:
        return (
            len(self.metrics) >= MAX_METRICS
            or len(self.params) >= MAX_PARAMS
            or len(self.tags) >= MAX_TAGS
        )

    def add(self, op: dict[str, Any]) -> bool:
        """Take ``op`` if it batches and fits; False otherwise (send first, then retry)."""
        from mlflow.entities import Metric

        kind = op["op"]
        if kind == "metrics":
            if len(self.metrics) + len(op["values"]) > MAX_METRICS and self.metrics:
                return False
            for key, value in op["values"].items():
                v = float(value) if value is not None else math.nan
                self.metrics.append(Metric(key, v, int(op["t"]), int(op["step"])))
            return True
        if kind in {"params", "tags"}:
            target = self.params if kind == "params" else self.tags
            limit = MAX_PARAMS if kind == "params" else MAX_TAGS
            if len(target) + len(op["values"]) > limit and target:
                return False
            target.update({k: str(v) for k, v in op["values"].items()})
            return True
        return False

    def empty(self) -> bool:
        return not (self.metrics or self.params or self.tags)

    def send(self, c: MlflowClient, run_id: str) -> list[str]:
        """Send the batch; returns what the store refused (sent again item by item)."""
        from mlflow.entities import Param, RunTag

        params = [Param(k, v) for k, v in self.params.items()]
        tags = [RunTag(k, v) for k, v in self.tags.items()]
        try:
            c.log_batch(run_id, metrics=self.metrics, params=params, tags=tags)
            return []
        except Exception as e:
            if not _rejected(e):
                raise
        # One refused item (a param logged again with another value, say) must not cost the
        # rest of the batch.
        refused: list[str] = []
        parts: list[dict[str, Any]] = [
            {"metrics": self.metrics},
            *({"params": [p]} for p in params),
            *({"tags": [t]} for t in tags),
        ]
        for part in parts:
            try:
                c.log_batch(run_id, **part)
            except Exception as e:
                if not _rejected(e):
                    raise
                refused.append(str(e).splitlines()[0])
        return refused


def _ensure_run(c: MlflowClient, spool: Spool, uri: str, op: dict[str, Any]) -> dict[str, Any]:
    """Find (by local id) or create the run that ``start`` describes; returns the new state."""
    exp_id = store.experiment_id(
        c,
        op["experiment"],
        create=True,
        location=store.artifact_location(uri, Path(op["runs_dir"]), op["experiment"]),
    )
    found = c.search_runs(
        [exp_id],
        filter_string=f"tags.`{TAG_LOCAL_ID}` = '{spool.local_id}'",
        max_results=1,
    )
    if found:
        return {"run_id": found[0].info.run_id, "experiment_id": exp_id}
    tags = {**op["tags"], TAG_LOCAL_ID: spool.local_id}
    parent = op.get("parent")
    if parent:
        parent_id = _parent_run_id(spool, uri, parent) if parent.startswith("local-") else parent
        if parent_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_id
        else:
            tags[TAG_PARENT_LOCAL_ID] = parent
    run = c.create_run(exp_id, start_time=int(op["t"]), tags=tags, run_name=op.get("name"))
    return {"run_id": run.info.run_id, "experiment_id": exp_id}


def _log_model(c: MlflowClient, state: dict[str, Any], src: Path, name: str) -> None:
    """Register ``src`` as the run's logged model named ``name`` (once)."""
    run_id, exp_id = state["run_id"], state["experiment_id"]
    existing = c.search_logged_models(
        [exp_id], filter_string=f"source_run_id = '{run_id}' AND name = '{name}'"
    )
    if existing:
        return
    from mlflow.entities import LoggedModelStatus

    model = c.create_logged_model(exp_id, name=name, source_run_id=run_id)
    c.log_model_artifacts(model.model_id, str(src))
    c.finalize_logged_model(model.model_id, LoggedModelStatus.READY)


def _apply(c: MlflowClient, spool: Spool, state: dict[str, Any], op: dict[str, Any]) -> bool:
    """Send one unbatched operation; True when it ends the run."""
    kind, run_id = op["op"], state["run_id"]
    if kind == "artifact":
        src = spool.path / op["src"]
        if src.is_dir():
            c.log_artifacts(run_id, str(src), op.get("path"))
        else:
            c.log_artifact(run_id, str(src), op.get("path"))
    elif kind == "model":
        _log_model(c, state, spool.path / op["src"], op["name"])
    elif kind == "end":
        c.set_terminated(run_id, status=op["status"], end_time=int(op["t"]))
        return True
    return False


def upload(spool: Spool, c: MlflowClient, uri: str) -> Result:
    """Upload what ``spool`` holds beyond its recorded offset to the store behind ``c``.

    Raises:
        Unreachable: the store stopped answering; the state records how far it got.
    """
    state = spool.state(uri)
    result = Result(run_id=state.get("run_id"))
    offset = int(state.get("offset", 0))
    batch, batch_end = _Batch(), offset

    def flush_batch() -> None:
        nonlocal batch
        if batch.empty():
            return
        refused = batch.send(c, state["run_id"])
        if refused:
            result.rejected.extend(refused)
            state.setdefault("rejected", []).extend(refused)
        state["offset"] = batch_end
        spool.save_state(uri, state)
        batch = _Batch()

    try:
        for end, op in spool.ops_from(offset):
            if op["op"] == "start":
                if "run_id" not in state:
                    state.update(_ensure_run(c, spool, uri, op))
                    result.run_id = state["run_id"]
                state["offset"] = end
                spool.save_state(uri, state)
                continue
            if "run_id" not in state:
                break  # no start yet: nothing can be sent
            if batch.add(op):
                batch_end = end
                result.uploaded_ops += 1
                if batch.full():
                    flush_batch()
                continue
            flush_batch()
            if batch.add(op):  # a batching op that did not fit the previous batch
                batch_end = end
                result.uploaded_ops += 1
                continue
            try:
                result.ended = _apply(c, spool, state, op) or result.ended
            except Exception as e:
                if not _rejected(e):
                    raise
                result.rejected.append(f"{op['op']}: {e}")
                state.setdefault("rejected", []).append(result.rejected[-1])
            result.uploaded_ops += 1
            state["offset"] = end
            spool.save_state(uri, state)
        flush_batch()
    except Unreachable:
        raise
    except Exception as e:
        raise Unreachable(describe(e)) from e
    return result


def fully_uploaded(spool: Spool, uri: str) -> bool:
    """True when every whole operation in the spool is uploaded and the run has ended."""
    state = spool.state(uri)
    offset = int(state.get("offset", 0))
    ended = False
    for _, op in spool.ops_from(0):
        ended = ended or op["op"] == "end"
    return ended and not any(True for _ in spool.ops_from(offset))

"""`--model RUN_ID | PATH | models:/NAME@ALIAS`: find the exported policy folder a tuner or
evaluator loads."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from autotune.errors import UserError
from autotune.tracking import store
from autotune.tracking.schema import MODELS_CACHE_DIR, POLICY_ARTIFACT, SPOOL_DIR, TAG_KIND
from autotune.tracking.spool import LOCAL_PREFIX, Spool, uploaded_run_id

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_RUNS_URI = re.compile(r"^runs:/([0-9a-f]{32})/?(.*)$")


def _from_spool(runs_dir: Path, local_id: str) -> Path | None:
    """The policy folder of a run still in the spool (trained while the store was down)."""
    path = runs_dir / SPOOL_DIR / local_id
    if not path.is_dir():
        return None
    spool = Spool.open(path)
    for _, op in spool.ops_from(0):
        if op["op"] == "artifact" and op.get("path") == POLICY_ARTIFACT:
            return path / op["src"]
    raise UserError(f"run {local_id} has no {POLICY_ARTIFACT}/ artifact (not a training run?)")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a ``--model`` lives on this node, and the tags a run deploying it carries.

    Attributes:
        path: the policy folder.
        tags: for a registry URI, the registered name, version, alias and training run.
    """

    path: Path
    tags: dict[str, str] = field(default_factory=dict)


def resolve_model_info(
    given: str, tracking_uri: str, runs_dir: Path = Path("runs")
) -> ResolvedModel:
    """As :func:`resolve_model`, with the registry version's tags for ``models:/`` URIs."""
    from autotune.tracking import registry

    if registry.is_models_uri(given):
        folder, version = registry.resolve(given, tracking_uri, runs_dir)
        return ResolvedModel(folder, version.tags())
    return ResolvedModel(resolve_model(given, tracking_uri, runs_dir))


def resolve_model(run_id_or_path: str, tracking_uri: str, runs_dir: Path = Path("runs")) -> Path:
    """The local folder of an exported policy named by a path, a run id, ``runs:/ID/policy``
    or a registry URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``).

    A registry URI is looked up in the MLflow Model Registry at ``tracking_uri`` each time (an
    alias may have moved), then downloaded as the run id of the version it names. A run id is
    looked up at ``tracking_uri``; its ``policy/`` artifact is downloaded once into
    ``<runs_dir>/models/<run id>/``. A local id (``local-…``) of a run not yet uploaded is read
    from the spool.

    Raises:
        UserError: no such path or run, a run without a policy, or a store that does not answer.
    """
    given = run_id_or_path.strip()
    if given.startswith("models:/"):
        return resolve_model_info(given, tracking_uri, runs_dir).path
    path = Path(given).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model {given} is a file; give the exported policy folder")
        return path
    if given.startswith(LOCAL_PREFIX):
        found = _from_spool(runs_dir, given)
        if found is not None:
            return found
        uploaded = uploaded_run_id(runs_dir / SPOOL_DIR, given)
        if uploaded is None:
            raise UserError(f"no run {given} in {runs_dir / SPOOL_DIR} (and no such path)")
        given = uploaded
    sub = POLICY_ARTIFACT
    m = _RUNS_URI.match(given)
    if m:
        given, sub = m.group(1), m.group(2) or POLICY_ARTIFACT
    if not _RUN_ID.match(given):
        raise UserError(f"model {run_id_or_path!r} is neither a path nor an MLflow run id")

    cache = runs_dir / MODELS_CACHE_DIR / given / sub
    if cache.is_dir():
        return cache
    return _download(given, sub, tracking_uri, cache)


def _download(run_id: str, sub: str, tracking_uri: str, cache: Path) -> Path:
    from mlflow.exceptions import MlflowException

    c = store.client(tracking_uri, must_exist=True)
    try:
        run = c.get_run(run_id)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise UserError(f"no run {run_id} at {tracking_uri}") from e
        raise UserError(f"cannot read run {run_id} at {tracking_uri}: {e.message}") from e
    try:
        listed = [f.path for f in c.list_artifacts(run_id)]
    except (MlflowException, OSError) as e:
        raise UserError(f"cannot list the artifacts of run {run_id}: {e}") from e
    if sub not in listed:
        kind = run.data.tags.get(TAG_KIND, "?")
        raise UserError(f"run {run_id} (kind {kind}) has no {sub}/ artifact")
    tmp = cache.parent / f".{cache.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        got = Path(c.download_artifacts(run_id, sub, str(tmp)))
        # Rename into place so a half-finished download is never taken for a policy.
        got.rename(cache)
    except (MlflowException, OSError) as e:
        raise UserError(f"cannot download {sub}/ of run {run_id}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache

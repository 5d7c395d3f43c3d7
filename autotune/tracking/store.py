"""Reaching a tracking store: clients with bounded timeouts, experiments, a quick health probe.

MLflow retries an unanswered HTTP call seven times with exponential backoff (minutes in all).
A tuner or a report must not wait that long, so before any client is made the retry and timeout
environment variables get bounded defaults (a person's own settings win); the spool, not MLflow,
is what retries a run's logging.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from autotune.errors import UserError
from autotune.tracking.schema import ARTIFACTS_DIR

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# Why these: a loopback or LAN server answers in milliseconds, but a busy one (a 2-core node
# at load 20, seen here while training) took over 5 s for a 1,000-metric batch; 15 s covers
# that and still keeps a dead server from holding a report or a run's end for minutes.
HTTP_TIMEOUT_S = 15
HTTP_MAX_RETRIES = 0
PROBE_TIMEOUT_S = 3.0

_BOUNDED = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(HTTP_MAX_RETRIES),
    "MLFLOW_HTTP_REQUEST_TIMEOUT": str(HTTP_TIMEOUT_S),
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    # MLflow 3 reports usage to its makers from a background thread, set up when mlflow is
    # first imported; training nodes are often offline, and nobody here asked for it.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # Our commands draw their own progress; MLflow's bars and INFO lines would interleave.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # MLflow prints run links on stdout as runs end, from our upload thread: that would land in
    # the middle of `compare --format json` or a tuner's live view.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def bound_http_calls() -> None:
    """Give MLflow's HTTP retry and timeout settings bounded defaults (unless set already).

    Call before mlflow is first imported: its telemetry setting is read then.
    """
    for key, value in _BOUNDED.items():
        os.environ.setdefault(key, value)


bound_http_calls()


def is_remote(uri: str) -> bool:
    """True for a tracking server reached over HTTP(S)."""
    return urlparse(uri).scheme in {"http", "https"}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


def normalize(uri: str) -> str:
    """``uri`` with a relative SQLite path made absolute, so it means the same from any cwd."""
    db = sqlite_path(uri)
    if db is None or db.is_absolute():
        return uri
    return "sqlite:///" + str(db.resolve())


def client(uri: str, *, must_exist: bool = False) -> MlflowClient:
    """An MLflow client for ``uri`` with bounded HTTP calls.

    Args:
        uri: the tracking URI.
        must_exist: for reading: a SQLite store must already exist (MLflow would create an
            empty one) and a server must answer its health check.

    Raises:
        UserError: the store does not exist or does not answer (with ``must_exist``).
    """
    bound_http_calls()
    db = sqlite_path(uri)
    if db is not None:
        if must_exist and not db.is_file():
            raise UserError(f"no tracking store at {db} (nothing logged there yet?)")
        db.parent.mkdir(parents=True, exist_ok=True)
    if must_exist and is_remote(uri):
        probe(uri)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def unhealthy(uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the server at ``uri`` fails its health check within ``timeout`` s; None if it passes."""
    import requests

    try:
        r = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as e:
        return f"does not answer ({type(e).__name__})"
    if r.status_code != 200:
        return f"answered HTTP {r.status_code} to a health check"
    return None


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`UserError` unless the server at ``uri`` answers its health check in time."""
    why = unhealthy(uri, timeout)
    if why is not None:
        raise UserError(f"tracking server {uri} {why}")


def artifact_location(uri: str, runs_dir: Path, experiment: str) -> str | None:
    """Where a new experiment keeps artifacts: ``runs/artifacts/<name>`` for a local store.

    A server decides for itself (its ``--artifacts-destination``), so this is None there.
    """
    if is_remote(uri):
        return None
    return (runs_dir / ARTIFACTS_DIR / experiment).resolve().as_uri()


def experiment_id(c: MlflowClient, name: str, *, create: bool, location: str | None) -> str:
    """The id of experiment ``name``, created when ``create`` (raises UserError otherwise)."""
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage != "active":
            raise UserError(f"experiment {name!r} is deleted; restore it or choose another name")
        return str(exp.experiment_id)
    if not create:
        raise UserError(f"no experiment {name!r} at {c.tracking_uri}")
    from mlflow.exceptions import MlflowException

    try:
        return str(c.create_experiment(name, artifact_location=location))
    except MlflowException:
        # Another process created it between our look-up and create.
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)

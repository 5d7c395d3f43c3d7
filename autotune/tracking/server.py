"""A real ``mlflow server``: the command line for it, starting it, and waiting until it answers.

Defaults keep it on loopback with a SQLite store and a local artifact root under
``runs/server/`` (apart from the embedded ``runs/mlflow.db``: experiments made there record
local artifact paths that other nodes could not write to). The server proxies artifacts
(``--serve-artifacts``), so nodes need no shared filesystem. For a shared deployment give
``--backend-store-uri postgresql://user:pass@host:5432/db`` (needs psycopg2) and
``--artifacts-destination s3://bucket/prefix`` (needs boto3; for an S3-compatible store such
as MinIO set ``MLFLOW_S3_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from autotune.errors import UserError
from autotune.tracking.store import bound_http_calls

SERVER_DIR = "server"  # under runs_dir
# First start migrates a new database: ~10 s on this 2-core VM when quiet; at load 15 (six
# engineers' tests) a server on a ready-made store had not answered after 60 s.
START_TIMEOUT_S = 180.0


def default_backend(runs_dir: Path) -> str:
    """``sqlite:///<runs_dir>/server/mlflow.db`` (absolute, so the server's cwd does not matter)."""
    return "sqlite:///" + str((runs_dir / SERVER_DIR / "mlflow.db").resolve())


def default_artifacts(runs_dir: Path) -> str:
    """``<runs_dir>/server/artifacts`` (absolute)."""
    return str((runs_dir / SERVER_DIR / "artifacts").resolve())


def command(
    host: str, port: int, backend_store_uri: str, artifacts_destination: str, workers: int = 1
) -> list[str]:
    """The ``mlflow server`` command line (run with this Python, so the venv's mlflow)."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--backend-store-uri",
        backend_store_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts_destination,
        "--workers",
        str(workers),
    ]


def server_env() -> dict[str, str]:
    """The environment for the server process: no telemetry, our bounded client settings."""
    bound_http_calls()
    return dict(os.environ)


def start(
    host: str,
    port: int,
    backend_store_uri: str,
    artifacts_destination: str,
    *,
    workers: int = 1,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``mlflow server`` in its own process group; returns the process (not yet ready).

    Its output goes to ``log``, or else to our stderr: stdout stays for what we print.
    """
    db = backend_store_uri.removeprefix("sqlite:///")
    if backend_store_uri.startswith("sqlite:///"):
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in artifacts_destination:
        Path(artifacts_destination).mkdir(parents=True, exist_ok=True)
    out = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            command(host, port, backend_store_uri, artifacts_destination, workers),
            env=server_env(),
            stdout=out if out is not None else sys.stderr.fileno(),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stop() can end its workers too
        )
    finally:
        if out is not None:
            out.close()


def wait_ready(proc: subprocess.Popen[bytes], uri: str, timeout: float = START_TIMEOUT_S) -> None:
    """Wait until ``uri`` answers its health check.

    Raises:
        UserError: the server exited, or did not answer within ``timeout`` seconds.
    """
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"mlflow server exited with status {proc.returncode} before answering")
        try:
            if requests.get(uri + "/health", timeout=1.0).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise UserError(f"mlflow server at {uri} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop the server and its workers (SIGTERM to its group, then SIGKILL)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    # Workers that outlived their parent are still in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)

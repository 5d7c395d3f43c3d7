"""`autotune server`: a shared MLflow tracking server for several nodes."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from types import FrameType

import click

from autotune import config
from autotune.errors import UserError


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise UserError(
                f"cannot listen on {host}:{port} ({e.strerror}); choose another --port"
            ) from e


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--backend-store-uri",
    help="Where runs are stored. Default sqlite:///runs/server/mlflow.db; for a shared "
    "store postgresql://USER:PASS@HOST:5432/DB (needs psycopg2).",
)
@click.option(
    "--artifacts-destination",
    help="Where artifacts are stored. Default runs/server/artifacts; for S3 or an "
    "S3-compatible store s3://BUCKET/PREFIX (needs boto3; set MLFLOW_S3_ENDPOINT_URL, "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
def server(  # noqa: PLR0917 (click passes one argument per option)
    host: str,
    port: int,
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    workers: int,
    config_file: str | None,
) -> int:
    """Run an MLflow tracking server until Ctrl-C; nodes log to it with --tracking-uri.

    It proxies artifacts, so nodes need no shared filesystem. Listening beyond loopback
    (--host 0.0.0.0) lets other nodes in; MLflow then accepts only private-network hosts.
    """
    from autotune.tracking import server as mlflow_server

    settings = config.load({}, config_file)
    runs_dir: Path = settings.runs_dir
    backend = backend_store_uri or mlflow_server.default_backend(runs_dir)
    artifacts = artifacts_destination or mlflow_server.default_artifacts(runs_dir)
    _check_port(host, port)
    shown = f"[{host}]" if ":" in host else host
    uri = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else shown}:{port}"
    signal.signal(signal.SIGTERM, _on_sigterm)
    proc = mlflow_server.start(host, port, backend, artifacts, workers=workers)
    try:
        mlflow_server.wait_ready(proc, uri)
        click.echo(f"MLflow tracking server at {uri}")
        click.echo(f"  store {backend}, artifacts {artifacts}")
        click.echo(f"  log to it: autotune tune --tracking-uri {uri} ...  (or MLFLOW_TRACKING_URI)")
        click.echo("  Ctrl-C stops it")
        rc = proc.wait()
        if rc != 0:
            raise UserError(f"mlflow server exited with status {rc}")
    except KeyboardInterrupt:
        click.echo("stopping the tracking server")
    finally:
        mlflow_server.stop(proc)
    return 0

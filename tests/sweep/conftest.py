"""Fixtures for sweeps: a real two-node Ray cluster and a real `autotune server`, both stopped
at the end (finalizers), whatever the test did. See ray_kit for how."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from proc_kit import stop_gently
from ray_kit import AUTOTUNE, Server, TwoNodeCluster, end_processes, free_port, processes_naming


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodeCluster]:
    """A started two-node Ray cluster for a module's tests; stopped afterwards."""
    # Short paths: Ray's Unix sockets live under the temporary folder (108 bytes at most).
    root = Path(tempfile.mkdtemp(prefix="atclu-", dir="/tmp"))
    cluster = TwoNodeCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        left = cluster.leftovers()
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes left after the test: {[p.pid for p in left]}"


@pytest.fixture(scope="module")
def autotune_server(
    tmp_path_factory: pytest.TempPathFactory, empty_store: Path
) -> Iterator[Server]:
    """`autotune server` in its own folder; SIGTERM at the end, its workers checked gone."""
    cwd = tmp_path_factory.mktemp("server")
    # Its default store, made already: a new one migrates for longer than the server's start
    # timeout on a loaded 2-core node.
    (cwd / "runs" / "server").mkdir(parents=True)
    shutil.copyfile(empty_store, cwd / "runs" / "server" / "mlflow.db")
    port = free_port()
    proc = subprocess.Popen(
        [*AUTOTUNE, "server", "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first == f"MLflow tracking server at http://127.0.0.1:{port}", first
        yield Server(proc, port, f"http://127.0.0.1:{port}")
    finally:
        stop_gently(proc)
        left = processes_naming([f"--port {port}"])
        end_processes(left)
        assert not left, "the mlflow server outlived `autotune server`"

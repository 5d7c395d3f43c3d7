"""Fixtures for tracking tests: a throwaway runs folder and real `mlflow server` processes."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from autotune.tracking import server


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MlflowServer:
    """A real `mlflow server` on a loopback port, with its own store; stop and start at will."""

    def __init__(self, root: Path, template: Path) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        shutil.copyfile(template, root / "server.db")  # spares the server a migration
        self.backend = "sqlite:///" + str(root / "server.db")
        self.artifacts = str(root / "server-artifacts")
        self.log = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = server.start("127.0.0.1", self.port, self.backend, self.artifacts, log=self.log)
        try:
            # Generous: these tests judge what the server keeps, not how fast it starts, and a
            # busy 2-core machine has taken over 60 s to start one.
            server.wait_ready(self.proc, self.uri, timeout=300)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            server.stop(self.proc)
            self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def leftovers(self) -> list[int]:
        """PIDs of processes still serving this port (the server's workers included)."""
        flag = f"--port {self.port}"
        found = []
        for p in psutil.process_iter(["pid", "cmdline", "status"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if flag in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p.info["pid"])
        return found


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """An empty runs folder."""
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture
def sqlite_uri(runs: Path, empty_store: Path) -> str:
    """A fresh, empty SQLite store in this test's runs folder."""
    db = runs / "mlflow.db"
    shutil.copyfile(empty_store, db)
    return "sqlite:///" + str(db)


@pytest.fixture
def dead_uri() -> str:
    """A loopback tracking URI where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def mlflow_server(tmp_path: Path, empty_store: Path) -> Iterator[MlflowServer]:
    """A started server for one test; always stopped afterwards, its processes gone."""
    srv = MlflowServer(tmp_path, empty_store)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.leftovers(), "mlflow server processes left after the test"
        assert not srv.leftovers(), "mlflow server processes left after the test"


@pytest.fixture
def stopped_server(tmp_path: Path, empty_store: Path) -> Iterator[MlflowServer]:
    """A server not yet started (the test starts it); always stopped afterwards."""
    srv = MlflowServer(tmp_path, empty_store)
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.leftovers(), "mlflow server processes left after the test"

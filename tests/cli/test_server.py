"""`autotune server`: a real MLflow server that prints its URI, answers, and stops cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import requests

Run = Callable[..., subprocess.CompletedProcess[str]]
AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serving(port: int) -> list[int]:
    flag = f"--port {port}"
    return [
        p.pid
        for p in psutil.process_iter(["cmdline", "status"])
        if flag in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


@pytest.mark.slow
def test_server_prints_uri_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*AUTOTUNE, "server", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == f"MLflow tracking server at http://127.0.0.1:{port}"
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        assert (tmp_path / "runs" / "server" / "mlflow.db").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not _serving(port), "the mlflow server outlived `autotune server`"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _serving(port):
            psutil.Process(pid).kill()


def test_port_in_use_is_one_line_exit_2(run_cli: Run, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("server", "--port", str(port), cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0]

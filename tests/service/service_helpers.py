"""Helpers of the service tests: jobs started in a slice, the service as a real process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proc_kit import stop_gently

from autotune.system import cgroups

HERE = Path(__file__).resolve().parent
BURN = HERE.parent / "daemon" / "burn.py"
AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]


def cpu_root() -> Path:
    return cgroups.mounts().v1["cpu"]


def remove_tree(group: Path) -> None:
    """Move every process left in ``group`` (and below) to the root, then remove the tree."""
    if not group.is_dir():
        return
    for folder, _dirs, _files in sorted(os.walk(group), key=lambda w: -len(w[0])):
        for pid in (Path(folder) / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (cpu_root() / "cgroup.procs").write_text(pid)
        for _ in range(50):
            try:
                Path(folder).rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


class Jobs:
    """Jobs started inside a slice (a shell moves itself in, then becomes the job)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, group: Path, seconds: float, threads: int = 1) -> subprocess.Popen[bytes]:
        script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
        argv = ["/bin/sh", "-c", script, "job", str(group), sys.executable, str(BURN)]
        proc = subprocess.Popen([*argv, str(seconds), str(threads)])
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


class Service:
    """`autotune tune --follow` as a real process; killed in the fixture's finalizer if still
    running, then `autotune restore` run on its journal so nothing stays changed."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, policy: Path, group: Path, *extra: str) -> subprocess.Popen[bytes]:
        """Start a service; its stderr goes to a file (:meth:`stderr`), never a pipe it could
        fill and block on."""
        cmd = [*AUTOTUNE, "tune", "--follow", "--no-view", "--model", str(policy)]
        with self._err(len(self.procs)).open("wb") as err:
            proc = subprocess.Popen(
                [*cmd, "--cgroup", str(group), "--interval", "200", *extra],
                env=self.env,
                stderr=err,
            )
        self.procs.append(proc)
        return proc

    def _err(self, n: int) -> Path:
        return self.logs / f"service-{n}.err"

    def stderr(self, proc: subprocess.Popen[bytes]) -> str:
        return self._err(self.procs.index(proc)).read_text()

    def state(self) -> dict[str, Any] | None:
        files = list(Path(self.env["AUTOTUNE_STATE_DIR"]).glob("service-*.json"))
        if not files:
            return None
        try:
            return json.loads(files[0].read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def job(self, pid: int) -> dict[str, Any] | None:
        s = self.state()
        return next((j for j in (s or {}).get("jobs", []) if j["pid"] == pid), None)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AUTOTUNE, *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def close(self) -> None:
        for p in self.procs:
            stop_gently(p)
        if Path(self.env["AUTOTUNE_JOURNAL"]).exists():
            self.run("restore")


def wait_for(pred: Callable[[], object], timeout: float = 90.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return bool(pred())


def cpu_cgroup(pid: int) -> str | None:
    return cgroups.cgroup_of(pid, "cpu")


def journal_sessions(env: dict[str, str]) -> dict[str, Any]:
    path = Path(env["AUTOTUNE_JOURNAL"])
    if not path.exists():
        return {}
    sessions: dict[str, Any] = json.loads(path.read_text()).get("sessions", {})
    return sessions

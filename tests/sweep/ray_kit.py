"""Helpers for sweep tests: a real two-node Ray cluster and a real `autotune server`.

The cluster is `ray start --head` and `ray start --address`, each with its own temporary folder
and one of the node's CPUs, token authentication with a token of its own passed in the
environment (Ray's default is a file in ``~/.ray`` that would outlive the test). Teardown does
not use `ray stop`: that stops every Ray process on the machine, other people's too; it ends
the processes whose command line names one of our folders or the head's port, and their
descendants.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).parent / "ray")
AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]
START_TIMEOUT_S = 240  # `ray start` on a loaded 2-core node took up to a minute
START_ATTEMPTS = 3


def sweep_file(folder: Path, space: str, *, timesteps: int = 256, eval_freq: int = 128) -> Path:
    """``folder/sweep.toml``: one trial per point of ``space`` (the ``[space]`` table's lines,
    without the workload), tiny networks, on the first bundled workload."""
    from autotune.envs.workload import list_bundled

    workload = (list_bundled() or ["cnn"])[0]
    path = folder / "sweep.toml"
    path.write_text(
        f"trials = 1\ntimesteps = {timesteps}\neval_freq = {eval_freq}\ntiny = true\n"
        f'[space]\n{space.strip()}\nworkloads = ["{workload}"]\n'
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def processes_naming(marks: list[str]) -> list[psutil.Process]:
    """Live processes whose command line contains one of ``marks``."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(p.info["cmdline"] or [])
            if p.info["status"] != psutil.STATUS_ZOMBIE and any(m in cmd for m in marks):
                found.append(p)
    return found


def end_processes(procs: list[psutil.Process]) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=10)


@dataclass
class TwoNodeCluster:
    """Two Ray nodes on this machine: a head and a worker, one CPU each."""

    root: Path
    port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dirs(self) -> list[Path]:
        return [self.root / "head", self.root / "worker"]

    def start(self) -> None:
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_gcs_server_port_wait_time_s": "120",  # as agents/sweep/cluster.py: a busy node
        }
        common = ["--num-cpus", "1", "--object-store-memory", str(80 * 1024 * 1024)]
        common += ["--disable-usage-stats"]
        head = [RAY, "start", "--head", "--port", str(self.port), "--temp-dir", str(self.dirs[0])]
        head += ["--include-dashboard", "false", "--ray-client-server-port", str(self.client_port)]
        head += ["--dashboard-agent-listen-port", str(free_port())]
        worker = [RAY, "start", "--address", self.address, "--temp-dir", str(self.dirs[1])]
        worker += ["--dashboard-agent-listen-port", str(free_port())]
        for cmd, folder in ((head + common, self.dirs[0]), (worker + common, self.dirs[1])):
            for attempt in range(1, START_ATTEMPTS + 1):
                r = subprocess.run(
                    cmd, env=self.env, capture_output=True, text=True, timeout=START_TIMEOUT_S
                )
                if r.returncode == 0:
                    break
                # Ray gives a raylet 30 s to register; on a loaded shared node it may not.
                end_processes(processes_naming([str(folder)]))
                if attempt == START_ATTEMPTS:
                    raise RuntimeError(f"{' '.join(cmd[:3])} failed: {r.stderr[-2000:]}")

    def leftovers(self) -> list[psutil.Process]:
        """Every process of this cluster: those naming its folders or its GCS address (the
        head's client server), and what they started (each raylet's dashboard and runtime-env
        agents, whose command lines are rewritten to `ray::DashboardAgent` and name neither;
        they outlived a raylet killed without them)."""
        ours = processes_naming([*(str(d) for d in self.dirs), f":{self.port} "])
        seen = {p.pid for p in ours}
        for p in list(ours):
            with contextlib.suppress(psutil.Error):
                ours += [k for k in p.children(recursive=True) if k.pid not in seen]
                seen.update(k.pid for k in ours)
        return ours

    def client_server_logs(self, lines: int = 15) -> str:
        """The last lines of the head's Ray Client server logs (the proxy's and one per
        driver session): why a `ray://` driver was refused, for a failing test's message."""
        out = []
        for log in sorted(self.dirs[0].glob("session_latest/logs/ray_client_server*.err")):
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"\n--- {log.name}\n" + "\n".join(tail))
        return "".join(out)

    def stop(self) -> None:
        end_processes(self.leftovers())


@dataclass
class Server:
    """A running `autotune server` (the real command) on a loopback port."""

    proc: subprocess.Popen[str]
    port: int
    uri: str

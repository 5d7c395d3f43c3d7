"""`autotune ARGS...` (or `python -m MODULE ARGS...`) as a real process, forked from a warm
interpreter (a zygote).

A fresh ``python -m autotune.cli.main`` spends 1 to 5 s importing torch, MLflow, pydantic and
the rest before it does anything; a test suite that runs the CLI a hundred times spends minutes
on it. The zygote is a separate Python process that imports those third-party libraries once and
then, for each call, forks a child that runs ``autotune.cli.main`` (or another module of the
repository: ``bench.grid``, ``workloads.tinylm``) as ``python -m`` does (``runpy``, ``__main__``),
with the caller's argv, environment, working directory and stdio, and exits as the interpreter
would (non-daemon threads joined, atexit handlers run). The child is a
real process with its own exit status and stderr; no autotune module is imported before the fork,
so module state, settings and environment variables are read fresh in each child.

What a cold start checks (the entry point imports, the interpreter's own startup) is still
checked by tests/cli/test_main.py, which runs the CLI cold (``run_cli_cold``).

``tests/`` is on ``sys.path`` (its conftest.py), so tests import this as ``warm_cli``; the
conftest's ``run_cli`` fixture uses it. Run as a script, this file is the zygote.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import locale
import os
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

# What the CLI's commands import that takes long; all third-party, never autotune itself.
PRELOAD = (
    "click",
    "pydantic",
    "pydantic_settings",
    "numpy",
    "scipy.stats",
    "scipy.optimize",
    "rich.console",
    "rich.table",
    "pyarrow",
    "pyarrow.parquet",
    "duckdb",
    "pandas",
    "sqlalchemy",
    "mlflow",
    "mlflow.tracking",
    "mlflow.artifacts",
    "torch",
    "gymnasium",
    "stable_baselines3",
    "bcc",
)
CLI_MODULE = "autotune.cli.main"
COMMAND = [sys.executable, "-m", CLI_MODULE]
# The type of the conftest's ``run_module`` fixture (``run_module(MODULE, *ARGS, cwd=...)``).
RunModule = Callable[..., subprocess.CompletedProcess[str]]


def _exit_code(e: SystemExit) -> int:
    """The status the interpreter gives for an uncaught SystemExit."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become `python -m autotune.cli.main ARGS`; never returns."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        module = request["module"]
        sys.argv = [module, *request["args"]]
        sys.path[0] = os.getcwd()  # `python -m` puts the working directory first
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = _exit_code(e)
        except KeyboardInterrupt:
            traceback.print_exc()
            code = 130
        except BaseException:
            traceback.print_exc()
            code = 1
        threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter does at exit
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve(path: str, owner: int) -> None:
    """The zygote's loop: one connection per call, one forked child per connection.

    It detaches first (a double fork), so that it and the CLI processes it forks are no
    descendants of the test process (tests check that they leave none), and it ends by itself
    once ``owner`` (the test process) is gone, whatever way that ended. Calls may overlap (the
    workers of `make check` share one zygote): each child is forked from this main thread and
    waited for by a thread of its own.
    """
    if os.fork() > 0:
        os._exit(0)
    print(os.getpid(), flush=True)
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".new")
    os.rename(path + ".new", path)  # a worker waiting for the path finds it listening
    listener.listen(16)
    listener.settimeout(1.0)
    print("ready", flush=True)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if not _alive(owner):
                return
            continue
        conn.settimeout(None)
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            conn.close()
            listener.close()
            _child(request, fds)
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        threading.Thread(target=_reply_at_exit, args=(conn, pid), daemon=True).start()


def _reply_at_exit(conn: socket.socket, pid: int) -> None:
    with conn:
        _, status = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):  # the caller gave up (its timeout)
            conn.sendall(json.dumps({"rc": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _exited(pid: int) -> bool:
    """Gone, or a zombie: init reaps an orphan only about once a second on this machine."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def _text(data: bytes) -> str:
    """Decoded as subprocess does with ``text=True``."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


class WarmCli:
    """A running zygote; :meth:`run` behaves as ``subprocess.run([*COMMAND, *args], ...)``,
    :meth:`run_module` as ``subprocess.run([sys.executable, "-m", module, *args], ...)``."""

    def __init__(self, workdir: Path) -> None:
        """Start the zygote; it imports in the background until the first :meth:`run`."""
        self.workdir = workdir
        self.socket = str(workdir / "zygote.sock")
        launcher = subprocess.Popen(
            [sys.executable, __file__, self.socket, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        launcher.wait(timeout=60)  # it forks the zygote and exits at once
        assert launcher.stdout is not None
        self.stdout: IO[str] | None = launcher.stdout
        self.pid: int | None = int(self.stdout.readline())
        self.ready = False

    @classmethod
    def attach(cls, socket_path: str) -> WarmCli:
        """Use a zygote another process started and owns (pytest-xdist's controller, whose
        workers share it); :meth:`close` leaves it alone."""
        cli = cls.__new__(cls)
        cli.socket = socket_path
        cli.workdir = Path(socket_path).parent
        cli.stdout = None
        cli.pid = None
        cli.ready = False
        return cli

    def _wait_ready(self) -> None:
        if self.stdout is None:  # attached: the path appears once the zygote listens
            deadline = time.monotonic() + 300
            while not os.path.exists(self.socket):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the warm CLI zygote at {self.socket} did not start")
                time.sleep(0.05)
        elif self.stdout.readline().strip() != "ready":
            raise RuntimeError("the warm CLI zygote did not start")
        self.ready = True

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        return self.run_module(CLI_MODULE, *args, env=env, cwd=cwd, timeout=timeout)

    def run_module(
        self,
        module: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        if not self.ready:
            self._wait_ready()
        command = [sys.executable, "-m", module, *args]
        request = {
            "module": module,
            "args": list(args),
            "env": dict(os.environ if env is None else env),
            "cwd": os.fspath(cwd) if cwd is not None else os.getcwd(),
        }
        with (
            tempfile.TemporaryFile(dir=self.workdir) as out,
            tempfile.TemporaryFile(dir=self.workdir) as err,
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn,
        ):
            conn.connect(self.socket)
            conn.settimeout(timeout)
            socket.send_fds(conn, [json.dumps(request).encode()], [0, out.fileno(), err.fileno()])
            replies = conn.makefile("r")
            pid = json.loads(replies.readline())["pid"]
            try:
                rc = json.loads(replies.readline())["rc"]
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(command, timeout) from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(command, rc, _text(out.read()), _text(err.read()))

    def close(self) -> None:
        """Kill the zygote (not our child: init reaps it) and wait until it is gone; nothing for
        an attached one."""
        if self.pid is None or self.stdout is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not _exited(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stdout.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))

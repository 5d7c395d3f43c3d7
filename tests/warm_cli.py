"""`autotune ARGS...` as a real process, forked from a warm interpreter (a zygote).

A fresh ``python -m autotune.cli.main`` spends 1 to 5 s importing torch, MLflow, pydantic and
the rest before it does anything; a test suite that runs the CLI a hundred times spends minutes
on it. The zygote is a separate Python process that imports those third-party libraries once and
then, for each call, forks a child that runs ``autotune.cli.main`` as ``python -m`` does
(``runpy``, ``__main__``), with the caller's argv, environment, working directory and stdio, and
exits as the interpreter would (non-daemon threads joined, atexit handlers run). The child is a
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
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# What the CLI's commands import that takes long; all third-party, never autotune itself.
PRELOAD = (
    "click",
    "pydantic",
    "pydantic_settings",
    "numpy",
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
        sys.argv = [CLI_MODULE, *request["args"]]
        sys.path[0] = os.getcwd()  # `python -m` puts the working directory first
        try:
            runpy.run_module(CLI_MODULE, run_name="__main__", alter_sys=True)
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


def serve(path: str) -> None:
    """The zygote's loop: one connection per call, one forked child per connection."""
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
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
            _, status = os.waitpid(pid, 0)
            conn.sendall(json.dumps({"rc": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


def _text(data: bytes) -> str:
    """Decoded as subprocess does with ``text=True``."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


class WarmCli:
    """A running zygote; :meth:`run` behaves as ``subprocess.run([*COMMAND, *args], ...)``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.socket = str(workdir / "zygote.sock")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, self.socket],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the warm CLI zygote did not start")

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        request = {
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
                raise subprocess.TimeoutExpired([*COMMAND, *args], timeout) from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(
                [*COMMAND, *args], rc, _text(out.read()), _text(err.read())
            )

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    serve(sys.argv[1])

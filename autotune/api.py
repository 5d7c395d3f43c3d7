"""The Python API for training scripts that prefer it to the command line.

::

    import autotune

    with autotune.tuning(model="runs:/<run id>/policy"):     # or a policy folder
        for batch in autotune.count_batches(loader):
            ...

or report by hand with ``autotune.report(samples=len(batch))``. :func:`tuning` starts
``autotune tune --pid <this process>`` beside the script (it must run as root to change
knobs; ``dry_run=True`` works for anyone) and stops it, which restores every knob, when the
block ends. It waits until the tuner is watching, then sets the progress channel in this process's
environment, so DataLoader workers forked inside the block report too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autotune.client import ENV_SOCKET, count_batches, report
from autotune.errors import UserError

START_TIMEOUT_S = 60.0  # bcc compiles the telemetry programs at start: seconds, not minutes
STOP_TIMEOUT_S = 30.0

__all__ = ["count_batches", "report", "tuning"]


@contextmanager
def tuning(
    model: str,
    *,
    interval_ms: int | None = None,
    dry_run: bool = False,
    tracking_uri: str | None = None,
    extra_args: list[str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Tune this process (and the workers it forks) for the length of the block.

    Args:
        model: an MLflow run id or an exported policy folder.
        interval_ms: the control interval (default: settings).
        dry_run: log decisions, change nothing.
        tracking_uri: where the session is tracked (default: settings).
        extra_args: more `autotune tune` flags.

    Yields:
        The tuner process.

    Raises:
        UserError: the tuner could not start (its message says why).
    """
    folder = Path(tempfile.mkdtemp(prefix="autotune-api-"))
    sock = folder / "progress.sock"
    cmd = [sys.executable, "-m", "autotune.cli.main", "tune", "--model", model]
    cmd += ["--pid", str(os.getpid()), "--progress-socket", str(sock), "--no-view"]
    if interval_ms is not None:
        cmd += ["--interval", str(interval_ms)]
    if dry_run:
        cmd.append("--dry-run")
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    cmd += extra_args or []
    # The tuner's decision lines go to this process's stderr as they happen (never a pipe that
    # could fill and stall it).
    tuner = subprocess.Popen(cmd)
    old = os.environ.get(ENV_SOCKET)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        ready = sock.with_name(sock.name + ".ready")
        while not ready.exists():
            if tuner.poll() is not None:
                err = (tuner.stderr.read() if tuner.stderr else b"").decode(errors="replace")
                lines = err.strip().splitlines()
                raise UserError(
                    f"the tuner did not start: {lines[-1] if lines else tuner.returncode}"
                )
            if time.monotonic() > deadline:
                raise UserError("the tuner did not start within a minute")
            time.sleep(0.05)
        os.environ[ENV_SOCKET] = str(sock)
        yield tuner
    finally:
        if old is None:
            os.environ.pop(ENV_SOCKET, None)
        else:
            os.environ[ENV_SOCKET] = old
        if tuner.poll() is None:
            tuner.send_signal(signal.SIGTERM)
            try:
                tuner.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                tuner.kill()
                tuner.wait()
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()

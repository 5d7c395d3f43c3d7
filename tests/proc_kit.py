"""Ending a process a test started the way a person would: SIGTERM, so that it restores and
cleans up after itself, and a kill only when it has not ended within the timeout. ``tests/`` is
on ``sys.path`` (its conftest.py), so any test folder imports this as ``proc_kit``."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_gently(proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """SIGTERM ``proc`` if it still runs and wait for it (reading any pipes it has, so that a
    full one cannot hold it); SIGKILL only past ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

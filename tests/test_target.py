"""Targets and their roles, on real process trees."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from autotune.errors import UserError
from autotune.target import Target

TREE = textwrap.dedent(
    """
    import os, sys, threading, time
    kids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            time.sleep(30); os._exit(0)
        kids.append(pid)
    t = threading.Thread(target=time.sleep, args=(30,), daemon=True); t.start()
    print("ready", flush=True)
    time.sleep(30)
    """
)


def test_roles_of_a_real_tree() -> None:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        target = Target.from_pid(proc.pid)
        m = target.members()
        assert m.trainer_pids == (proc.pid,)
        assert len(m.trainer_tids) >= 2  # main thread and the sleeper
        assert len(m.loader_pids) == 2
        assert set(m.loader_tids) == set(m.loader_pids)
        assert target.alive()
    finally:
        proc.kill()
        proc.wait()
    assert not target.alive()


def test_launch_and_exit_status() -> None:
    t = Target.launch([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert t.wait(timeout=30) == 3
    time.sleep(0.01)
    assert not t.alive()


@pytest.mark.parametrize("pid", [0, -1, 2**22 + 7])
def test_unknown_pid(pid: int) -> None:
    with pytest.raises(UserError, match=f"no process with PID {pid}"):
        Target.from_pid(pid)


def test_bad_cgroup(tmp_path: object) -> None:
    with pytest.raises(UserError, match="not a cgroup directory"):
        Target.from_cgroup("/tmp")


def test_missing_command() -> None:
    with pytest.raises(UserError, match="command not found: no-such-binary-xyz"):
        Target.launch(["no-such-binary-xyz"])


def test_paused_launch_runs_nothing_until_resumed(tmp_path: object) -> None:
    from pathlib import Path

    marker = Path(str(tmp_path)) / "ran"
    t = Target.launch([sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"], paused=True)
    pid = t.pid
    time.sleep(0.3)
    assert not marker.exists()  # stopped before the command ran
    t.resume()
    assert t.wait(timeout=30) == 0
    assert marker.exists()
    assert t.pid == pid


def test_not_executable(tmp_path: object) -> None:
    from pathlib import Path

    f = Path(str(tmp_path)) / "script"
    f.write_text("#!/bin/sh\n")
    with pytest.raises(UserError, match="not executable"):
        Target.launch([str(f)])

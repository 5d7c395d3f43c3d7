"""The CLI's contract with people: help works, mistakes are one line and exit status 2."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_help_lists_commands(run_cli_cold: Run) -> None:
    r = run_cli_cold("--help")
    assert r.returncode == 0
    assert "doctor" in r.stdout


def test_unknown_command_is_one_line_exit_2(run_cli_cold: Run) -> None:
    r = run_cli_cold("nope")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["autotune: No such command 'nope'."]


def test_unknown_flag_is_one_line_exit_2(run_cli_cold: Run) -> None:
    r = run_cli_cold("doctor", "--bad")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--bad" in lines[0]
    assert "Traceback" not in r.stderr


def test_bad_setting_from_env_is_one_line_exit_2(run_cli_cold: Run) -> None:
    import os

    env = {**os.environ, "AUTOTUNE_INTERVAL_MS": "7"}
    r = run_cli_cold("doctor", env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "interval_ms=7" in lines[0]

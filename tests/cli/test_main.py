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


# A compile `autotune tune` stopped waiting for (job.session._ABANDONED) is stood in for by a
# thread that waits forever; atexit's line shows whether the interpreter's exit ran (which, under
# a real compile, runs the compiler's destructors beneath it: a segfault, 1 run in 20).
_ABANDONED_COMPILE = """
import atexit, sys, threading
from autotune.cli.main import main
from autotune.job import session
t = threading.Thread(target=threading.Event().wait, daemon=True)
t.start()
session._ABANDONED.append(t)
atexit.register(lambda: print("interpreter exit ran", flush=True))
{end}
"""
# The command line raises ``e`` (Ctrl-C, a defect) where a command would run.
_RAISE = "import click; click.Group.main = lambda *a, **k: (_ for _ in ()).throw({e}); main([])"


def test_an_exit_beside_an_abandoned_compile_skips_the_interpreters_exit() -> None:
    import sys

    for end, code, line in [
        ("main(['tune', '--bad'])", 2, "autotune: No such option '--bad'"),
        ("main(['tune', '--model', 'p'])", 2, "autotune: give exactly one target"),
        (_RAISE.format(e="KeyboardInterrupt"), 130, "autotune: interrupted"),
        (_RAISE.format(e="RuntimeError('a defect')"), 1, "RuntimeError: a defect"),
    ]:
        script = _ABANDONED_COMPILE.format(end=end)
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert r.returncode == code, r.stderr
        assert line in r.stderr
        assert "interpreter exit ran" not in r.stdout
    # Without an abandoned compile, the same mistake exits the ordinary way.
    script = _ABANDONED_COMPILE.format(
        end="session._ABANDONED.clear(); main(['tune', '--model', 'p'])"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 2
    assert "interpreter exit ran" in r.stdout

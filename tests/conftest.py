"""Shared fixtures: privilege and BPF gates that say why a test is skipped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from warm_cli import RunModule, WarmCli

REPO = Path(__file__).resolve().parents[1]
AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]


@cache
def bpf_unavailable_reason() -> str | None:
    """Why BPF cannot be used here, or None when it can (loads the doctor's probe once)."""
    if os.geteuid() != 0:
        return "BPF needs root"
    from autotune.telemetry.loader import BpfUnavailable, load

    try:
        load("probe").cleanup()
    except BpfUnavailable as e:
        return str(e)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root"))
        if "bpf" in item.keywords:
            reason = bpf_unavailable_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"BPF unavailable: {reason}"))


WARM_CLI = pytest.StashKey[WarmCli]()


WARM_CLI_SOCKET = "autotune_warm_cli_socket"
SB3_LOGDIR = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # A shell starts a background command (`make check &`) with SIGINT ignored, and every
    # process started from it inherits that: the tests that stop a job or a service with Ctrl-C
    # would then see it ignored and the process killed at the end of its grace. A handler (unlike
    # SIG_IGN) is reset to the default when a child executes, so children get Ctrl-C as a
    # terminal's foreground job does.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Started before collection, so that the zygote's imports run on one core while collection
    # (which imports much the same) runs on the other. Under pytest-xdist the controller starts
    # it and its workers share it.
    # A test that calls SB3's learn() on a model of its own gets SB3's default logger, which makes
    # an empty /tmp/SB3-<date> folder each time: one folder for the session instead, removed at
    # its end (xdist's workers inherit the variable and leave the folder to the controller).
    if "SB3_LOGDIR" not in os.environ:
        logdir = tempfile.mkdtemp(prefix="autotune-sb3-")
        os.environ["SB3_LOGDIR"] = config.stash[SB3_LOGDIR] = logdir
    if hasattr(config, "workerinput"):
        config.stash[WARM_CLI] = WarmCli.attach(config.workerinput[WARM_CLI_SOCKET])
    else:
        config.stash[WARM_CLI] = WarmCli(Path(tempfile.mkdtemp(prefix="autotune-warm-cli-")))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: a worker is about to start
def pytest_configure_node(node: Any) -> None:
    node.workerinput[WARM_CLI_SOCKET] = node.config.stash[WARM_CLI].socket


def pytest_unconfigure(config: pytest.Config) -> None:
    logdir = config.stash.get(SB3_LOGDIR, None)
    if logdir is not None:
        shutil.rmtree(logdir, ignore_errors=True)
        os.environ.pop("SB3_LOGDIR", None)
    cli = config.stash.get(WARM_CLI, None)
    if cli is not None and cli.pid is not None:  # the zygote this process started
        cli.close()
        shutil.rmtree(cli.workdir, ignore_errors=True)


@pytest.fixture
def short_tmpdir() -> Iterator[str]:
    """A TMPDIR for the test's tuners and services: a short folder in /tmp (a Unix socket's path
    must stay under 108 bytes, which tmp_path would not), removed afterwards with whatever a
    process killed with SIGKILL left in it (its work and progress-socket folders)."""
    tmp = tempfile.mkdtemp(prefix="autotune-test-", dir="/tmp")
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def warm_cli(pytestconfig: pytest.Config) -> WarmCli:
    """One zygote per session (tests/warm_cli.py): each CLI call is a process forked from it."""
    return pytestconfig.stash[WARM_CLI]


@pytest.fixture
def run_cli(warm_cli: WarmCli) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `autotune ARGS...` as a real process (forked warm, see tests/warm_cli.py); returns the
    completed process. Takes ``env``, ``cwd`` and ``timeout`` as ``subprocess.run`` does."""
    return warm_cli.run


@pytest.fixture
def run_module(warm_cli: WarmCli) -> RunModule:
    """Run `python -m MODULE ARGS...` (a bench or workload of the repository) as a real process
    forked warm from the session's zygote; called as ``run_module(MODULE, *ARGS, cwd=..., env=...,
    timeout=...)``, returns the completed process. For runs that check a bad input's one line:
    a job that trains for real is better started cold, as a person starts it."""
    return warm_cli.run_module


@pytest.fixture
def run_cli_cold() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `autotune ARGS...` as a fresh `python -m autotune.cli.main`; the completed process."""

    def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AUTOTUNE, *args],
            capture_output=True,
            text=True,
            timeout=300,
            **kw,  # type: ignore[call-overload]
        )

    return run


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables made once (a new one migrates for seconds); under
    pytest-xdist (`make check`) once for all workers, in their shared temp folder."""
    from filelock import FileLock

    from autotune.tracking import store

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # each worker's basetemp is a folder of the session's
    db = shared / "empty-mlflow-store.db"
    with FileLock(str(db) + ".lock"):
        if not db.exists():
            made = db.with_suffix(".new")
            store.client("sqlite:///" + str(made)).search_experiments()
            made.rename(db)
    return db

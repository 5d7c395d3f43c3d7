"""Shared fixtures: privilege and BPF gates that say why a test is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from warm_cli import WarmCli

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


def pytest_configure(config: pytest.Config) -> None:
    # Started before collection, so that the zygote's imports run on one core while collection
    # (which imports much the same) runs on the other.
    config.stash[WARM_CLI] = WarmCli(Path(tempfile.mkdtemp(prefix="autotune-warm-cli-")))


def pytest_unconfigure(config: pytest.Config) -> None:
    cli = config.stash.get(WARM_CLI, None)
    if cli is not None:
        cli.close()
        shutil.rmtree(cli.workdir, ignore_errors=True)


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
    """An MLflow SQLite store with its tables made once (a new one migrates for seconds)."""
    from autotune.tracking import store

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    store.client("sqlite:///" + str(db)).search_experiments()
    return db

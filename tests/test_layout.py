"""The installed layout: envs/ and agents/ live in the autotune namespace, nowhere else."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_namespaced_packages_import() -> None:
    for name, folder in (("autotune.envs", "envs"), ("autotune.agents", "agents")):
        mod = importlib.import_module(name)
        assert Path(mod.__file__ or "").parent == REPO / folder


@pytest.mark.parametrize("name", ["envs", "agents"])
def test_no_top_level_envs_or_agents(name: str) -> None:
    # Run outside the repository, so the current directory does not put envs/ on the path.
    code = f"import importlib.util,sys; sys.exit(importlib.util.find_spec({name!r}) is not None)"
    r = subprocess.run([sys.executable, "-c", code], cwd="/", check=False)
    assert r.returncode == 0, f"a top-level package {name!r} is installed"


def test_bpf_sources_are_package_data() -> None:
    from autotune.bpf import source_path

    assert source_path("probe").is_file()

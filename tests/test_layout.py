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


def test_every_package_is_listed_in_pyproject() -> None:
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = {folder: pkg for pkg, folder in cfg["package-dir"].items()}
    found = set()
    for folder, pkg in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    assert found == listed, f"pyproject [tool.setuptools] packages differ: {found ^ listed}"

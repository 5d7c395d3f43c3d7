"""The installed layout (envs/ and agents/ live in the autotune namespace, nowhere else), and
the direction of dependencies inside it."""

from __future__ import annotations

import ast
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


# --- dependencies point down ---------------------------------------------------------------

# Packages above the core: the Gym envs and the agents. Only the CLI, the top, may import them.
UPPER = ("autotune.envs", "autotune.agents")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports, absolute: ``import``, ``from … import`` (relative ones
    resolved against ``module``, and each imported name as a possible submodule) and
    ``importlib.import_module("…")`` with a literal name."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _upper(names: set[str]) -> set[str]:
    return {n for n in names if any(n == u or n.startswith(u + ".") for u in UPPER)}


def test_the_import_checker_sees_every_form() -> None:
    src = (
        "import autotune.envs.live\n"
        "from autotune.agents import train\n"
        "from autotune import envs\n"
        "from ..envs import spaces\n"
        "import importlib\nimportlib.import_module('autotune.agents.export')\n"
        "from autotune.knobs import KNOBS\n"
    )
    found = _upper(imported_modules(src, "autotune.daemon.loop"))
    assert found == {
        "autotune.envs.live",
        "autotune.agents",
        "autotune.agents.train",
        "autotune.envs",
        "autotune.envs.spaces",
        "autotune.agents.export",
    }


def test_core_does_not_import_envs_or_agents() -> None:
    """Nothing under autotune/ but the CLI imports the Gym envs or the agents."""
    bad = {}
    for path in sorted((REPO / "autotune").rglob("*.py")):
        if (REPO / "autotune" / "cli") in path.parents:
            continue
        names = imported_modules(path.read_text(), _module_name(path), path.name == "__init__.py")
        if up := _upper(names):
            bad[str(path.relative_to(REPO))] = sorted(up)
    assert not bad, f"autotune/ (outside cli/) imports envs/agents: {bad}"


def test_test_modules_have_unique_basenames() -> None:
    # pytest imports test modules by basename (rootdir mode): two alike stop the whole run at
    # collection, which merging two branches did once.
    names = [p.name for p in (REPO / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []

"""The actuators and the sched_ext package import each other without a cycle, even a hidden one.

Every ``import`` is read with ``ast``, wherever it stands (module level, inside a function, under
``TYPE_CHECKING``), so a cycle dodged by importing inside a function still counts. The graph
followed is every ``autotune`` module reachable from ``autotune/actuators`` and ``autotune/scx``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import autotune

ROOT = Path(autotune.__file__).resolve().parent
START = ("actuators", "scx")


def _module_file(name: str) -> Path | None:
    """The source file of an ``autotune`` module (a package's ``__init__.py``), if it is ours."""
    parts = name.split(".")
    if parts[0] != "autotune":
        return None
    base = ROOT.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _name_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(("autotune", *parts))


def imports_of(path: Path) -> set[str]:
    """The ``autotune`` modules a file imports, anywhere in it (``from pkg import mod`` = mod)."""
    out: set[str] = set()
    package = _name_of(path) if path.name == "__init__.py" else _name_of(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if _module_file(a.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if _module_file(sub) and sub != base:
                    out.add(sub)
                elif _module_file(base):
                    out.add(base)
    return out


def graph() -> dict[str, set[str]]:
    """Module → the ``autotune`` modules it imports, for everything reachable from START."""
    todo = [_name_of(p) for d in START for p in sorted((ROOT / d).rglob("*.py"))]
    edges: dict[str, set[str]] = {}
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in edges or path is None:
            continue
        edges[name] = imports_of(path) - {name}
        todo.extend(edges[name])
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_actuators_and_scx_import_graph_is_acyclic() -> None:
    edges = graph()
    assert "autotune.actuators.registry" in edges and "autotune.scx.maps" in edges
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_scx_never_reaches_the_actuators() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("autotune.scx"):
            assert not {t for t in targets if t.startswith("autotune.actuators")}, name


@pytest.mark.parametrize(
    ("source", "cycle"),
    [
        # A cycle dodged by a function-local import is still one.
        ({"a": "import autotune.b\n", "b": "def f():\n    from autotune import a\n"}, True),
        ({"a": "import autotune.b\n", "b": "x = 1\n"}, False),
    ],
)
def test_the_checker_sees_cycles_inside_functions(
    source: dict[str, str], cycle: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "autotune"
    pkg.mkdir()
    for name, text in source.items():
        (pkg / f"{name}.py").write_text(text)
    monkeypatch.setitem(globals(), "ROOT", pkg)
    edges = {f"autotune.{n}": imports_of(pkg / f"{n}.py") for n in source}
    assert (find_cycle(edges) is not None) == cycle

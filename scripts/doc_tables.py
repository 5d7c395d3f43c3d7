"""The tables in the docs that restate code or data, generated so that they cannot drift.

Each table sits in a Markdown file between two markers::

    <!-- generated: knobs (scripts/doc_tables.py) -->
    | knob | ... |
    <!-- end generated: knobs -->

``knobs`` comes from the knob table (``autotune/knobs``), ``settings`` from the settings model
(``autotune/config.py``), ``recordings`` from the bundled traces (``envs/workloads/*.parquet``).

    .venv/bin/python scripts/doc_tables.py           # rewrite every block from the code
    .venv/bin/python scripts/doc_tables.py --check   # change nothing; exit 1 if one is stale

``tests/test_docs.py`` holds the committed files to this output.
"""

from __future__ import annotations

import argparse
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import annotated_types as at
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from autotune.config import Settings
from autotune.knobs import KNOBS
from autotune.trace.meta import extract

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "envs" / "workloads"
BLOCK = re.compile(
    r"(?P<begin><!-- generated: (?P<name>[a-z_]+) [^\n]*-->\n)(?P<body>.*?)"
    r"(?P<end><!-- end generated: (?P=name) -->)",
    re.S,
)


def docs_files() -> list[Path]:
    """The Markdown files that may hold generated blocks."""
    return [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "workloads" / "README.md",
    ]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = [_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows)]
    return "\n".join(lines) + "\n"


def _num(v: float) -> str:
    return f"{v:g}"


# --- knobs ----------------------------------------------------------------------------------


def knobs() -> str:
    """The knob table: names, ladders, defaults."""
    rows = [
        [
            f"`{k.name}`",
            k.help,
            ", ".join(_num(v) for v in k.ladder),
            k.unit,
            _num(k.default) if k.default is not None else k.default_source,
        ]
        for k in KNOBS
    ]
    return _table(["knob", "what it turns", "ladder", "unit", "default"], rows)


# --- settings -------------------------------------------------------------------------------


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        # The factory's docstring says what it returns, which depends on the node.
        return (info.default_factory.__doc__ or "computed").strip().splitlines()[0].rstrip(".")
    if info.default is PydanticUndefined:
        return "required"
    return f"`{_num(info.default) if isinstance(info.default, float) else info.default}`"


def _allowed(info: FieldInfo) -> str:
    if typing.get_origin(info.annotation) is typing.Literal:
        return ", ".join(str(c) for c in typing.get_args(info.annotation))
    lo = hi = ""
    parts = []
    for m in info.metadata:
        if isinstance(m, at.Ge):
            lo = f"[{_num(float(m.ge))}"  # type: ignore[arg-type]
        elif isinstance(m, at.Gt):
            lo = f"({_num(float(m.gt))}"  # type: ignore[arg-type]
        elif isinstance(m, at.Le):
            hi = f"{_num(float(m.le))}]"  # type: ignore[arg-type]
        elif isinstance(m, at.Lt):
            hi = f"{_num(float(m.lt))})"  # type: ignore[arg-type]
        elif isinstance(m, at.MinLen):
            parts.append("not empty" if m.min_length == 1 else f"{m.min_length} characters or more")
        elif getattr(m, "pattern", None):
            parts.append(f"matches `{m.pattern}`")
    if lo and hi:
        parts.insert(0, f"{lo}, {hi}")
    elif lo:
        parts.insert(0, ("≥ " if lo[0] == "[" else "> ") + lo[1:])
    elif hi:
        parts.insert(0, ("≤ " if hi[-1] == "]" else "< ") + hi[:-1])
    if info.annotation is Path:
        parts.append("a path")
    return "; ".join(parts) or "any"


def settings() -> str:
    """The settings table: names, defaults, allowed values, from the pydantic model."""
    rows = [
        [f"`{name}`", _default(info), _allowed(info), info.description or ""]
        for name, info in Settings.model_fields.items()
    ]
    return _table(["setting", "default", "allowed", "what it is"], rows)


# --- recordings -----------------------------------------------------------------------------


def bundled() -> list[Path]:
    """The bundled recordings, whatever they are."""
    return sorted(BUNDLED.glob("*.parquet"))


def _visited(table: pa.Table, column: str) -> str:
    values = sorted({v for v in table[column].to_pylist() if v is not None})
    if not values:
        return "none"
    if len(values) == 1:
        return _num(values[0])
    return f"{_num(values[0])} to {_num(values[-1])} ({len(values)} values)"


def _recording(path: Path) -> list[str]:
    table = pq.read_table(path)
    meta = extract(table.schema) or {}
    seconds = meta.get("end_wall", 0.0) - meta.get("start_wall", 0.0)
    samples = pc.sum(table["progress_samples"]).as_py() or 0
    hold = meta.get("explore_hold_s")
    return [
        f"`{path.name.removesuffix('.parquet')}`",
        str(table.num_rows),
        f"{seconds:.0f}",
        f"{samples:.0f}",
        f"{path.stat().st_size / 1e6:.2f} MB",
        f"{_num(hold)} s" if meta.get("explore") and hold is not None else "no",
        _visited(table, "knob_readahead"),
        _visited(table, "knob_prefetch_loader"),
        str(meta.get("start_time", ""))[:10],
    ]


def recordings() -> str:
    """One row per bundled recording (``envs/workloads/*.parquet``), read from the file."""
    head = [
        "workload",
        "rows",
        "seconds",
        "samples",
        "size",
        "explore hold",
        "read-ahead visited (KiB)",
        "prefetch depths visited",
        "recorded",
    ]
    return _table(head, [_recording(p) for p in bundled()])


RENDER: dict[str, Callable[[], str]] = {
    "knobs": knobs,
    "settings": settings,
    "recordings": recordings,
}


def update(text: str, render: dict[str, str] | None = None) -> str:
    """``text`` with every generated block rewritten."""
    done = render if render is not None else {}

    def one(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in RENDER:
            raise KeyError(f"unknown generated block {name!r}; known: {', '.join(RENDER)}")
        if name not in done:
            done[name] = RENDER[name]()
        return m["begin"] + done[name] + m["end"]

    return BLOCK.sub(one, text)


def blocks(text: str) -> list[str]:
    """Names of the generated blocks in ``text``."""
    return [m["name"] for m in BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = ap.parse_args(argv)
    cache: dict[str, str] = {}
    stale = []
    for path in docs_files():
        if not path.is_file():
            continue
        text = path.read_text()
        new = update(text, cache)
        if new == text:
            continue
        stale.append(path.relative_to(REPO))
        if not args.check:
            tmp = path.with_suffix(".md.tmp")
            tmp.write_text(new)
            tmp.replace(path)
    for p in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {p}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

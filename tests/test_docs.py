"""The docs hold to the code: generated tables are current, links stay inside the repository,
and the README stays short."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

from autotune.config import Settings

REPO = Path(__file__).resolve().parents[1]
README_MAX_BYTES = 10 * 1024


def _doc_tables() -> ModuleType:
    # A script, not a package module: load it from its file.
    spec = importlib.util.spec_from_file_location("doc_tables", REPO / "scripts" / "doc_tables.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


doc_tables = _doc_tables()
DOCS = [p for p in doc_tables.docs_files() if p.is_file()]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_generated_tables_are_current(path: Path) -> None:
    text = path.read_text()
    assert doc_tables.update(text) == text, (
        f"{path.relative_to(REPO)} is out of date: run .venv/bin/python scripts/doc_tables.py"
    )


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("knobs", "README.md"),
        ("settings", "docs/settings.md"),
        ("recordings", "workloads/README.md"),
    ],
)
def test_each_table_is_published(name: str, where: str) -> None:
    assert name in doc_tables.blocks((REPO / where).read_text())


def test_recordings_table_lists_every_bundled_file() -> None:
    table = doc_tables.recordings()
    bundled = doc_tables.bundled()
    assert bundled, "no bundled recording found"
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    names = [row.split("`")[1] for row in rows]
    assert names == [p.name.removesuffix(".parquet") for p in bundled]
    for row, path in zip(rows, bundled, strict=True):
        import pyarrow.parquet as pq

        assert row.split(" | ")[1] == str(pq.read_metadata(path).num_rows)


def test_an_unknown_block_is_refused() -> None:
    text = "<!-- generated: nope (x) -->\n<!-- end generated: nope -->\n"
    with pytest.raises(KeyError, match="nope"):
        doc_tables.update(text)


def test_a_stale_block_is_rewritten() -> None:
    text = "a\n<!-- generated: knobs (x) -->\n| old |\n<!-- end generated: knobs -->\nb\n"
    new = doc_tables.update(text)
    assert "| old |" not in new and "`weight.trainer`" in new
    assert new.startswith("a\n") and new.endswith("-->\nb\n")
    assert doc_tables.update(new) == new


def test_settings_descriptions_state_the_model_bounds() -> None:
    """A description that names a range (``(0 to 600)``: error messages quote it) names the
    model's own bounds."""
    for name, info in Settings.model_fields.items():
        m = re.search(r"\(([-\d.e+]+) to ([-\d.e+]+)\)", info.description or "")
        if m is None:
            continue
        lo, hi = _bound(info.metadata, "ge", "gt"), _bound(info.metadata, "le", "lt")
        assert (float(m[1]), float(m[2])) == (lo, hi), f"{name}: {info.description!r}"


def _bound(metadata: list[object], *names: str) -> float | None:
    for c in metadata:
        for n in names:
            if (v := getattr(c, n, None)) is not None:
                return float(v)
    return None


# --- links -----------------------------------------------------------------------------------

LINKED = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _links(text: str) -> list[str]:
    out = []
    for tok in MarkdownIt("commonmark").parse(text):
        for child in [tok, *(tok.children or [])]:
            for attr in ("href", "src"):
                value = child.attrGet(attr)
                if isinstance(value, str):
                    out.append(value)
    return out


def test_the_link_finder_sees_links_not_code() -> None:
    text = "[a](docs/x.md) ![i](img.png)\n\n    [not](code.md)\n\n`[no](span.md)` <http://x.org>\n"
    assert _links(text) == ["docs/x.md", "img.png", "http://x.org"]


@pytest.mark.parametrize("path", LINKED, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve_inside_the_repository(path: Path) -> None:
    bad = []
    for link in _links(path.read_text()):
        parts = urlsplit(link)
        if parts.scheme or parts.netloc or link.startswith("/"):
            bad.append(f"{link} (outside the repository)")
            continue
        if not parts.path:
            continue  # an anchor in the same file
        target = (path.parent / unquote(parts.path)).resolve()
        if not target.is_relative_to(REPO):
            bad.append(f"{link} (outside the repository)")
        elif not target.exists():
            bad.append(f"{link} (no such file)")
    assert not bad, f"{path.relative_to(REPO)}: {bad}"


def test_readme_is_short() -> None:
    size = len((REPO / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/"


def test_workloads_readme_describes_every_catalogued_workload() -> None:
    """Its first table (workload, job, what it stresses, the knob that should matter) has one row
    per workload of workloads/catalog.py, and every bundled recording is of one of them."""
    from workloads.catalog import WORKLOADS

    text = (REPO / "workloads" / "README.md").read_text()
    head = text.index("| workload | job |")
    rows = []
    for line in text[head:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(line.split("`")[1])
    assert sorted(rows) == sorted(WORKLOADS), "workloads/README.md's first table vs the catalog"
    bundled = {p.name.removesuffix(".parquet") for p in doc_tables.bundled()}
    assert bundled <= set(WORKLOADS), f"bundled but not catalogued: {bundled - set(WORKLOADS)}"

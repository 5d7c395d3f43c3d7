"""The HTML report in a real headless Chromium: it loads from disk with no console errors and
no requests beyond the file itself, and its three plots are drawn. A screenshot is kept."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from autotune.knobs import KNOBS

if TYPE_CHECKING:
    from tests.compare.conftest import Made, PageCheck

Run = Callable[..., subprocess.CompletedProcess[str]]
Chromium = Callable[[Path, str, Path], "PageCheck"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "runs" / "test-artifacts"

# Each plot as laid out: its charts' sizes on screen and how many shapes they draw.
PROBE = """JSON.stringify({
  title: document.querySelector('h1').textContent,
  plots: Array.from(document.querySelectorAll('figure')).map(f => {
    const boxes = Array.from(f.querySelectorAll('svg')).map(s => s.getBoundingClientRect());
    return {id: f.id, charts: boxes.length,
            width: Math.min(...boxes.map(b => b.width)),
            height: Math.min(...boxes.map(b => b.height)),
            shapes: f.querySelectorAll('svg path, svg rect, svg line').length};
  }),
  session_links: Array.from(document.querySelectorAll('#sessions a'))
    .map(a => document.querySelector(a.getAttribute('href')) !== null),
})"""


@pytest.mark.slow
def test_report_in_chromium(run_cli: Run, made: Made, chromium: Chromium, tmp_path: Path) -> None:
    report = tmp_path / "compare.html"
    r = run_cli(
        "compare",
        "--tracking-uri",
        made.uri,
        "--format",
        "html",
        "-o",
        str(report),
        cwd=made.runs_dir.parent,
    )
    assert r.returncode == 0, r.stderr
    seen = chromium(report, PROBE, tmp_path / "compare-report.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(seen.screenshot, ARTIFACTS / "compare-report.png")

    assert seen.errors == []
    assert seen.requests == [report.resolve().as_uri()], "self-contained: nothing else fetched"
    assert seen.facts["title"].startswith("autotune compare")
    plots = {p["id"]: p for p in seen.facts["plots"]}
    assert set(plots) == {"plot-progress", "plot-knobs", "plot-learning"}
    for p in plots.values():
        assert p["width"] > 200 and p["height"] > 150, p
        assert p["shapes"] > 20, p
    # One chart per knob the sessions logged; reward and evaluation curves.
    assert plots["plot-knobs"]["charts"] == len(KNOBS)
    assert plots["plot-learning"]["charts"] == 2
    assert seen.facts["session_links"] == [True, True], "each session links to its model's run"
    png = seen.screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000


@pytest.mark.slow
def test_the_check_catches_a_broken_page(chromium: Chromium, tmp_path: Path) -> None:
    # The same check on a page with a script error and a remote image must fail: it can.
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><h1>x</h1>"
        "<script>console.error('broken plot'); undefinedCall();</script>"
        '<img src="http://127.0.0.1:9/plot.png"></body></html>'
    )
    seen = chromium(bad, "JSON.stringify({})", tmp_path / "bad.png")
    assert any("broken plot" in e for e in seen.errors), seen.errors
    assert any("undefinedCall" in e for e in seen.errors), seen.errors
    assert "http://127.0.0.1:9/plot.png" in seen.requests

"""`autotune compare` over runs made through the tracking API, in every format."""

from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.knobs import KNOBS

if TYPE_CHECKING:
    from tests.compare.conftest import Made

Run = Callable[..., subprocess.CompletedProcess[str]]


def _compare(run_cli: Run, made: Made, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("compare", "--tracking-uri", made.uri, *args, cwd=made.runs_dir.parent)


def test_json_rows_means_and_links(run_cli: Run, made: Made) -> None:
    r = _compare(run_cli, made, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = {(row["source"], row["group"]): row for row in doc["rows"]}
    for policy in ("default", "heuristic", "static-best", "ppo"):
        values = [v for (p, _), vs in made.values.items() if p == policy for v in vs]
        row = rows[("eval", policy)]
        assert row["n"] == len(values) == 6
        assert abs(row["mean"] - statistics.fmean(values)) < 1e-9
        assert row["ci95_low"] < row["mean"] < row["ci95_high"]
    # The best of each source with more than one row (one tune row: nothing to beat).
    assert [k for k, row in rows.items() if row["best"]] == [("eval", "ppo"), ("train", "ppo")]
    # Training runs contribute their last eval/progress_vs_default.
    assert abs(rows[("train", "ppo")]["mean"] - 1.3) < 1e-9
    assert rows[("tune", f"ppo ({made.train_ids['ppo'][:8]})")]["n"] == 2
    assert doc["runs_without_metric"] == 1  # the eval parent
    sessions = [link for link in doc["links"] if link["kind"] == "tune"]
    assert sorted(link["run_id"] for link in sessions) == sorted(made.session_ids)
    assert all(link["model_run_id"] == made.train_ids["ppo"] for link in sessions)
    assert all(link["model_found"] for link in sessions)


def test_csv_matches_json(run_cli: Run, made: Made) -> None:
    as_csv = _compare(run_cli, made, "--format", "csv", "--group-by", "workload")
    as_json = _compare(run_cli, made, "--format", "json", "--group-by", "workload")
    assert as_csv.returncode == 0 and as_json.returncode == 0, as_csv.stderr + as_json.stderr
    lines = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    rows = json.loads(as_json.stdout)["rows"]
    assert [(x["source"], x["group"], int(x["n"])) for x in lines] == [
        (x["source"], x["group"], x["n"]) for x in rows
    ]
    assert {x["group"] for x in lines if x["source"] == "eval"} == {"cnn", "shards"}
    assert all(abs(float(x["mean"]) - y["mean"]) < 1e-9 for x, y in zip(lines, rows, strict=True))


def test_table_prints_and_writes_the_report(run_cli: Run, made: Made, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = _compare(run_cli, made, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "progress_vs_default by policy" in r.stdout
    assert "★" in r.stdout and "static-best" in r.stdout
    assert f"report: {out}" in r.stdout
    page = out.read_text()
    assert page.count("<svg") == 1 + len(KNOBS) + 2  # bars, a panel per knob, 2 curves
    for ident in ("plot-progress", "plot-knobs", "plot-learning", "summary", "sessions"):
        assert f'id="{ident}"' in page
    # Each session links to the training run of its model, which is on the page.
    assert page.count(f'href="#run-{made.train_ids["ppo"]}"') == 2
    assert f'id="run-{made.train_ids["ppo"]}"' in page
    # Self-contained: nothing to fetch (namespace URIs of SVG are names, not requests).
    for fetching in ('src="http', 'href="http', "url(http", "<script", "<link"):
        assert fetching not in page


def test_named_runs_and_other_metrics(run_cli: Run, made: Made) -> None:
    ids = ",".join(made.session_ids)
    r = _compare(run_cli, made, "--runs", ids, "--metric", "loop_cpu_percent", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [row["n"] for row in doc["rows"]] == [2]
    assert doc["rows"][0]["mean"] == 0.5


def test_runs_by_local_id(run_cli: Run, made: Made) -> None:
    from autotune.tracking import store

    run = store.client(made.uri).get_run(made.session_ids[0])
    local_id = run.data.tags["autotune.local_id"]
    r = _compare(run_cli, made, "--runs", local_id, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"][0]["run_ids"] == [made.session_ids[0]]

"""`autotune query`: SQL over real trace files, as a table, CSV or JSON; mistakes are one line."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autotune.cli.query import COLUMN_EDGE, fit_columns
from autotune.trace import TraceWriter
from autotune.trace import meta as trace_meta
from autotune.trace.synthetic import samples

Run = Callable[..., subprocess.CompletedProcess[str]]
AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]


def _trace(path: Path, n: int, seed: int = 0, close: bool = True) -> Path:
    w = TraceWriter(path, flush_s=0.0)
    w.begin(
        trace_meta.build(target="t", command=["t"], interval_s=0.25, explore=False, source="bpf")
    )
    for s in samples(n, seed=seed):
        w.append(s)
    if close:
        return w.close()
    w.flush()
    return w.partial


def _one_line_exit_2(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("autotune: ")
    for n in needles:
        assert n in lines[0]
    assert "Traceback" not in r.stderr


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs folder with two finished traces (3 and 5 rows) under workloads/."""
    folder = tmp_path / "runs" / "workloads"
    _trace(folder / "a.parquet", 3, seed=1)
    _trace(folder / "b.parquet", 5, seed=2)
    return tmp_path / "runs"


def _env(runs: Path) -> dict[str, str]:
    return {**os.environ, "AUTOTUNE_RUNS_DIR": str(runs)}


def test_default_is_every_trace_under_workloads(run_cli: Run, runs: Path) -> None:
    sql = "SELECT file, count(*) AS n FROM trace GROUP BY file ORDER BY file"
    r = run_cli("query", "--format", "json", sql, env=_env(runs))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    folder = runs / "workloads"
    assert got == [
        {"file": str(folder / "a.parquet"), "n": 3},
        {"file": str(folder / "b.parquet"), "n": 5},
    ]


def test_named_traces_csv_with_lists(run_cli: Run, runs: Path) -> None:
    a = runs / "workloads" / "a.parquet"
    r = run_cli(
        "query", "--format", "csv", "SELECT t, trainer_runq_hist, missing FROM trace", str(a)
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 3
    assert len(json.loads(rows[0]["trainer_runq_hist"])) == 24
    assert json.loads(rows[0]["missing"]) == []


def test_rich_table_output(run_cli: Run, runs: Path) -> None:
    r = run_cli("query", "SELECT count(*) AS rows_total FROM trace", env=_env(runs))
    assert r.returncode == 0, r.stderr
    assert "rows_total" in r.stdout and "8" in r.stdout


def test_a_partial_trace_joins_with_a_warning(run_cli: Run, tmp_path: Path) -> None:
    done = _trace(tmp_path / "done.parquet", 4)
    partial = _trace(tmp_path / "cut.parquet", 2, close=False)
    sql = "SELECT count(*) AS n, count(DISTINCT file) AS files FROM trace"
    r = run_cli("query", "--format", "json", sql, str(done), str(partial))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"n": 6, "files": 2}]
    assert r.stderr.count("autotune: warning:") == 1 and "unfinished" in r.stderr


def test_null_counters_stay_null(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    with TraceWriter(path) as w:
        w.begin(
            trace_meta.build(
                target="t", command=None, interval_s=0.25, explore=False, source="proc"
            )
        )
        for s in samples(3, missing=frozenset({"runq_wait_ns"})):
            w.append(s)
    sql = "SELECT count(trainer_runq_wait_ns) AS w, count(trainer_oncpu_ns) AS c FROM trace"
    r = run_cli("query", "--format", "json", sql, str(path))
    assert json.loads(r.stdout) == [{"w": 0, "c": 3}]


def test_bad_sql_is_one_line(run_cli: Run, runs: Path) -> None:
    _one_line_exit_2(run_cli("query", "SELEC nonsense", env=_env(runs)), "bad SQL")
    _one_line_exit_2(run_cli("query", "SELECT nope FROM trace", env=_env(runs)), "bad SQL", "nope")


def test_corrupted_trace_is_one_line(run_cli: Run, tmp_path: Path) -> None:
    path = _trace(tmp_path / "c.parquet", 10)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    _one_line_exit_2(run_cli("query", "SELECT 1", str(path)), str(path))


def test_foreign_parquet_is_one_line(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1]}), path)
    _one_line_exit_2(run_cli("query", "SELECT 1", str(path)), "not an autotune trace")


def test_no_traces_and_missing_files_are_one_line(run_cli: Run, tmp_path: Path) -> None:
    _one_line_exit_2(run_cli("query", "SELECT 1", str(tmp_path / "nope.parquet")), "no such")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_exit_2(run_cli("query", "SELECT 1", str(empty)), "no traces")
    r = run_cli("query", "SELECT 1", env=_env(tmp_path / "runs"))
    _one_line_exit_2(r, "no traces")


def test_traces_with_different_columns_join_by_name(run_cli: Run, tmp_path: Path) -> None:
    new = _trace(tmp_path / "new.parquet", 3)
    table = pq.read_table(new)
    old = tmp_path / "old.parquet"  # as an older writer without one column would have left it
    pq.write_table(table.drop_columns(["trainer_majflt"]), old)
    sql = "SELECT count(*) AS n, count(trainer_majflt) AS m FROM trace"
    r = run_cli("query", "--format", "json", sql, str(new), str(old))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"n": 6, "m": 3}]


def _in_terminal(columns: int, *args: str) -> tuple[int, str]:
    """Run `autotune ARGS` with stdout on a real pseudo-terminal ``columns`` wide."""
    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [*AUTOTUNE, *args], stdout=sub, stderr=subprocess.PIPE, env=env, text=True
    )
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode())
    return proc.returncode, screen + "\n" + err


def test_a_wide_table_fits_an_80_column_terminal(tmp_path: Path) -> None:
    path = _trace(tmp_path / "w.parquet", 3)
    _, out = _in_terminal(80, "query", "SELECT * FROM trace", str(path))
    table = [line for line in out.splitlines() if line.strip() and "rows" not in line]
    assert table and max(len(line) for line in table) <= 80, out
    # the ends stay, the middle is elided and the footer says how much and how to see it all
    assert "t " in out or "│ t" in out
    assert "…" in out
    footer = next(line for line in out.splitlines() if line.startswith("(3 rows"))
    assert "left out" in footer and "--format csv or json" in footer


def test_fit_columns_keeps_both_ends_and_all_when_they_fit() -> None:
    assert fit_columns([5, 5, 5], 80) == ([0, 1, 2], [])
    left, right = fit_columns([10] * 20, 80)
    assert left[0] == 0 and right[-1] == 19
    assert len(left) - len(right) in (0, 1)
    assert sum(10 + COLUMN_EDGE for _ in left + right) + 1 + 1 + COLUMN_EDGE <= 80
    assert fit_columns([200, 3], 80) == ([0], [])

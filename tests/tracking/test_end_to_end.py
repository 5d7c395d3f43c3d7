"""A real short training and tuning session against a real `mlflow server`, compared, with
the server stopped in the middle of the tuning session: nothing the session logged is lost.

record (BPF) → train (tiny PPO on that trace) → tune a real multi-process job with the trained
model (server stopped mid-session) → `autotune sync` once the server is back → compare.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from autotune.tracking import schema, store
from autotune.tracking.spool import Spool

if TYPE_CHECKING:
    from tests.tracking.conftest import MlflowServer

REPO = Path(__file__).resolve().parents[2]
JOB = [sys.executable, str(REPO / "tests" / "envs" / "job.py")]  # trainer + 2 forked loaders
AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]


def _autotune(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUTOTUNE, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _session_run(uri: str) -> tuple[str, int] | None:
    """The tuning session's run id and how many intervals it has uploaded, once it has any."""
    c = store.client(uri)
    exp = c.get_experiment_by_name(schema.DEFAULT_EXPERIMENT)
    if exp is None:
        return None
    found = c.search_runs([exp.experiment_id], f"tags.`{schema.TAG_KIND}` = 'tune'")
    if not found:
        return None
    rid = found[0].info.run_id
    return rid, len(c.get_metric_history(rid, schema.M_PROGRESS_RATE))


def _spooled_intervals(runs: Path) -> int:
    """How many intervals the tuning session has written to its local spool so far."""
    n = 0
    for path in (runs / "spool").glob("local-*"):
        for _, op in Spool(path).ops_from(0):
            n += op["op"] == "metrics" and schema.M_PROGRESS_RATE in op["values"]
    return n


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.slow
def test_train_tune_stop_server_sync_compare(stopped_server: MlflowServer, tmp_path: Path) -> None:
    srv = stopped_server
    srv.start()
    trace = tmp_path / "job.parquet"
    rec = _autotune(
        tmp_path, "record", "-o", str(trace), "--explore", "--explore-hold", "1", "--",
        *JOB, "6",
    )  # fmt: skip
    assert rec.returncode == 0, rec.stderr
    train = _autotune(
        tmp_path, "train", "--workload", str(trace), "--tiny", "--timesteps", "256",
        "--eval-freq", "128", "--no-progress", "--tracking-uri", srv.uri,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    model_id = next(
        line.split()[1] for line in train.stdout.splitlines() if line.startswith("run: ")
    )
    assert store.client(srv.uri).get_run(model_id).data.tags[schema.TAG_KIND] == "train"

    # The job runs until the test ends it (at most 240 s), so the server certainly stops while
    # the session runs, and the session certainly logs more intervals after the stop.
    stop_job = tmp_path / "stop-job"
    tune = subprocess.Popen(
        [*AUTOTUNE, "tune", "--model", model_id, "--no-view", "--tracking-uri", srv.uri,
         "--", *JOB, "240"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "JOB_STOP_FILE": str(stop_job)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while (seen := _session_run(srv.uri)) is None or seen[1] < 4:
            assert tune.poll() is None, tune.communicate()
            assert time.monotonic() < deadline, "the session never reached the server"
            time.sleep(0.5)
        srv.stop()  # mid-session
        spooled_at_stop = _spooled_intervals(tmp_path / "runs")
        while _spooled_intervals(tmp_path / "runs") < spooled_at_stop + 2:
            assert tune.poll() is None, tune.communicate()
            assert time.monotonic() < deadline + 60, "no interval logged after the stop"
            time.sleep(0.5)
        stop_job.touch()
        _, err = tune.communicate(timeout=300)
    finally:
        if tune.poll() is None:
            tune.kill()
            tune.wait()
    assert tune.returncode == 0, err
    assert "autotune sync" in err, "told how to upload the rest"
    session_id, before = seen
    spooled = list((tmp_path / "runs" / "spool").glob("local-*"))
    assert len(spooled) == 1, "the session's tail waits in the spool"

    srv.start()
    sync = _autotune(tmp_path, "sync")
    assert sync.returncode == 0, sync.stderr
    c = store.client(srv.uri)
    got = c.get_run(session_id)
    assert got.info.status == "FINISHED"
    assert got.data.tags[schema.TAG_MODEL_RUN_ID] == model_id
    steps = sorted(m.step for m in c.get_metric_history(session_id, schema.M_PROGRESS_RATE))
    assert len(steps) > before, "intervals logged while the server was down came up"
    assert steps == list(range(steps[0], steps[0] + len(steps))), "no interval lost or doubled"
    knobs = [k for k in got.data.metrics if k.startswith(schema.KNOB_METRIC_PREFIX)]
    assert knobs, got.data.metrics
    assert schema.M_PROGRESS_VS_DEFAULT in got.data.metrics
    assert schema.M_PROGRESS_VS_WARMUP in got.data.metrics
    assert schema.DECISIONS_ARTIFACT in [a.path for a in c.list_artifacts(session_id)]

    cmp = _autotune(tmp_path, "compare", "--tracking-uri", srv.uri, "--format", "json")
    assert cmp.returncode == 0, cmp.stderr
    doc = json.loads(cmp.stdout)
    assert {row["source"] for row in doc["rows"]} == {"train", "tune"}
    [link] = [x for x in doc["links"] if x["kind"] == "tune"]
    assert link["run_id"] == session_id
    assert link["model_run_id"] == model_id and link["model_found"]

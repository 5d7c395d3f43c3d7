"""Nothing is lost when the tracking server is down: real `mlflow server` processes, stopped
and started under a run, then `autotune sync` and the run's own retry upload what was spooled."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from autotune.tracking import schema, store, tracked_run
from autotune.tracking.spool import Spool
from autotune.tracking.upload import upload

if TYPE_CHECKING:
    from tests.tracking.conftest import MlflowServer

Run = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.slow  # each starts a real MLflow server (seconds)


def _wait(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def _runs_with_local_id(uri: str, local_id: str) -> list[str]:
    c = store.client(uri)
    exp = c.get_experiment_by_name(schema.DEFAULT_EXPERIMENT)
    if exp is None:
        return []
    found = c.search_runs([exp.experiment_id], f"tags.`{schema.TAG_LOCAL_ID}` = '{local_id}'")
    return [r.info.run_id for r in found]


def _steps(uri: str, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in store.client(uri).get_metric_history(run_id, key))


def test_server_down_at_start_then_autotune_sync(
    stopped_server: MlflowServer, runs: Path, run_cli: Run
) -> None:
    told: list[str] = []
    decisions = runs.parent / "decisions.jsonl"
    decisions.write_text('{"knob": "readahead", "old": 128, "new": 512}\n')
    started = time.monotonic()
    with tracked_run(
        "tune",
        params={"interval_ms": 250},
        tracking_uri=stopped_server.uri,
        runs_dir=runs,
        notify=told.append,
    ) as run:
        assert run.id == run.local_id and run.id.startswith("local-")
        for step in range(50):
            run.log_metrics({schema.M_PROGRESS_RATE: 100.0 + step}, step=step)
        run.log_artifact(decisions)
    assert time.monotonic() - started < 15, "a dead server must not stall the run"
    assert len(told) == 1 and "autotune sync" in told[0], told
    assert (runs / "spool" / run.local_id / "ops.jsonl").is_file()

    stopped_server.start()
    r = run_cli("sync", cwd=runs.parent)
    assert r.returncode == 0, r.stderr
    assert f"uploaded {run.local_id} as run" in r.stdout
    [run_id] = _runs_with_local_id(stopped_server.uri, run.local_id)
    got = store.client(stopped_server.uri).get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"interval_ms": "250"}
    assert got.data.tags[schema.TAG_KIND] == "tune"
    assert _steps(stopped_server.uri, run_id, schema.M_PROGRESS_RATE) == list(range(50))
    names = [a.path for a in store.client(stopped_server.uri).list_artifacts(run_id)]
    assert names == ["decisions.jsonl"]
    assert not (runs / "spool" / run.local_id).exists()

    # A second sync finds nothing and duplicates nothing.
    again = run_cli("sync", cwd=runs.parent)
    assert again.returncode == 0, again.stderr
    assert "nothing to upload" in again.stdout
    assert _runs_with_local_id(stopped_server.uri, run.local_id) == [run_id]
    assert _steps(stopped_server.uri, run_id, schema.M_PROGRESS_RATE) == list(range(50))


def test_server_stops_mid_run_and_returns_before_its_end(
    stopped_server: MlflowServer, runs: Path
) -> None:
    stopped_server.start()
    uri = stopped_server.uri
    told: list[str] = []
    key = schema.knob_metric("weight.trainer")
    with tracked_run(
        "tune",
        tracking_uri=uri,
        runs_dir=runs,
        notify=told.append,
        retry_interval_s=0.5,
        end_timeout_s=120,  # the end waits for its retry; generous for a loaded CI machine
    ) as run:
        run_id = run.id
        assert len(run_id) == 32
        for step in range(10):
            run.log_metrics({key: 1.0}, step=step)
        _wait(lambda: _steps(uri, run_id, key) == list(range(10)))

        stopped_server.stop()
        for step in range(10, 20):
            run.log_metrics({key: 2.0}, step=step)
        _wait(lambda: run.offline)
        run.log_dict({"decisions": 3}, "summary.json")

        stopped_server.start()
        for step in range(20, 30):
            run.log_metrics({key: 4.0}, step=step)
    # The run's end retried and got everything up: one run, every step once, no spool left.
    assert _runs_with_local_id(uri, run.local_id) == [run_id]
    assert _steps(uri, run_id, key) == list(range(30))
    c = store.client(uri)
    assert c.get_run(run_id).info.status == "FINISHED"
    assert [a.path for a in c.list_artifacts(run_id)] == ["summary.json"]
    assert len(told) == 1
    assert not (runs / "spool" / run.local_id).exists()


def test_upload_repeated_after_lost_progress_adds_nothing(
    mlflow_server: MlflowServer, runs: Path, dead_uri: str
) -> None:
    # A run spooled offline, then uploaded twice as if the first upload's progress record had
    # been lost in a crash: the run is found again by its local id, metrics are not doubled.
    with tracked_run("train", tracking_uri=dead_uri, runs_dir=runs, notify=lambda _: None) as r:
        for step in range(1500):  # more than one log_batch holds
            r.log_metrics({schema.M_EPISODE_REWARD: step / 10}, step=step)
    spool = Spool.open(runs / "spool" / r.local_id)
    c = store.client(mlflow_server.uri)
    first = upload(spool, c, mlflow_server.uri)
    (spool.path / "state.json").unlink()
    second = upload(spool, c, mlflow_server.uri)
    assert first.run_id == second.run_id
    assert _runs_with_local_id(mlflow_server.uri, r.local_id) == [first.run_id]
    assert first.run_id is not None
    assert _steps(mlflow_server.uri, first.run_id, schema.M_EPISODE_REWARD) == list(range(1500))


WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from autotune.tracking import tracked_run
    with tracked_run("tune", tracking_uri=sys.argv[1], runs_dir=Path(sys.argv[2]),
                     notify=lambda _: None) as run:
        for step in range(5):
            run.log_metrics({"progress_rate": float(step)}, step=step)
        print(run.local_id, flush=True)
        if sys.argv[3] == "die":
            os._exit(9)  # no end, no cleanup: as after kill -9
        sys.stdin.readline()  # stay alive, holding the spool, until told
    """
)


def test_sync_ends_a_dead_writers_run_and_leaves_a_live_one(
    mlflow_server: MlflowServer, runs: Path, dead_uri: str, run_cli: Run
) -> None:
    cmd = [sys.executable, "-c", WRITER, dead_uri, str(runs)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    dead = subprocess.run([*cmd, "die"], capture_output=True, text=True, env=env, timeout=120)
    assert dead.returncode == 9, dead.stderr
    dead_id = dead.stdout.strip()
    live = subprocess.Popen(
        [*cmd, "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert live.stdout is not None
        live_id = live.stdout.readline().strip()
        r = run_cli("sync", "--tracking-uri", mlflow_server.uri, cwd=runs.parent)
        assert r.returncode == 0, r.stderr
        assert f"uploaded {dead_id}" in r.stdout
        assert f"left {live_id}: a running process is still writing it" in r.stdout
    finally:
        live.kill()
        live.wait()
    [run_id] = _runs_with_local_id(mlflow_server.uri, dead_id)
    got = store.client(mlflow_server.uri).get_run(run_id)
    assert got.info.status == "KILLED"
    assert _steps(mlflow_server.uri, run_id, schema.M_PROGRESS_RATE) == list(range(5))


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from autotune.tracking.spool import Spool
    spool = Spool.open(Path(sys.argv[1]))
    assert spool.try_lock()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def test_sync_waits_for_an_upload_process_finishing_an_ended_run(
    mlflow_server: MlflowServer, runs: Path, dead_uri: str, run_cli: Run
) -> None:
    """`autotune tune` exits without waiting for its last upload, whose process holds the
    spool's lock while it tries: `autotune sync` right after waits for it, not 'busy'."""
    with tracked_run("tune", tracking_uri=dead_uri, runs_dir=runs, notify=lambda _: None) as run:
        run.log_metrics({schema.M_PROGRESS_RATE: 1.0}, step=0)
    spool = runs / "spool" / run.local_id
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(spool), "3"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        r = run_cli("sync", "--tracking-uri", mlflow_server.uri, cwd=runs.parent)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 0, r.stderr
    assert f"uploaded {run.local_id}" in r.stdout
    assert not spool.exists()


def test_sync_to_a_dead_server_is_one_line_exit_2(runs: Path, dead_uri: str, run_cli: Run) -> None:
    with tracked_run("record", tracking_uri=dead_uri, runs_dir=runs, notify=lambda _: None) as r:
        r.set_tags({"note": "offline"})
    res = run_cli("sync", cwd=runs.parent)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "not uploaded" in lines[0] and "Traceback" not in res.stderr
    assert (runs / "spool" / r.local_id).is_dir(), "a failed sync keeps the spool"


def test_offline_evaluation_is_one_line_and_keeps_its_tree(
    stopped_server: MlflowServer, runs: Path, run_cli: Run
) -> None:
    told: list[str] = []
    opts = {"tracking_uri": stopped_server.uri, "runs_dir": runs, "notify": told.append}
    with tracked_run("eval", **opts) as parent:  # type: ignore[arg-type]
        children = []
        for policy in ("default", "heuristic", "static-best"):
            tags = {schema.TAG_POLICY: policy}
            with tracked_run("eval_result", parent=parent, tags=tags, **opts) as child:  # type: ignore[arg-type]
                child.log_metrics({schema.M_PROGRESS_VS_DEFAULT: 1.0})
            children.append(child.local_id)
    assert len(told) == 1, told

    stopped_server.start()
    r = run_cli("sync", cwd=runs.parent)
    assert r.returncode == 0, r.stderr
    [parent_id] = _runs_with_local_id(stopped_server.uri, parent.local_id)
    for local_id in children:
        [child_id] = _runs_with_local_id(stopped_server.uri, local_id)
        tags = store.client(stopped_server.uri).get_run(child_id).data.tags
        assert tags[schema.MLFLOW_PARENT_RUN_ID] == parent_id


def test_a_server_that_accepts_but_never_answers(runs: Path) -> None:
    # A loopback listener that never accepts: connections open, no answer ever comes (as from
    # a hung server). The run goes on offline, keeps everything, and says so once.
    told: list[str] = []
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        uri = f"http://127.0.0.1:{hung.getsockname()[1]}"
        with tracked_run(
            "tune", tracking_uri=uri, runs_dir=runs, notify=told.append, end_timeout_s=2
        ) as run:
            assert run.offline
            for step in range(100):
                run.log_metrics({schema.M_PROGRESS_RATE: float(step)}, step=step)
    assert len(told) == 1 and "does not answer" in told[0] and "autotune sync" in told[0]
    spool = Spool.open(runs / "spool" / run.local_id)
    logged = [op for _, op in spool.ops_from(0) if op["op"] == "metrics"]
    assert [op["step"] for op in logged] == list(range(100))

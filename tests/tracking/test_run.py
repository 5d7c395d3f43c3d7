"""tracked_run against a real SQLite store: what a run writes, and that it is all there."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autotune.features import SCHEMA_VERSION
from autotune.knobs import KNOB_TABLE_VERSION
from autotune.tracking import schema, store, tracked_run
from autotune.tracking.spool import UPLOADED_INDEX


def _policy(tmp_path: Path) -> Path:
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "weights.npz").write_bytes(b"\x93NUMPY fake weights")
    (folder / "metadata.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    return folder


def _all_runs(uri: str) -> list[Any]:
    c = store.client(uri)
    return list(c.search_runs([e.experiment_id for e in c.search_experiments()]))


def test_train_run_logs_everything(runs: Path, sqlite_uri: str, tmp_path: Path) -> None:
    with tracked_run(
        "train",
        name="ppo-seed0",
        tags={schema.TAG_ALGO: "ppo", schema.TAG_WORKLOADS: "cnn,shards"},
        params={"learning_rate": 3e-4, "n_steps": 64},
        tracking_uri=sqlite_uri,
        runs_dir=runs,
    ) as run:
        assert len(run.id) == 32, "the store answered, so the id is MLflow's"
        for i in range(5):
            run.log_metrics({schema.M_EPISODE_REWARD: float(i)}, step=i * 64)
        run.log_dict({"net_arch": [16]}, "config/hparams.json")
        run.log_policy(_policy(tmp_path))

    c = store.client(sqlite_uri)
    got = c.get_run(run.id)
    tags = got.data.tags
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "ppo-seed0"
    assert tags[schema.TAG_KIND] == "train"
    assert tags[schema.TAG_ALGO] == "ppo"
    assert tags[schema.TAG_SCHEMA_VERSION] == str(SCHEMA_VERSION)
    assert tags[schema.TAG_KNOB_TABLE_VERSION] == str(KNOB_TABLE_VERSION)
    assert tags[schema.TAG_HOST]
    assert tags[schema.TAG_GIT_COMMIT]
    assert tags[schema.TAG_LOCAL_ID] == run.local_id
    assert got.data.params == {"learning_rate": "0.0003", "n_steps": "64"}
    history = c.get_metric_history(run.id, schema.M_EPISODE_REWARD)
    assert sorted((m.step, m.value) for m in history) == [(i * 64, float(i)) for i in range(5)]
    top = {a.path for a in c.list_artifacts(run.id)}
    assert top == {"config", "policy"}
    assert {a.path for a in c.list_artifacts(run.id, "policy")} == {
        "policy/weights.npz",
        "policy/metadata.json",
    }
    models = c.search_logged_models([got.info.experiment_id])
    assert [(m.name, m.source_run_id) for m in models] == [(schema.POLICY_MODEL_NAME, run.id)]
    # Artifacts of the embedded store live under runs/artifacts/<experiment>.
    assert (runs / "artifacts" / schema.DEFAULT_EXPERIMENT).is_dir()
    # Wholly uploaded: the spool folder is gone and the index remembers the mapping.
    assert not (runs / "spool" / run.local_id).exists()
    assert run.local_id in (runs / "spool" / UPLOADED_INDEX).read_text()


def test_child_runs_name_their_parent(runs: Path, sqlite_uri: str) -> None:
    with tracked_run("eval", tracking_uri=sqlite_uri, runs_dir=runs) as parent:
        for policy in ("default", "heuristic"):
            with tracked_run(
                "eval_result",
                parent=parent,
                tags={schema.TAG_POLICY: policy, schema.TAG_WORKLOAD: "cnn"},
                tracking_uri=sqlite_uri,
                runs_dir=runs,
            ) as child:
                child.log_metrics({schema.M_PROGRESS_VS_DEFAULT: 1.0})
    c = store.client(sqlite_uri)
    exp = c.get_experiment_by_name(schema.DEFAULT_EXPERIMENT)
    assert exp is not None
    children = c.search_runs(
        [exp.experiment_id], f"tags.`{schema.MLFLOW_PARENT_RUN_ID}` = '{parent.id}'"
    )
    assert sorted(r.data.tags[schema.TAG_POLICY] for r in children) == ["default", "heuristic"]


def test_failed_block_marks_run_failed(runs: Path, sqlite_uri: str) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        tracked_run("tune", tracking_uri=sqlite_uri, runs_dir=runs) as run,
    ):
        run.log_metrics({schema.M_PROGRESS_RATE: 10.0})
        raise RuntimeError("boom")
    assert store.client(sqlite_uri).get_run(run.id).info.status == "FAILED"


def test_steps_default_to_a_counter(runs: Path, sqlite_uri: str) -> None:
    with tracked_run("tune", tracking_uri=sqlite_uri, runs_dir=runs) as run:
        for v in (1.0, 2.0, 3.0):
            run.log_metrics({schema.knob_metric("readahead"): v})
    history = store.client(sqlite_uri).get_metric_history(run.id, "knob/readahead")
    assert sorted(m.step for m in history) == [0, 1, 2]


def test_experiment_by_name(runs: Path, sqlite_uri: str) -> None:
    with tracked_run("record", tracking_uri=sqlite_uri, experiment="nodes", runs_dir=runs) as r:
        pass
    c = store.client(sqlite_uri)
    exp = c.get_experiment_by_name("nodes")
    assert exp is not None
    assert c.get_run(r.id).info.experiment_id == exp.experiment_id


def test_unknown_kind_is_refused(runs: Path, sqlite_uri: str) -> None:
    with (
        pytest.raises(ValueError, match="unknown run kind"),
        tracked_run("nope", tracking_uri=sqlite_uri, runs_dir=runs),
    ):
        pass
    assert not (runs / "spool").exists() or not list((runs / "spool").iterdir())


def test_an_upload_process_asked_to_load_first_has_sent_the_start_when_ready(
    runs: Path, sqlite_uri: str
) -> None:
    # `autotune tune` starts the job only once this returns: the MLflow client is loaded and
    # the run is in the store, so nothing heavy is left to do beside the job.
    with tracked_run(
        "tune",
        tracking_uri=sqlite_uri,
        runs_dir=runs,
        params={"interval_ms": 250},
        uploader="process",
        load_first=True,
    ) as run:
        assert run.wait_uploader(60)
        found = _all_runs(sqlite_uri)
        assert [r.data.params for r in found] == [{"interval_ms": "250"}]
        assert found[0].info.status == "RUNNING"
        run.log_metrics({schema.M_PROGRESS_RATE: 10.0})
    (done,) = _all_runs(sqlite_uri)
    assert done.info.status == "FINISHED"
    assert done.data.metrics[schema.M_PROGRESS_RATE] == 10.0


def test_the_upload_process_uploads_live_as_often_as_asked_or_only_at_the_end(
    runs: Path, sqlite_uri: str
) -> None:
    # tracking_live_upload_s: a run uploaded every 0.2 s is in the store while it runs; one
    # with 0 is not (no MLflow client loaded beside the job), and is whole once it has ended.
    import shutil
    import time

    end_db = runs / "end.db"
    shutil.copyfile(sqlite_uri.removeprefix("sqlite:///"), end_db)
    end_uri = f"sqlite:///{end_db}"

    def wait_for_a_run(uri: str) -> list[Any]:
        end = time.monotonic() + 60
        while not (found := _all_runs(uri)) and time.monotonic() < end:
            time.sleep(0.2)
        return found

    with tracked_run(
        "tune", tracking_uri=sqlite_uri, runs_dir=runs, uploader="process", live_upload_s=0.2
    ) as run:
        run.log_metrics({schema.M_PROGRESS_RATE: 1.0})
        assert [r.info.status for r in wait_for_a_run(sqlite_uri)] == ["RUNNING"]
    with tracked_run(
        "tune", tracking_uri=end_uri, runs_dir=runs, uploader="process", live_upload_s=0
    ) as run:
        run.log_metrics({schema.M_PROGRESS_RATE: 2.0})
        time.sleep(1.5)  # several of the other run's upload intervals
        assert _all_runs(end_uri) == []
    (done,) = wait_for_a_run(end_uri)
    assert done.info.status == "FINISHED"
    assert done.data.metrics[schema.M_PROGRESS_RATE] == 2.0


def _followers_of(spool: Path) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (d / "cmdline").read_bytes().split(b"\0")
                if b"autotune.tracking.follow" in cmd and str(spool).encode() in cmd:
                    found.append(int(d.name))
    return found


def test_the_upload_process_speaks_through_its_writer_and_never_holds_its_stderr(
    runs: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A pipe that reads the command's output (`autotune tune … | tee log`) ends when the
    command does, not seconds later when its upload does: the upload process writes to a pipe
    its writer passes on, and what it says still reaches the person."""
    uri = "http://127.0.0.1:9"  # the discard port: nothing answers
    said = ""
    with tracked_run(
        "tune", tracking_uri=uri, runs_dir=runs, uploader="process", load_first=True
    ) as run:
        [follower] = _followers_of(run.spool.path)
        theirs = os.readlink(f"/proc/{follower}/fd/2")
        assert theirs.startswith("pipe:") and theirs != os.readlink("/proc/self/fd/2")
        assert run.wait_uploader(60)  # it has tried once, and failed
        end = time.monotonic() + 60
        while "tracking store" not in said and time.monotonic() < end:
            time.sleep(0.1)
            said += capfd.readouterr().err
    assert f"tracking store {uri}" in said, said
    assert "autotune sync" in said


@pytest.mark.parametrize("idle", [True, False])
def test_the_followers_uploads_run_at_nice_19(idle: bool) -> None:
    """While its writer runs (``SCHED_IDLE``) and for the last upload after (``SCHED_OTHER``):
    at nice 0 the last upload's CPU landed on whatever started next (autotune.system.busy)."""
    code = (
        "import os\nfrom autotune.tracking.follow import _idle\n"
        f"_idle({idle})\nprint(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    policy, nice = (int(x) for x in out.stdout.split())
    assert policy == (os.SCHED_IDLE if idle else os.SCHED_OTHER)
    assert nice == 19

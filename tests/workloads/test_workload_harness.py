"""The harness runs real jobs on its own loop device under fixed knobs, and restores everything:
after success, after the job fails, and after Ctrl-C or SIGTERM of the harness itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotune.errors import UserError
from autotune.target import descendants
from workloads import disk
from workloads.run import REPO, Workbench, WorkloadFailed, run_workload

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.usefixtures("nothing_left")]


def test_run_holds_read_ahead_and_counts_progress(isolated_settings: Path) -> None:
    r = run_workload("shards", samples=32, knobs={"readahead": 16}, size="tiny")
    assert r.samples >= 32
    assert r.in_effect == {"readahead": 16.0}
    assert r.reported_samples == r.samples
    # The shards were cold: the job read them from the loop device (32 samples × 256 KiB).
    assert r.device_read_mib is not None and r.device_read_mib >= 8
    assert r.wall_s > r.job_s > 0
    # The wall time, split where it went: every part happened, and they add up to it.
    parts = r.timeline
    assert set(parts) == {"launch", "startup", "timed", "after"}
    assert all(v >= 0 for v in parts.values()), parts
    assert parts["timed"] == pytest.approx(r.job_s, abs=0.01)
    assert sum(parts.values()) == pytest.approx(r.wall_s, abs=0.5)


def test_the_jobs_temporary_files_go_with_the_workbench(isolated_settings: Path) -> None:
    with Workbench("tiny") as wb:
        tmp = wb.tmp
        assert tmp is not None and tmp.is_dir()
        assert wb.job_env()["TMPDIR"] == str(tmp)
        wb.run("shards", 32)  # DataLoader workers: multiprocessing makes its pymp-* folder
    assert not tmp.exists()


def test_read_ahead_is_restored_between_runs(isolated_settings: Path) -> None:
    with Workbench("tiny") as wb:
        assert wb.device is not None
        original = disk.read_ahead_kb(wb.device)
        wb.run("randread", 16, {"readahead": 4096})
        assert disk.read_ahead_kb(wb.device) == original


def test_weights_hold_for_the_job_and_its_workers_beside_the_neighbour(
    isolated_settings: Path,
) -> None:
    knobs = {"weight.trainer": 8.0, "weight.loader": 8.0}
    r = run_workload("cnn_noisy", samples=64, knobs=knobs, size="tiny")
    assert r.noisy
    assert r.in_effect == knobs  # read back once the DataLoader workers existed


def test_a_failing_job_leaves_nothing_behind(isolated_settings: Path) -> None:
    with Workbench("tiny") as wb:
        assert wb.device is not None
        original = disk.read_ahead_kb(wb.device)
        with pytest.raises(WorkloadFailed, match="--workers must be 1 to"):
            wb.run("shards", 16, {"readahead": 1024}, noisy=True, extra_args=("--workers", "0"))
        assert disk.read_ahead_kb(wb.device) == original
        assert descendants(os.getpid()) == []  # neighbour and job stopped


def test_under_a_prefix_only_a_starting_read_ahead_is_fixed(isolated_settings: Path) -> None:
    with Workbench("tiny") as wb:
        r = wb.run("shards", 16, {"readahead": 128}, under="nice -n 1")
        assert r.reported_samples is None  # the channel belongs to the tuner then
        assert r.samples >= 16
        with pytest.raises(UserError, match=r"the tuner owns weight\.trainer"):
            wb.run("shards", 16, {"weight.trainer": 2.0}, under="nice -n 1")


def _harness(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workloads.run", "--size", "tiny", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_job(harness: subprocess.Popen[str], module: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in descendants(harness.pid):
            try:
                if module in Path(f"/proc/{pid}/cmdline").read_text():
                    return
            except OSError:
                continue
        assert harness.poll() is None, harness.communicate()
        time.sleep(0.1)
    raise AssertionError(f"{module} never started")


@pytest.mark.parametrize(
    ("sig", "status", "times"),
    [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 1), (signal.SIGTERM, 143, 2)],
)
def test_interrupting_the_harness_restores_everything(
    sig: signal.Signals, status: int, times: int, isolated_settings: Path
) -> None:
    # Twice: `pkill -f` of a harness run under `timeout` sends two SIGTERMs; the second must not
    # cut the clean-up short.
    env = dict(os.environ)
    h = _harness(
        "--workload", "cnn_noisy", "--samples", "1000000", "--knobs", "readahead=16", env=env
    )
    try:
        _wait_for_job(h, "workloads.cnn")
        for _ in range(times):
            h.send_signal(sig)
            time.sleep(0.05)
        _, err = h.communicate(timeout=60)
    finally:
        if h.poll() is None:
            h.kill()
            h.wait()
    # A second SIGTERM that lands after the clean-up, once the interpreter has put the default
    # handlers back on its way out, ends it by the signal: the clean-up is what must finish
    # (the fixtures check the disk, the knobs and the processes).
    assert h.returncode == status or (times > 1 and h.returncode == -sig), err
    assert "Traceback" not in err


def test_a_bad_knob_is_one_line_and_status_2() -> None:
    h = _harness("--workload", "shards", "--knobs", "readahead=100", env=dict(os.environ))
    _, err = h.communicate(timeout=120)
    assert h.returncode == 2
    assert err.strip().count("\n") == 0 and "readahead=100 is not allowed" in err

"""`autotune tune` on real processes: guarded, restoring, and careful with bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from proc_kit import stop_gently

from autotune.system import cgroups

BURN = Path(__file__).resolve().parent / "burn.py"
AFFINE = Path(__file__).resolve().parent / "affine.py"

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]
TUNE = [sys.executable, "-m", "autotune.cli.main", "tune"]
ALL_CPUS = set(os.sched_getaffinity(0))


def _cgroup_dir(env: dict[str, str]) -> Path | None:
    m = cgroups.mounts()
    base = m.v1.get("cpu")
    return base / env["AUTOTUNE_CGROUP_PARENT"] if base else None


def _decisions(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _job_of(tuner: int, timeout: float = 10.0) -> int:
    """The job the tuner started: its child running ``burn.py`` as the program. Not a match
    on the command line anywhere: a child the tuner forks has the tuner's own command line,
    which names ``burn.py`` after ``--``, until it execs."""

    def jobs() -> list[int]:
        kids = subprocess.run(["pgrep", "-P", str(tuner)], capture_output=True, text=True)
        out = []
        for pid in map(int, kids.stdout.split()):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 1 and argv[1] == str(BURN).encode():
                out.append(pid)
        return out

    assert _wait_for(lambda: len(jobs()) == 1, timeout), jobs()
    (job,) = jobs()
    return job


def _wait_for(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def _tune_pid(
    policy: Path, pid: int, log: Path, env: dict[str, str], **popen: Any
) -> subprocess.Popen[Any]:
    """`autotune tune --pid` at 100 ms with its decision log, started in the background."""
    cmd = [*TUNE, "--model", str(policy), "--interval", "100", "--decisions", str(log)]
    return subprocess.Popen([*cmd, "--no-view", "--pid", str(pid)], env=env, **popen)


def test_bad_action_is_rolled_back_and_the_job_status_passes_through(
    tmp_path: Path, constant_policy: Callable[..., Path], isolated: dict[str, str]
) -> None:
    pol = constant_policy(cpus_trainer=0.25)  # the trainer on one core of two
    log = tmp_path / "decisions.jsonl"
    # The job's progress is proportional to the CPUs its threads may run on (AFFINE), whatever
    # else the machine runs: one core of two halves it for certain, where a CPU-bound job on a
    # busy CI machine may lose too little for the guard to tell it from noise. The warm-up
    # outlasts two changes and their canaries (3 s each): the guard's early fallback, which may
    # fire once the job has run tuned as long as the warm-up, comes after them.
    env = {**isolated, "AUTOTUNE_GUARD_WARMUP_S": "8", "AUTOTUNE_GUARD_CANARY_S": "3"}
    r = subprocess.run(
        [
            *TUNE,
            "--model",
            str(pol),
            "--interval",
            "100",
            "--decisions",
            str(log),
            "--no-view",
            "--",
            sys.executable,
            str(AFFINE),
            "40",  # from the tuner's start: its telemetry compiles while the job runs
            "2",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 3, r.stderr  # the job's own exit status
    rows = _decisions(log)
    rolled = [d for d in rows if d["knob"] == "cpus.trainer" and "rollback" in str(d["reason"])]
    assert rolled, [(d["old"], d["new"], d["reason"], d.get("event")) for d in rows]
    assert " 0 rolled back" not in r.stderr
    d = _cgroup_dir(isolated)
    assert d is None or not d.exists()


def test_dry_run_writes_nothing(
    tmp_path: Path, constant_policy: Callable[..., Path], isolated: dict[str, str]
) -> None:
    pol = constant_policy(weight_trainer=8.0, cpus_trainer=0.25)
    log = tmp_path / "decisions.jsonl"
    tuner = subprocess.Popen(
        [
            *TUNE,
            "--model",
            str(pol),
            "--interval",
            "100",
            "--dry-run",
            "--decisions",
            str(log),
            "--no-view",
            "--",
            sys.executable,
            str(BURN),
            "120",  # runs from the tuner's start, while its telemetry compiles: ended below
            "2",
        ],
        env=isolated,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(lambda: any(d["knob"] == "weight.trainer" for d in _decisions(log)), 60)
        job = _job_of(tuner.pid)
        assert set(os.sched_getaffinity(job)) == ALL_CPUS
        d = _cgroup_dir(isolated)
        assert d is None or not d.exists()
        assert cgroups.cgroup_of(job, "cpu") == cgroups.cgroup_of(os.getpid(), "cpu")
        tuner.send_signal(signal.SIGTERM)
    finally:
        _, err = tuner.communicate(timeout=60)
    assert tuner.returncode == 128 + signal.SIGTERM, err  # the job's status: it was stopped
    assert "dry run" in err
    assert all(d.get("dry_run") for d in _decisions(log) if d.get("event") == "set")


@pytest.mark.parametrize("problem", ["missing", "corrupt", "schema"])
def test_bad_model_is_one_line_exit_2_and_nothing_runs(
    tmp_path: Path, constant_policy: Callable[..., Path], isolated: dict[str, str], problem: str
) -> None:
    model = tmp_path / "nope"
    if problem != "missing":
        model = constant_policy()
        if problem == "corrupt":
            (model / "weights.npz").write_bytes(b"not a zip")
        else:
            meta = json.loads((model / "policy.json").read_text())
            meta["schema_version"] = 0
            (model / "policy.json").write_text(json.dumps(meta))
    marker = tmp_path / "job-ran"
    r = subprocess.run(
        [*TUNE, "--model", str(model), "--", "touch", str(marker)],
        env=isolated,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not marker.exists()  # the job was never started, no knob touched
    d = _cgroup_dir(isolated)
    assert d is None or not d.exists()


def test_kill_9_then_restore(
    tmp_path: Path, constant_policy: Callable[..., Path], isolated: dict[str, str]
) -> None:
    pol = constant_policy(weight_trainer=8.0)
    log = tmp_path / "decisions.jsonl"
    job = subprocess.Popen([sys.executable, str(BURN), "60", "1"])
    tuner = _tune_pid(pol, job.pid, log, isolated, stderr=subprocess.DEVNULL)
    try:
        applied = lambda: any(  # noqa: E731
            d["knob"] == "weight.trainer" and d.get("event") == "set" for d in _decisions(log)
        )
        assert _wait_for(applied, 60)
        moved = cgroups.cgroup_of(job.pid, "cpu")
        assert moved is not None and isolated["AUTOTUNE_CGROUP_PARENT"] in moved
        tuner.kill()
        tuner.wait()
        assert isolated["AUTOTUNE_CGROUP_PARENT"] in str(cgroups.cgroup_of(job.pid, "cpu"))
        restore = [sys.executable, "-m", "autotune.cli.main", "restore"]
        first = subprocess.run(restore, env=isolated, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        assert cgroups.cgroup_of(job.pid, "cpu") == cgroups.cgroup_of(os.getpid(), "cpu")
        d = _cgroup_dir(isolated)
        assert d is None or not d.exists()
        again = subprocess.run(restore, env=isolated, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0
    finally:
        job.kill()
        job.wait()
        if tuner.poll() is None:
            tuner.kill()


def test_job_exiting_mid_interval_ends_the_session(
    constant_policy: Callable[..., Path], isolated: dict[str, str]
) -> None:
    pol = constant_policy()
    r = subprocess.run(
        [
            *TUNE,
            "--model",
            str(pol),
            "--interval",
            "1000",
            "--no-view",
            "--",
            sys.executable,
            str(BURN),
            "1.3",
            "1",
            "5",
        ],
        env=isolated,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 5, r.stderr
    assert "job ended" in r.stderr


def test_a_job_that_ends_at_once_passes_its_status_through(
    constant_policy: Callable[..., Path], isolated: dict[str, str], tmp_path: Path
) -> None:
    """The job runs before the telemetry is up: one that is over by then is reported, not
    tuned, and leaves nothing behind."""
    log = tmp_path / "decisions.jsonl"
    cmd = [*TUNE, "--model", str(constant_policy()), "--no-view", "--decisions", str(log)]
    r = subprocess.run(
        [*cmd, "--", "sh", "-c", "exit 7"],
        env=isolated,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 7, r.stderr
    assert "job ended" in r.stderr
    assert "Traceback" not in r.stderr
    assert not Path(isolated["AUTOTUNE_JOURNAL"]).exists()
    d = _cgroup_dir(isolated)
    assert d is None or not d.exists()


def test_sigterm_ends_a_pid_session_and_leaves_the_job_running(
    constant_policy: Callable[..., Path], isolated: dict[str, str], tmp_path: Path
) -> None:
    pol = constant_policy(weight_trainer=2.0)
    log = tmp_path / "decisions.jsonl"
    job = subprocess.Popen([sys.executable, str(BURN), "60", "1"])
    try:
        tuner = _tune_pid(pol, job.pid, log, isolated, stderr=subprocess.PIPE, text=True)
        assert _wait_for(lambda: any(d.get("event") == "set" for d in _decisions(log)), 60)
        tuner.send_signal(signal.SIGTERM)
        _, err = tuner.communicate(timeout=60)
        assert tuner.returncode == 0, err
        assert job.poll() is None  # a job we did not start is left running
        assert cgroups.cgroup_of(job.pid, "cpu") == cgroups.cgroup_of(os.getpid(), "cpu")
    finally:
        job.kill()
        job.wait()


def test_a_quiet_node_gets_no_extra_weight_while_the_job_reads(
    constant_policy: Callable[..., Path], isolated: dict[str, str], tmp_path: Path
) -> None:
    # Other tasks can never want 64 nodes' worth (4 is not enough: a shared machine ran at a
    # load of 17 on 2 CPUs) and any reading counts (the burn job reads nothing; 0 MB/s is not
    # below 0): the policy's 8x is refused throughout, while its wish for another family (the
    # trainer's CPUs) still goes through. (Not read-ahead: the burn job reads from no disk the
    # tuner may tune, so that knob is inert and held.)
    pol = constant_policy(weight_trainer=8.0, weight_loader=8.0, cpus_trainer=0.5)
    log = tmp_path / "decisions.jsonl"
    env = {
        **isolated,
        "AUTOTUNE_GUARD_MIN_CONTENTION": "64",
        "AUTOTUNE_GUARD_IO_MBPS": "0",
        "AUTOTUNE_GUARD_WARMUP_S": "0.5",
    }
    job = subprocess.Popen([sys.executable, str(BURN), "60", "1"])
    try:
        tuner = _tune_pid(pol, job.pid, log, env, stderr=subprocess.PIPE, text=True)
        assert _wait_for(lambda: any(d["knob"] == "cpus.trainer" for d in _decisions(log)), 60)
        time.sleep(1.0)  # a few more intervals in which the weights could have moved
        assert cgroups.cgroup_of(job.pid, "cpu") == cgroups.cgroup_of(os.getpid(), "cpu")
        tuner.send_signal(signal.SIGTERM)
        _, err = tuner.communicate(timeout=60)
        assert tuner.returncode == 0, err
        assert not [d for d in _decisions(log) if str(d["knob"]).startswith("weight.")]
    finally:
        job.kill()
        job.wait()


def test_sigterm_restores_then_ends_a_started_job_with_its_status(
    constant_policy: Callable[..., Path], isolated: dict[str, str], tmp_path: Path
) -> None:
    pol = constant_policy(weight_trainer=2.0)
    log = tmp_path / "decisions.jsonl"
    cmd = [*TUNE, "--model", str(pol), "--interval", "100", "--decisions", str(log), "--no-view"]
    tuner = subprocess.Popen(
        [*cmd, "--", sys.executable, str(BURN), "120", "1"],
        env=isolated,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(lambda: any(d.get("event") == "set" for d in _decisions(log)), 60)
        job = _job_of(tuner.pid)
        tuner.send_signal(signal.SIGTERM)
        _, err = tuner.communicate(timeout=60)
    finally:
        stop_gently(tuner)  # it restores (a kill would leave its cgroups and its job)
    assert tuner.returncode == 128 + signal.SIGTERM, err  # the job's status: it was stopped
    # The session's orderly stop, not the actuators' SystemExit: the isolated env's start weights
    # open them before the telemetry, and the SIGTERM usually lands in the compile (where an
    # exception let the interpreter's exit run under it: a segfault, 1 run in 20).
    assert "autotune: tuned " in err, err
    assert not Path(f"/proc/{job}").exists() or "Z" in Path(f"/proc/{job}/stat").read_text()
    assert any(d.get("event") == "restore" for d in _decisions(log))
    d = _cgroup_dir(isolated)
    assert d is None or not d.exists()


def test_adapt_tries_a_neighbour_and_restores_every_knob(
    tmp_path: Path, constant_policy: Callable[..., Path], isolated: dict[str, str]
) -> None:
    # A short guard and adapter (100 ms intervals, 1 s warm-up, 0.3 s canary and hold). The job
    # runs until the adapter has moved (it ran a fixed 8 s, which a loaded machine's BPF compile
    # could use up before the first decision), then is told to end.
    pol = constant_policy(weight_trainer=2.0)
    log = tmp_path / "decisions.jsonl"
    stop = tmp_path / "stop"
    env = {
        **isolated,
        "AUTOTUNE_GUARD_WARMUP_S": "1",
        "AUTOTUNE_GUARD_CANARY_S": "0.3",
        "AUTOTUNE_GUARD_DWELL_S": "0.2",
        "AUTOTUNE_ADAPT_HOLD_S": "0.3",
    }
    cmd = [*TUNE, "--model", str(pol), "--interval", "100", "--decisions", str(log), "--no-view"]
    tune = subprocess.Popen(
        [*cmd, "--adapt", "--", sys.executable, str(BURN), "240", "2", "4", str(stop)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: tune.poll() is not None or "adapt:" in _text(log), 180)
        stop.touch()
        _, err = tune.communicate(timeout=120)
    finally:
        if tune.poll() is None:
            tune.kill()
            tune.wait()
    assert tune.returncode == 4, err  # the job's own exit status
    rows = _decisions(log)
    tried = [d for d in rows if str(d["reason"]).startswith("adapt:")]
    assert tried, rows
    assert "× default" in str(tried[0]["reason"])
    assert any(d.get("event") == "restore" for d in rows)
    assert not Path(isolated["AUTOTUNE_JOURNAL"]).exists()  # nothing left to restore
    d = _cgroup_dir(isolated)
    assert d is None or not d.exists()


NICES = """
import json, os, time
time.sleep(1.5)  # the tuner's compile has begun
def nice(path):
    stat = open(path).read()
    return int(stat[stat.rindex(")") + 2 :].split()[16])
tuner = os.getppid()
tasks = os.listdir(f"/proc/{tuner}/task")
print(json.dumps({"job": nice("/proc/self/stat"),
                  "tuner": [nice(f"/proc/{tuner}/task/{t}/stat") for t in tasks]}))
"""


def test_the_tuner_runs_at_its_nice_value_and_the_job_at_its_own(
    constant_policy: Callable[..., Path], isolated: dict[str, str], tmp_path: Path
) -> None:
    """The tuner's start beside a busy neighbour comes out of the job's time at default knobs:
    its threads run at ``tune_nice`` from the job's start on, the job at the nice it was given."""
    cmd = [*TUNE, "--model", str(constant_policy()), "--no-view"]
    r = subprocess.run(
        [*cmd, "--", sys.executable, "-c", NICES],
        env={**isolated, "AUTOTUNE_TUNE_NICE": "-7"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["job"] == 0
    assert -7 in seen["tuner"]  # the thread that waits for the job, and the compile's


JOB_CGROUP = """
import json, time
from pathlib import Path
time.sleep(0.5)  # the start's weights go in within ~0.1 s of the job's first instruction
print(json.dumps(Path("/proc/self/cgroup").read_text()))
"""


@pytest.mark.parametrize("weight", ["8", "1"])
def test_a_job_started_beside_a_busy_node_gets_its_weights_from_its_start(
    constant_policy: Callable[..., Path], isolated: dict[str, str], tmp_path: Path, weight: str
) -> None:
    """With ``guard_start_weight`` above 1 the job's roles are at that weight before its
    telemetry is up (here at once: ``isolated`` counts any node as busy, min contention 0),
    journalled and logged as any change, and restored when it ends; at 1, untouched until the
    policy's first change. The job ends before the telemetry is up, or just after: the policy
    (1x everywhere) never moves a knob."""
    log = tmp_path / "decisions.jsonl"
    cmd = [*TUNE, "--model", str(constant_policy()), "--no-view", "--decisions", str(log)]
    r = subprocess.run(
        [*cmd, "--", sys.executable, "-c", JOB_CGROUP],
        env={**isolated, "AUTOTUNE_GUARD_START_WEIGHT": weight},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    sets = [d for d in _decisions(log) if d["event"] == "set"]
    restores = {str(d["knob"]) for d in _decisions(log) if d["event"] == "restore"}
    d = _cgroup_dir(isolated)
    assert d is None or not d.exists() or not any(d.iterdir())  # every role cgroup removed
    if weight == "1":
        assert sets == [] and isolated["AUTOTUNE_CGROUP_PARENT"] not in seen
        return
    assert [(s["knob"], s["new"]) for s in sets] == [
        ("weight.trainer", 8.0),
        ("weight.loader", 8.0),
    ]
    assert all(str(s["reason"]).startswith("start: other tasks took") for s in sets)
    assert {"weight.trainer", "weight.loader"} <= restores
    if d is not None:  # cgroup v1 weights: the job ran in its role's cgroup from its start
        assert f"/{isolated['AUTOTUNE_CGROUP_PARENT']}/" in seen


def test_the_live_view_shows_the_starts_weights(
    constant_policy: Callable[..., Path], isolated: dict[str, str], tmp_path: Path
) -> None:
    """The start's weights are set before the live view opens (it waits for the telemetry);
    the view lists them among its decisions all the same. The view draws on a terminal: the
    command's stdout is a pseudo-terminal here, its stderr (the decision lines) a file.

    The job lasts until the view has drawn the line (or 60 s): a job that ended before the
    telemetry was up would have no view at all, and beside a busy node (make test's workers)
    the compile can take longer than any fixed sleep."""
    import pty
    import select

    main, sub = pty.openpty()
    err = tmp_path / "stderr"
    done = tmp_path / "seen"
    job = (
        "import os, time\n"
        "end = time.monotonic() + 60\n"
        f"while not os.path.exists({str(done)!r}) and time.monotonic() < end:\n"
        "    time.sleep(0.05)\n"
    )
    cmd = [*TUNE, "--model", str(constant_policy()), "--interval", "100"]
    with err.open("w") as e:
        p = subprocess.Popen(
            [*cmd, "--", sys.executable, "-c", job],
            env={**isolated, "AUTOTUNE_GUARD_START_WEIGHT": "8", "COLUMNS": "400"},
            stdin=subprocess.DEVNULL,
            stdout=sub,
            stderr=e,
        )
    os.close(sub)
    want = "weight.trainer trainer 1 → 8  start: other tasks took"
    shown = b""
    while True:  # read until the command exits and its terminal closes
        if want.encode() in shown and not done.exists():
            done.touch()  # seen: the job may end now
        ready, _, _ = select.select([main], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert p.wait(timeout=60) == 0, _text(err)
    assert "start: other tasks took" in _text(err)  # the decision lines, as always
    text = shown.decode(errors="replace")
    assert want in text, text[-2000:]

"""The node service on real jobs in a real cgroup v1 slice: jobs come and go, each tuned and
restored; `autotune status` reads what it does; signals, a second service, a taken port, a slice
that disappears, a job killed mid-interval and a service killed with -9 leave nothing changed."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
from service_helpers import Jobs, Service, cpu_cgroup, journal_sessions, wait_for

from autotune.actuators import DecisionLog

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]


def _weight(service: Service, pid: int) -> float | None:
    job = service.job(pid)
    return None if job is None else job["knobs"].get("weight.trainer")


def _in(group: Path, pid: int) -> bool:
    return cpu_cgroup(pid) == "/" + group.name


def test_jobs_come_and_go_and_everything_is_restored_on_sigterm(
    service: Service, jobs: Jobs, policy: Path, slice_dir: Path, env: dict[str, str]
) -> None:
    svc = service.start(policy, slice_dir)
    long = jobs.start(slice_dir, seconds=300)
    # Its own warm-up, then the policy's 2x weight: the job moves into the tuner's cgroup.
    assert wait_for(lambda: _weight(service, long.pid) == 2.0)
    assert (cpu_cgroup(long.pid) or "").startswith(f"/{env['AUTOTUNE_CGROUP_PARENT']}/")
    # A second job comes while the first is tuned: a warm-up and a guard of its own.
    short = jobs.start(slice_dir, seconds=40)
    assert wait_for(lambda: _weight(service, short.pid) == 2.0)
    state = service.state()
    assert state is not None and state["pid"] == svc.pid and state["totals"]["jobs_seen"] == 2
    assert {j["guard"] for j in state["jobs"]} <= {"trying", "tuned"}
    # Both on BPF: one set of programs in the service, a job slot each (a second job got /proc).
    assert [j["telemetry"] for j in state["jobs"]] == ["bpf", "bpf"]

    st = service.run("status")
    assert st.returncode == 0, st.stderr
    assert str(long.pid) in st.stdout and "weight.trainer" in st.stdout
    doc = json.loads(service.run("status", "--json").stdout)
    (running,) = doc["services"]
    assert running["cgroup"] == str(slice_dir)
    assert any(d["knob"] == "weight.trainer" and d["reason"] for d in running["recent"])

    # The short job ends: forgotten, its session gone from the journal; the long one is tuned on.
    assert wait_for(lambda: service.job(short.pid) is None and short.poll() is not None)
    assert _weight(service, long.pid) == 2.0
    assert len(journal_sessions(env)) == 1

    # A job that starts later gets its own warm-up.
    late = jobs.start(slice_dir, seconds=120)
    assert wait_for(lambda: service.job(late.pid) is not None)
    assert wait_for(lambda: (service.job(late.pid) or {}).get("telemetry") == "bpf")

    svc.send_signal(signal.SIGTERM)
    assert svc.wait(60) == 0
    err = service.stderr(svc)
    assert "knobs were restored" in err and "Traceback" not in err
    # Every job wrote to the slice's one decision log: each line says whose it is.
    (log,) = Path(env["AUTOTUNE_STATE_DIR"]).glob("decisions-*.jsonl")
    sets = [d for d in DecisionLog.read(log) if d["event"] == "set"]
    assert {long.pid, short.pid} <= {d["pid"] for d in sets} <= {long.pid, short.pid, late.pid}
    # Both running jobs are back in the slice, nothing journalled, no tuner cgroups, no state.
    assert _in(slice_dir, long.pid) and _in(slice_dir, late.pid)
    assert journal_sessions(env) == {}
    parent = Path("/sys/fs/cgroup/cpu") / env["AUTOTUNE_CGROUP_PARENT"]
    assert not parent.exists() or not any(p.is_dir() for p in parent.iterdir())
    assert service.state() is None
    gone = service.run("status")
    assert gone.returncode == 3
    assert gone.stderr.strip().splitlines() == [gone.stderr.strip()]
    assert "no autotune service is running" in gone.stderr


def test_a_second_service_on_the_slice_is_refused(
    service: Service, policy: Path, slice_dir: Path
) -> None:
    first = service.start(policy, slice_dir)
    assert wait_for(lambda: service.state() is not None)
    second = service.start(policy, slice_dir)
    assert second.wait(60) == 2
    err = service.stderr(second).strip()
    assert len(err.splitlines()) == 1 and f"(PID {first.pid}) already tunes {slice_dir}" in err
    assert first.poll() is None


def test_a_taken_metrics_port_is_one_line_and_changes_nothing(
    service: Service, jobs: Jobs, policy: Path, slice_dir: Path, env: dict[str, str]
) -> None:
    job = jobs.start(slice_dir, seconds=60)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        svc = service.start(policy, slice_dir, "--metrics-port", str(port))
        assert svc.wait(60) == 2
    err = service.stderr(svc).strip()
    assert err == (
        f"autotune: metrics port {port} is taken (another process listens on it); "
        "choose another with --metrics-port"
    )
    assert _in(slice_dir, job.pid) and journal_sessions(env) == {} and service.state() is None


def test_the_slice_disappearing_restores_and_ends_with_one_line(
    service: Service, jobs: Jobs, policy: Path, slice_dir: Path, env: dict[str, str]
) -> None:
    svc = service.start(policy, slice_dir)
    job = jobs.start(slice_dir, seconds=120)
    assert wait_for(lambda: _weight(service, job.pid) == 2.0)
    # The tuned job sits in the tuner's cgroup: the slice is empty and an operator removes it.
    slice_dir.rmdir()
    assert svc.wait(60) == 2
    err = service.stderr(svc)
    assert err.strip().splitlines()[-1] == (
        f"autotune: the cgroup {slice_dir} disappeared while tuned; every job's knobs were "
        "restored and the service stopped"
    )
    assert "Traceback" not in err
    # Its origin is gone, so the job goes back to the hierarchy's root, at the default weight.
    assert cpu_cgroup(job.pid) == "/" and journal_sessions(env) == {}


def test_a_job_killed_mid_interval_is_forgotten_and_the_service_goes_on(
    service: Service, jobs: Jobs, policy: Path, slice_dir: Path, env: dict[str, str]
) -> None:
    svc = service.start(policy, slice_dir)
    victim = jobs.start(slice_dir, seconds=120, threads=2)
    other = jobs.start(slice_dir, seconds=120)
    assert wait_for(lambda: _weight(service, victim.pid) == 2.0)
    victim.kill()
    victim.wait()
    assert wait_for(lambda: service.job(victim.pid) is None)
    assert svc.poll() is None and wait_for(lambda: service.job(other.pid) is not None)
    assert all(
        str(victim.pid) not in json.dumps(s["target"]) for s in journal_sessions(env).values()
    )
    svc.send_signal(signal.SIGINT)
    assert svc.wait(60) == 0
    assert "Traceback" not in service.stderr(svc)
    assert _in(slice_dir, other.pid) and journal_sessions(env) == {}


def test_killed_with_sigkill_the_next_service_restores_first(
    service: Service, jobs: Jobs, policy: Path, slice_dir: Path, env: dict[str, str]
) -> None:
    first = service.start(policy, slice_dir)
    job = jobs.start(slice_dir, seconds=120)
    assert wait_for(lambda: _weight(service, job.pid) == 2.0)
    first.send_signal(signal.SIGKILL)
    first.wait()
    # Left changed: the job in the tuner's cgroup, the session in the journal, a stale state.
    assert not _in(slice_dir, job.pid) and len(journal_sessions(env)) == 1
    assert service.run("status").returncode == 3

    second = service.start(policy, slice_dir)
    assert wait_for(lambda: "restored 1 session(s)" in service.stderr(second))
    assert wait_for(lambda: _weight(service, job.pid) == 2.0)  # tuned anew, from the default
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0
    assert _in(slice_dir, job.pid) and journal_sessions(env) == {}


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--follow", "--pid", str(os.getpid())], "give --cgroup PATH|SLICE only"),
        (["--metrics-port", "9999", "--cgroup", "x.slice"], "add --follow"),
        (["--follow", "--cgroup", "no-such-autotune.slice"], "no cgroup named"),
    ],
)
def test_bad_service_options_are_one_line(
    service: Service, policy: Path, args: list[str], line: str
) -> None:
    r = service.run("tune", "--no-view", "--model", str(policy), *args)
    assert r.returncode == 2 and line in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

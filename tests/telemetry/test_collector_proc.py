"""The /proc fallback on a real job, the non-root path, progress, GPU absence and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from telemetry_kit import Job, LoopDisk, touch_uncached

from autotune.errors import UserError
from autotune.roles import ROLE_INDEX, Role
from autotune.target import Target
from autotune.telemetry import procread
from autotune.telemetry.collector import open_collector
from autotune.telemetry.gpu import GpuCollector
from autotune.telemetry.progress import ProgressServer
from autotune.telemetry.sample import B, C

TRAINER, LOADER = ROLE_INDEX[Role.TRAINER], ROLE_INDEX[Role.LOADER]
TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[2]


def test_fallback_fills_the_same_sample_and_names_what_it_lacks(job: Job) -> None:
    with open_collector(job.target, prefer_bpf=False) as col:
        assert col.source == "proc"
        assert {"runq_hist", "block_lat_hist", "pgcache_miss", "ra_sync", "other_nvcsw"} <= (
            col.missing
        )
        stat0 = Path(f"/proc/{job.proc.pid}/stat").read_text()
        samples = [col.sample()]
        _, spin = job.sample_while(col, "spin 1.0 2")
        samples += spin
        assert not any(s.roles[LOADER].any() for s in spin)
        assert max(s.get(Role.TRAINER, "threads") for s in spin) == 3
        job.send("fork 30")
        time.sleep(0.3)
        forked = col.sample()
        stat1 = Path(f"/proc/{job.proc.pid}/stat").read_text()
        samples.append(forked)

    assert forked.get(Role.LOADER, "threads") == 1
    assert forked.get(Role.LOADER, "oncpu_ns") > 0
    for s in samples:
        assert s.source == "proc"
        assert s.missing == col.missing
        assert not s.runq_hist.any()  # named missing, not measured zero
    # The trainer's on-CPU time against utime + stime over the same span.
    cpu = [sum(int(x) for x in t[t.rindex(")") + 2 :].split()[11:13]) for t in (stat0, stat1)]
    ours = sum(int(s.roles[TRAINER, C["oncpu_ns"]]) for s in samples)
    assert abs(ours - (cpu[1] - cpu[0]) * TICK_NS) <= max(0.1 * ours, 50_000_000)
    assert sum(int(s.roles[TRAINER, C["runq_wait_ns"]]) for s in samples) >= 0
    assert sum(int(s.roles[TRAINER, C["nvcsw"]] + s.roles[TRAINER, C["nivcsw"]]) for s in samples)


@pytest.mark.root
def test_fallback_block_counters_from_diskstats(job: Job, loopdisk: LoopDisk) -> None:
    with open_collector(job.target, prefer_bpf=False) as col:
        loopdisk.drop_cache()
        col.sample()
        _, samples = job.sample_while(col, f"read {loopdisk.data}")
    read = sum(
        int(s.devices[loopdisk.name].counters[B["read_bytes"]])
        for s in samples
        if loopdisk.name in s.devices
    )
    assert read >= loopdisk.data.stat().st_size
    assert all(not d.lat_hist.any() for s in samples for d in s.devices.values())


NON_ROOT = textwrap.dedent(
    """
    import os, sys
    from autotune.errors import NotPermitted
    from autotune.target import Target
    from autotune.telemetry.collector import open_collector
    import autotune.telemetry.gpu, pynvml  # imported while the interpreter's files are readable
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
    target = Target.launch(["sleep", "5"])
    try:
        open_collector(target, require_bpf=True)
    except NotPermitted as e:
        print("refused:", e)
    col = open_collector(target)
    s = col.sample()
    print("source:", col.source, s.source)
    col.close()
    target.process.kill()
    """
)


@pytest.mark.root
def test_fallback_major_faults_from_each_process(job: Job, loopdisk: LoopDisk) -> None:
    """Major faults from /proc/<pid>/stat (each kept open and read again): the trainer's are its
    process's."""
    with open_collector(job.target, prefer_bpf=False) as col:
        samples, faults = touch_uncached(job, col, loopdisk)
    assert sum(s.get(Role.TRAINER, "majflt") for s in samples) == faults
    assert sum(s.get(Role.LOADER, "majflt") for s in samples) == 0


def test_a_kept_stat_file_is_closed_when_its_process_is_gone() -> None:
    files = procread.StatFiles()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        budget = procread.StatFiles._budget
        first = files.read(proc.pid)
        assert first is not None and first.state in "RS"
        assert procread.StatFiles._budget == budget - 1  # one descriptor kept
        assert files.read(proc.pid) is not None  # read again through it
    finally:
        proc.kill()
        proc.wait()
    # Reaped: the kept file reads nothing (a reused PID would be another process) and is closed.
    assert files.read(proc.pid) is None
    assert procread.StatFiles._budget == budget
    files.close()


def test_non_root_falls_back_with_one_warning_line() -> None:
    r = subprocess.run(
        [sys.executable, "-c", NON_ROOT], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert r.returncode == 0, r.stderr
    assert "refused: BPF telemetry unavailable: loading BPF programs needs root" in r.stdout
    assert "source: proc proc" in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "BPF telemetry unavailable" in lines[0], r.stderr


JOB_REPORTING = textwrap.dedent(
    """
    import sys, time, autotune.client as c
    sys.stdin.readline()
    for _ in range(50):
        c.report(samples=8, steps=1)
        time.sleep(0.01)
    """
)


def test_progress_from_the_client_and_the_proxy_without_it() -> None:
    with ProgressServer() as progress:
        env = {**os.environ, **progress.env}
        proc = subprocess.Popen(
            [sys.executable, "-c", JOB_REPORTING], stdin=subprocess.PIPE, env=env, text=True
        )
        target = Target.from_pid(proc.pid)
        with open_collector(target, progress=progress, prefer_bpf=False) as col:
            before = col.sample()
            assert before.progress_source == "proxy"  # nothing reported yet
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.close()
            samples = []
            while proc.poll() is None:
                time.sleep(0.1)
                samples.append(col.sample())
            time.sleep(0.2)
            samples.append(col.sample())
    sources = [s.progress_source for s in samples]
    # The proxy until the job's first report; from then on what it reported, all of it.
    first = sources.index("client")
    assert set(sources[:first]) <= {"proxy"} and set(sources[first:]) == {"client"}
    assert sum(s.progress_samples for s in samples[first:]) == 50 * 8
    assert sum(s.progress_steps for s in samples[first:]) == 50


def test_gpu_absent_is_a_flag_not_zeros() -> None:
    gpu = GpuCollector()
    try:
        present, util, mem = gpu.read()
        if gpu.present:  # a GPU node: real figures
            assert present and 0.0 <= util <= 1.0 and 0.0 <= mem <= 1.0
        else:
            assert (present, util, mem) == (False, 0.0, 0.0)
            assert gpu.reason
    finally:
        gpu.close()


def test_bad_interval_and_dead_target() -> None:
    target = Target.launch(["sleep", "30"])
    try:
        for bad in (0.01, 6.0):
            with pytest.raises(UserError, match="bad interval"):
                open_collector(target, interval_s=bad, prefer_bpf=False)
    finally:
        assert target.process is not None
        target.process.kill()
        target.wait(timeout=30)
    with pytest.raises(UserError, match="is not running"):
        open_collector(target, prefer_bpf=False)


def test_block_sum_is_the_sum_of_devices(job: Job) -> None:
    with open_collector(job.target, prefer_bpf=False) as col:
        col.sample()
        subprocess.run(["sync"], check=False)
        time.sleep(0.3)
        s = col.sample()
    summed = sum((d.counters for d in s.devices.values()), np.zeros(4, np.int64))
    assert (s.block == summed).all()

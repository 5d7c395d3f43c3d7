"""The progress channel between a real job process and the tuner: nothing lost, knob delivered."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from autotune.telemetry.progress import ProgressCounts, ProgressServer

JOB = textwrap.dedent(
    """
    import time, autotune.client as c
    for i in range(200):
        c.report(samples=32, steps=1)
        time.sleep(0.002)
    deadline = time.time() + 5
    while c.prefetch_depth() is None and time.time() < deadline:
        c.report(samples=0, steps=0)
        time.sleep(0.01)
    print(c.prefetch_depth())
    """
)


def _job_told_depth(
    code: str, depth: int, timeout: float
) -> tuple[subprocess.Popen[str], str, ProgressCounts]:
    """Run ``code`` as a job reporting to a real ProgressServer, ask it for prefetch ``depth``
    once it has connected, and wait for it: the job, its stdout, and the server's counts."""
    with ProgressServer() as srv:
        env = {**os.environ, **srv.env}
        job = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
        )
        deadline = time.time() + 10
        while not srv.clients and time.time() < deadline:
            time.sleep(0.01)
        assert srv.set_prefetch(depth) == 1
        out, _ = job.communicate(timeout=timeout)
        return job, out, srv.take()


def test_reports_arrive_in_full_and_prefetch_reaches_the_job() -> None:
    job, out, counts = _job_told_depth(JOB, 4, timeout=30)
    assert job.returncode == 0
    assert counts.samples == 200 * 32
    assert counts.steps == 200
    assert counts.pids == {job.pid}
    assert out.strip() == "4"


def test_client_is_a_no_op_without_the_socket() -> None:
    code = (
        "import autotune.client as c; c.report(samples=5); print(c.enabled(), c.prefetch_depth(3))"
    )
    env = {k: v for k, v in os.environ.items() if k != "AUTOTUNE_PROGRESS"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.stdout.split() == ["False", "3"]


THREADS_JOB = textwrap.dedent(
    """
    import os, sys, torch, autotune.client as c
    if sys.argv[1] == "own":
        torch.set_num_threads(1)  # the job's own choice: never raised
    cpus = os.sched_getaffinity(0)
    it = c.count_batches([torch.zeros(4, 1)] * 3)
    seen = []
    for narrow in (cpus, {min(cpus)}, cpus):
        os.sched_setaffinity(0, narrow)  # as the tuner's cpus.trainer does, between batches
        next(it)
        seen.append(torch.get_num_threads())
    print(*seen)
    """
)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to narrow")
@pytest.mark.parametrize("threads", ["default", "own"])
def test_torch_threads_follow_the_cpus_the_tuner_gives_the_trainer(threads: str) -> None:
    # Pinned to one CPU mid-run with torch's threads left at two, cnn ran 80-90 % slower.
    n = len(os.sched_getaffinity(0))
    with ProgressServer() as srv:
        r = subprocess.run(
            [sys.executable, "-c", THREADS_JOB, threads],
            env={**os.environ, **srv.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    want = [n, 1, n] if threads == "default" else [1, 1, 1]
    assert [int(x) for x in r.stdout.split()] == want
    # Outside autotune nothing changes: the threads stay as torch had them.
    env = {k: v for k, v in os.environ.items() if k != "AUTOTUNE_PROGRESS"}
    r = subprocess.run(
        [sys.executable, "-c", THREADS_JOB, threads], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert [int(x) for x in r.stdout.split()] == ([n, n, n] if threads == "default" else [1, 1, 1])


PINNED_AFTER_IMPORT = textwrap.dedent(
    """
    import os, torch, autotune.client as c
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # the tuner, after torch loaded, before a batch
    it = c.count_batches([torch.zeros(4, 1)] * 2)
    next(it)
    first = torch.get_num_threads()
    os.sched_setaffinity(0, cpus)
    next(it)
    print(first, torch.get_num_threads())
    """
)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to narrow")
def test_a_trainer_pinned_before_its_first_batch_runs_no_more_threads_than_cpus() -> None:
    # torch counts its threads as it loads; a pin between then and the first batch left two
    # threads on one CPU, and the first look took that for the job's own choice.
    n = len(os.sched_getaffinity(0))
    with ProgressServer() as srv:
        r = subprocess.run(
            [sys.executable, "-c", PINNED_AFTER_IMPORT],
            env={**os.environ, **srv.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    assert [int(x) for x in r.stdout.split()] == [1, n]


def test_counts_carry_the_time_between_the_reports_that_bound_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr("autotune.telemetry.progress.time.monotonic", lambda: clock[0])

    def report_at(t: float) -> None:
        clock[0] = t
        srv._handle(b"P 7 64 1", "")

    with ProgressServer() as srv:
        report_at(100.10)
        first = srv.take()  # nothing before it: no span
        report_at(100.30)
        report_at(100.45)
        second = srv.take()
        third = srv.take()  # no report in it
        report_at(101.60)
        fourth = srv.take()  # the report before it is two takes back: no span
        report_at(101.80)
        fifth = srv.take()
    assert first.samples == 64 and first.span_s is None
    assert second.samples == 128 and second.span_s == pytest.approx(0.35)
    assert third.reports == 0 and third.span_s is None
    assert fourth.span_s is None
    assert fifth.span_s == pytest.approx(0.20)


EPOCHS_JOB = textwrap.dedent(
    """
    import gc, multiprocessing, time, torch, autotune.client as c
    from torch.utils.data import DataLoader, IterableDataset

    class Endless(IterableDataset):
        def __iter__(self):
            while True:
                yield torch.zeros(1024)

    gc.disable()  # only reference counts free the loader, as between two collections
    deadline = time.time() + 20
    loader = DataLoader(Endless(), batch_size=8, num_workers=2)
    batches = c.count_batches(loader)
    for batch in batches:
        if c.prefetch_depth() == 4 or time.time() > deadline:
            break
    for _ in range(3):  # the depth reaches the loader between batches
        next(batches)
    del batches, loader, batch
    print(c.prefetch_depth(), len(multiprocessing.active_children()))
    """
)


def test_a_loader_whose_prefetch_depth_was_set_is_freed_with_its_last_reference() -> None:
    """A job that drops its DataLoader (an epoch's end, a new phase) gets its workers back at
    once: the depth's wrapper left no reference cycle that kept the iterator and its workers
    alive until a garbage collection, which then stalled the job 5 s per worker."""
    job, out, _ = _job_told_depth(EPOCHS_JOB, 4, timeout=60)
    assert job.returncode == 0
    assert out.split() == ["4", "0"]  # the depth arrived; no worker is left running

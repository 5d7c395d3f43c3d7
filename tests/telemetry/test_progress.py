"""The progress channel between a real job process and the tuner: nothing lost, knob delivered."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from autotune.telemetry.progress import ProgressServer

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


def test_reports_arrive_in_full_and_prefetch_reaches_the_job() -> None:
    with ProgressServer() as srv:
        env = {**os.environ, **srv.env}
        job = subprocess.Popen(
            [sys.executable, "-c", JOB], env=env, stdout=subprocess.PIPE, text=True
        )
        deadline = time.time() + 10
        while not srv.clients and time.time() < deadline:
            time.sleep(0.01)
        assert srv.set_prefetch(4) == 1
        out, _ = job.communicate(timeout=30)
        counts = srv.take()
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

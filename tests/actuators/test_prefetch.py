"""The DataLoader prefetch knob, end to end with a real PyTorch job using autotune.client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.actuators import Actuators, DecisionLog
from autotune.config import Settings
from autotune.target import Target
from autotune.telemetry.progress import ProgressServer

LOADER_JOB = Path(__file__).with_name("loader_job.py")


def _until(cond: Callable[[], bool], step: Callable[[], None], limit_s: float = 60) -> bool:
    """Call ``step`` until ``cond`` holds (the limit only bounds a broken run)."""
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        step()
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_prefetch_reaches_the_job_is_acknowledged_and_restored(settings: Settings) -> None:
    with ProgressServer() as srv:
        job = subprocess.Popen(
            [sys.executable, str(LOADER_JOB)], env={**os.environ, **srv.env}, cwd="/"
        )
        try:
            assert _until(lambda: bool(srv.clients), lambda: None), "the job never reported"
            target = Target.from_pid(job.pid)
            with Actuators(target, settings, progress=srv, log=DecisionLog(console=False)) as act:
                assert "prefetch.loader" not in act.disabled
                assert "prefetch.loader" not in act.inert()  # a process has reported
                act.apply({"prefetch.loader": 4.0}, reason="test")
                assert _until(lambda: srv.prefetch_ack == 4, act.follow), "no acknowledgement"
                assert act.current()["prefetch.loader"] == 4.0
                assert "prefetch.loader" not in act.disabled
                assert settings.journal.exists()
            # Restored to PyTorch's default depth (the job never told us another), acknowledged.
            assert _until(lambda: srv.prefetch_ack == 2, lambda: None), "not restored"
        finally:
            job.kill()
            job.wait()


def test_without_a_progress_channel_the_knob_is_disabled(settings: Settings) -> None:
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Actuators(Target.from_pid(job.pid), settings, log=DecisionLog(console=False)) as act:
            assert "no progress channel" in act.disabled["prefetch.loader"]
            act.apply({"prefetch.loader": 8.0})
            assert "prefetch.loader" not in act.current()
    finally:
        job.kill()
        job.wait()


def test_before_any_job_process_reports_the_knob_is_inert(settings: Settings) -> None:
    # The tuner holds an inert knob rather than log and canary a change nobody receives.
    with ProgressServer() as srv:
        job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            target = Target.from_pid(job.pid)
            with Actuators(target, settings, progress=srv, log=DecisionLog(console=False)) as act:
                assert act.inert()["prefetch.loader"] == "no job process has reported yet"
                srv.clients.add("\0autotune-test-client")  # what a first report adds
                assert "prefetch.loader" not in act.inert()
        finally:
            job.kill()
            job.wait()

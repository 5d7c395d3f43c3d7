"""autotune.trace.recorder: the loop's real-time priority is given up when rows overrun."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.target import Target
from autotune.telemetry.collector import open_collector
from autotune.telemetry.sample import Sample
from autotune.trace import meta as trace_meta
from autotune.trace.recorder import OVERRUNS_BEFORE_NORMAL, ReadBack, Recording
from autotune.trace.writer import TraceWriter


@pytest.fixture
def sleeper() -> Iterator[Target]:
    p = subprocess.Popen(["sleep", "120"])
    try:
        yield Target.from_pid(p.pid)
    finally:
        p.kill()
        p.wait()


def _record(target: Target, out: Path, interval_s: float, duration_s: float) -> list[int]:
    """Record ``target`` at SCHED_FIFO 1 with the real /proc collector; the scheduling policy
    of the loop's thread at each row, then after the loop."""
    collector = open_collector(target, prefer_bpf=False)
    writer = TraceWriter(out)
    writer.begin(
        trace_meta.build(
            target=target.description,
            command=None,
            interval_s=interval_s,
            explore=False,
            source=collector.source,
        )
    )
    policies: list[int] = []

    def on_row(_: Sample) -> None:
        policies.append(os.sched_getscheduler(0))

    try:
        Recording(
            writer=writer,
            collector=collector,
            target=target,
            knobs=ReadBack(dict),
            interval_s=interval_s,
            duration_s=duration_s,
            on_row=on_row,
            rt_priority=1,
        ).run()
    finally:
        collector.close()
        writer.close()
    return [*policies, os.sched_getscheduler(0)]


@pytest.mark.root
def test_a_loop_that_cannot_keep_its_interval_leaves_real_time(
    sleeper: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A /proc row takes far longer than 1 µs: every row overruns, and a real-time thread would
    # otherwise run back to back for the whole recording.
    with caplog.at_level(logging.WARNING, logger="autotune.trace"):
        policies = _record(sleeper, tmp_path / "t.parquet", interval_s=1e-6, duration_s=0.5)
    rows, after = policies[:-1], policies[-1]
    assert rows[:OVERRUNS_BEFORE_NORMAL] == [os.SCHED_FIFO] * OVERRUNS_BEFORE_NORMAL
    assert len(rows) > OVERRUNS_BEFORE_NORMAL + 1
    assert set(rows[OVERRUNS_BEFORE_NORMAL:]) == {os.SCHED_OTHER}
    assert after == os.SCHED_OTHER
    assert [r.getMessage() for r in caplog.records if "leaves real-time" in r.getMessage()]


@pytest.mark.root
def test_a_loop_that_keeps_its_interval_stays_real_time(
    sleeper: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="autotune.trace"):
        policies = _record(sleeper, tmp_path / "t.parquet", interval_s=0.1, duration_s=0.5)
    rows, after = policies[:-1], policies[-1]
    assert len(rows) >= 3 and set(rows) == {os.SCHED_FIFO}
    assert after == os.SCHED_OTHER  # put back on the way out
    assert not [r for r in caplog.records if "leaves real-time" in r.getMessage()]

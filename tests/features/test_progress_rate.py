"""The progress rate the envs' reward and the online guard share."""

from __future__ import annotations

import pytest

from autotune.features import progress_rate
from autotune.roles import ROLE_INDEX, Role
from autotune.telemetry.sample import PROGRESS_CLIENT, PROGRESS_PROXY, C, Sample


def _sample(interval_s: float = 0.5) -> Sample:
    s = Sample(t=1.0, t_wall=1.0, interval_s=interval_s, ncpus=2)
    s.roles[ROLE_INDEX[Role.TRAINER], C["oncpu_ns"]] = int(0.75 * interval_s * 1e9)
    return s


def test_client_reports_samples_else_steps() -> None:
    s = _sample()
    s.progress_source = PROGRESS_CLIENT
    s.progress_samples, s.progress_steps = 200.0, 5.0
    assert progress_rate(s) == pytest.approx(400.0)
    s.progress_samples = 0.0
    assert progress_rate(s) == pytest.approx(10.0)  # steps, when the job counts no samples


def test_without_client_the_trainer_cpu_is_the_proxy() -> None:
    s = _sample()
    s.progress_source = PROGRESS_PROXY
    s.progress_samples = 200.0  # ignored: not the job's own report
    assert progress_rate(s) == pytest.approx(0.75)


def test_a_zero_interval_does_not_divide_by_zero() -> None:
    s = _sample(interval_s=0.0)
    assert progress_rate(s) == 0.0


def test_reports_are_divided_by_the_time_between_the_reports_that_bound_them() -> None:
    # Batches of 64 every 0.14 s (457/s): 3 batches end in one 500 ms interval, 4 in the next.
    # Over the interval that reads 384 and 512/s; over the span of the reports, 457 both times.
    rates = []
    for batches in (3, 4):
        s = _sample()
        s.progress_source = PROGRESS_CLIENT
        s.progress_samples, s.progress_span_s = 64.0 * batches, 0.14 * batches
        rates.append(progress_rate(s))
    assert rates == pytest.approx([64 / 0.14] * 2)


def test_a_span_shorter_than_half_the_interval_is_not_trusted() -> None:
    s = _sample()
    s.progress_source = PROGRESS_CLIENT
    s.progress_samples, s.progress_span_s = 64.0, 0.05
    assert progress_rate(s) == pytest.approx(128.0)  # per interval, as without a span
    s.progress_span_s = None
    assert progress_rate(s) == pytest.approx(128.0)


def test_the_startup_proxy_reads_a_busy_process_at_one_cpu_second_per_second() -> None:
    """StartupProxy (the guard's warm-up from /proc while the telemetry compiles) measures what
    the telemetry's proxy does: on-CPU seconds per second of the job's processes."""
    import subprocess
    import sys
    import time

    from autotune.features.progress import StartupProxy

    # Each says so once the interpreter's own start is over (CI saw the sleeper's first rate at
    # 0.1: its start-up's CPU, when the proxy began before it).
    spin = "import time\nprint(flush=True)\nend = time.time() + 3\nwhile time.time() < end: pass"
    idle = "import time\nprint(flush=True)\ntime.sleep(3)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        for code in (spin, idle)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            p.stdout.readline()
        busy, still = (StartupProxy([p.pid], 0.2) for p in procs)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            busy.poll()
            still.poll()
            time.sleep(0.05)
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert len(busy.rates) >= 5 and len(still.rates) >= 5
    # A spinning process is on one CPU at most, and on it most of the time unless the machine
    # is crowded (the bound is loose: the unit is what is checked, not the machine's load).
    assert 0.2 < sorted(busy.rates)[len(busy.rates) // 2] <= 1.1
    assert max(still.rates) < 0.08  # one 10 ms tick in a 0.2 s window at most
    gone = StartupProxy([procs[0].pid], 0.0)
    gone.poll()
    assert gone.rates == []  # a process that is gone gives no rate

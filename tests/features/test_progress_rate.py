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

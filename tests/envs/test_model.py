"""The replay model's physics: directions and magnitudes it must get right."""

from __future__ import annotations

import math

import pytest

from autotune.envs.model import Demand, Knobs, Params, cores_for, cpu_rate, respond

# A PyTorch-like job on 2 CPUs: quiet it makes 23k samples/s, the trainer doing 90% of the work.
A_SUM = 2 / 23_000
QUIET = Demand(A_SUM * 0.9, A_SUM * 0.1, 0.0, 128.0, 0.0, 2.0, 2.0)
NOISY = Demand(A_SUM * 0.9, A_SUM * 0.1, 0.0, 128.0, 2.0, 2.0, 2.0)  # stress-ng --cpu 2 beside it
TWO_TASKS = Params(u_trainer=2.0, u_loader=1.0)


def test_quiet_node_runs_at_capacity_whatever_the_weights() -> None:
    for w in (0.25, 1.0, 8.0):
        r = respond(QUIET, Knobs(weight_trainer=w, weight_loader=w), TWO_TASKS, 2)
        assert r.rate == pytest.approx(23_000)


def test_noisy_neighbour_matches_measured_numbers() -> None:
    # Measured on this project's VM: 23k quiet, 11.7k beside stress-ng --cpu 2, 20.7k with 8x.
    default = respond(NOISY, Knobs(), TWO_TASKS, 2).rate
    boosted = respond(NOISY, Knobs(weight_trainer=8, weight_loader=8), TWO_TASKS, 2).rate
    assert default == pytest.approx(11_700, rel=0.05)
    assert boosted == pytest.approx(20_700, rel=0.05)


def test_weight_is_monotone_under_contention() -> None:
    rates = [
        respond(NOISY, Knobs(weight_trainer=w, weight_loader=w), TWO_TASKS, 2).rate
        for w in (0.25, 0.5, 1, 2, 4, 8)
    ]
    assert rates == sorted(rates)
    assert rates[-1] < 23_000  # never above the quiet node


def test_affinity_caps_a_role() -> None:
    one_core = respond(QUIET, Knobs(cpus_trainer=0.5), TWO_TASKS, 2).rate
    assert one_core == pytest.approx(min(1 / (A_SUM * 0.9), 2 / A_SUM))
    assert one_core < respond(QUIET, Knobs(), TWO_TASKS, 2).rate


def test_cores_for_rounds_to_whole_cores_at_least_one() -> None:
    assert [cores_for(s, 2) for s in (0.25, 0.5, 0.75, 1.0)] == [1, 1, 2, 2]
    assert [cores_for(s, 64) for s in (0.25, 0.5, 0.75, 1.0)] == [16, 32, 48, 64]


def test_sequential_reads_want_big_readahead() -> None:
    stream = Demand(1e-5, 0.0, 1 << 20, 128.0, 0.0, 1.0, 0.0)  # 1 MiB per sample, in order
    p = Params(latency_s=3e-4, bandwidth=1.4e9, overlap=0.8)
    rates = [respond(stream, Knobs(readahead_kb=ra), p, 2).rate for ra in (16, 128, 1024)]
    assert rates[0] < rates[1] < rates[2]


def test_random_access_pays_for_big_readahead() -> None:
    rand = Demand(1e-5, 0.0, 4096, 16.0, 0.0, 1.0, 0.0)  # one page per sample, at random
    p = Params(latency_s=3e-4, bandwidth=1.4e9, overlap=0.5, read_exponent=1.0)
    rates = [respond(rand, Knobs(readahead_kb=ra), p, 2).rate for ra in (16, 1024, 8192)]
    assert rates[0] > rates[1] > rates[2]
    assert rates[0] / rates[2] > 5


def test_idle_interval_gets_nothing() -> None:
    idle = Demand(0.0, 0.0, 0.0, 128.0, 1.0, 0.0, 0.0)
    assert respond(idle, Knobs(), Params(), 2).rate == 0.0
    assert math.isinf(cpu_rate(idle, Knobs(), Params(), 2))

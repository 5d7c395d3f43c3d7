"""Demand per row: phases kept apart, no pooling across a split part, calibration on the
training part only."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from autotune.envs import calibrate, splits
from autotune.envs.workload import demand_columns, list_bundled, load
from autotune.telemetry.sample import B

BUNDLED = list_bundled()
pytestmark = pytest.mark.skipif(not BUNDLED, reason="no bundled workloads")


@pytest.mark.skipif("phases" not in BUNDLED, reason="needs the phases recording")
def test_phases_compute_epochs_are_kept_apart_from_loading() -> None:
    wl = load("phases")
    reading = demand_columns(wl)[:, 0] > np.log1p(50.0)  # over 50 MB/s
    ph = wl.phases()
    # Every stretch of at least 2 s without reads between reading stretches starts a phase of
    # its own within half a second of where the reads stop.
    quiet_starts = [
        i for i in range(1, len(wl) - 8) if reading[i - 1] and not reading[i : i + 8].any()
    ]
    assert quiet_starts, "the recording has compute epochs"
    for i in quiet_starts:
        changes = np.flatnonzero(np.diff(ph[max(i - 3, 0) : i + 3]))
        assert changes.size, f"no phase starts near row {i}"
    # And a row's demand comes from its own phase: a compute row reads nothing per sample.
    demands = wl.demands()
    for i in quiet_starts:
        assert demands[i + 4].read_bytes == 0.0


@pytest.mark.parametrize("name", BUNDLED[:2])
def test_no_demand_is_pooled_across_a_part_edge(name: str) -> None:
    wl = load(name)
    before = wl.demands()
    changed = copy.deepcopy(wl)
    first_test = splits.bounds(len(wl), splits.TEST)[0]
    for s in changed.samples[:first_test]:  # the training and validation rows, all of them
        s.block[B["read_bytes"]] *= 7
        s.roles *= 3
    changed._phases = wl.phases()  # the same phases: what moves is the counters alone
    after = changed.demands()
    assert after[first_test:] == before[first_test:]
    assert after[first_test - 1] != before[first_test - 1]


def test_calibration_reads_the_training_part_only() -> None:
    wl = load(BUNDLED[0])
    lo, hi = splits.bounds(len(wl), splits.TRAIN)
    rows = calibrate._rows(wl)
    assert rows.min() >= lo and rows.max() < hi
    latency, bandwidth = calibrate.device_priors(wl)
    changed = copy.deepcopy(wl)
    for s in changed.samples[hi:]:
        s.block_lat_hist[:] = 0
        s.block_lat_hist[-1] = 1_000
    assert calibrate.device_priors(changed) == (latency, bandwidth)

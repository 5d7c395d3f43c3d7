"""The figures of `record --summary`, checked against sums computed here from the samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.features import hist_quantile
from autotune.roles import ROLE_INDEX, Role
from autotune.telemetry.sample import B, C
from autotune.trace import TraceWriter, load_trace
from autotune.trace import meta as trace_meta
from autotune.trace.summary import summarize
from autotune.trace.synthetic import samples


def test_summary_figures(tmp_path: Path) -> None:
    rows = list(samples(40, seed=7))
    for i, s in enumerate(rows):  # two settings: 10 s then 0 s … exactly 20 rows each
        s.knobs = {"weight.trainer": 1.0 if i < 20 else 4.0}
    path = tmp_path / "t.parquet"
    with TraceWriter(path) as w:
        w.begin(
            trace_meta.build(target="x", command=None, interval_s=0.25, explore=True, source="bpf")
        )
        for s in rows:
            w.append(s)
    table, meta = load_trace(path)
    got = summarize(table, meta)
    duration = 40 * 0.25
    assert got.rows == 40 and got.duration_s == pytest.approx(duration)
    i = ROLE_INDEX[Role.TRAINER]
    oncpu = sum(int(s.roles[i, C["oncpu_ns"]]) for s in rows)
    assert got.roles["trainer"].cpu_cores == pytest.approx(oncpu / 1e9 / duration)
    hist = np.sum([s.runq_hist[i] for s in rows], axis=0)
    p50, p99 = hist_quantile(hist, [0.5, 0.99])[0]
    assert got.roles["trainer"].runq_p50_us == pytest.approx(2.0**p50)
    assert got.roles["trainer"].runq_p99_us == pytest.approx(2.0**p99)
    read = sum(int(s.block[B["read_bytes"]]) for s in rows)
    assert got.read_mbps == pytest.approx(read / 1e6 / duration)
    assert got.ra_sync == sum(int(s.roles[:, C["ra_sync"]].sum()) for s in rows)
    assert got.progress_total == sum(s.progress_samples for s in rows)
    assert got.progress_unit == "samples" and got.progress_source == "client"
    assert got.settings == [({"weight.trainer": 1.0}, 5.0), ({"weight.trainer": 4.0}, 5.0)]


def test_unmeasured_figures_are_none(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    with TraceWriter(path) as w:
        w.begin(
            trace_meta.build(
                target="x", command=None, interval_s=0.25, explore=False, source="proc"
            )
        )
        for s in samples(4, missing=frozenset({"runq_hist", "ra_sync", "oncpu_ns"})):
            w.append(s)
    got = summarize(*load_trace(path))
    assert got.roles["loader"].cpu_cores is None
    assert got.roles["loader"].runq_p99_us is None
    assert got.ra_sync is None
    assert got.read_mbps is not None

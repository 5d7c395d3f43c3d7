"""Sample ⇄ row: every field survives, unmeasured fields are NULL (never zero)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from autotune.features import FEATURE_NAMES, featurize
from autotune.knobs import KNOBS
from autotune.roles import ROLES
from autotune.telemetry.sample import ROLE_COUNTERS, Sample
from autotune.trace import SCHEMA, missing_columns, sample_to_row, table_to_samples
from autotune.trace.synthetic import samples


def _table(rows: list[dict[str, object]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _same(a: Sample, b: Sample) -> None:
    assert (a.t, a.t_wall, a.interval_s, a.ncpus) == (b.t, b.t_wall, b.interval_s, b.ncpus)
    np.testing.assert_array_equal(a.roles, b.roles)
    np.testing.assert_array_equal(a.runq_hist, b.runq_hist)
    np.testing.assert_array_equal(a.block, b.block)
    np.testing.assert_array_equal(a.block_lat_hist, b.block_lat_hist)
    assert a.devices.keys() == b.devices.keys()
    for name, d in a.devices.items():
        np.testing.assert_array_equal(d.counters, b.devices[name].counters)
        np.testing.assert_array_equal(d.lat_hist, b.devices[name].lat_hist)
    assert (a.progress_samples, a.progress_steps, a.progress_source) == (
        b.progress_samples,
        b.progress_steps,
        b.progress_source,
    )
    assert (a.gpu_present, a.knobs, a.source, a.missing) == (
        b.gpu_present,
        b.knobs,
        b.source,
        b.missing,
    )


def test_row_has_every_column_and_the_names_the_issue_gives() -> None:
    s = next(samples(1))
    row = sample_to_row(s)
    assert set(row) == set(SCHEMA.names)
    for r in ROLES:
        for c in ROLE_COUNTERS:
            assert row[f"{r}_{c}"] == s.get(r, c)
        assert f"{r}_runq_hist" in row
    assert {"blk_read_bytes", "blk_lat_hist", "devices", "knob_weight_trainer"} <= set(row)
    assert row["devices"][0]["name"] == "loop0"  # per-device stats, sorted by name


def test_features_are_the_observation() -> None:
    s = next(samples(1, seed=3))
    row = sample_to_row(s)
    obs = featurize(s)
    assert [row[f"f_{n}"] for n in FEATURE_NAMES] == pytest.approx(obs.tolist())


def test_round_trip_through_arrow() -> None:
    originals = list(samples(20, seed=1))
    back = table_to_samples(_table([sample_to_row(s) for s in originals]))
    assert len(back) == 20
    for a, b in zip(originals, back, strict=True):
        _same(a, b)


def test_missing_fields_are_null_not_zero_and_come_back_missing() -> None:
    gone = frozenset({"runq_wait_ns", "runq_hist", "blk_lat_hist", "loader_majflt"})
    s = next(samples(1, missing=gone))
    table = _table([sample_to_row(s)])
    for r in ROLES:
        assert table.column(f"{r}_runq_wait_ns").null_count == 1
        assert table.column(f"{r}_runq_hist").null_count == 1
        assert table.column(f"{r}_oncpu_ns").null_count == 0
    assert table.column("blk_lat_hist").null_count == 1
    assert table.column("loader_majflt").null_count == 1
    assert table.column("trainer_majflt").null_count == 0
    (back,) = table_to_samples(table)
    assert back.missing == gone
    assert back.get(ROLES[0], "runq_wait_ns") == 0  # read as 0, but named missing


def test_missing_names_map_to_columns() -> None:
    assert missing_columns(["read_bytes"]) == {"blk_read_bytes"}
    assert missing_columns(["gpu"]) == {"gpu_util", "gpu_mem"}
    assert missing_columns(["no_such_thing"]) == set()


def test_absent_gpu_and_unknown_knobs_are_null() -> None:
    s = next(samples(1))
    s.gpu_present = False
    s.knobs = {"weight.trainer": 2.0}
    row = sample_to_row(s)
    assert row["gpu_util"] is None and row["gpu_mem"] is None
    assert row["knob_weight_trainer"] == 2.0
    assert all(row[k.column] is None for k in KNOBS if k.name != "weight.trainer")
    (back,) = table_to_samples(_table([row]))
    assert back.knobs == {"weight.trainer": 2.0}


def test_columns_a_trace_lacks_read_as_missing() -> None:
    s = next(samples(1))
    table = _table([sample_to_row(s)]).drop_columns(["trainer_majflt", "blk_lat_hist"])
    (back,) = table_to_samples(table)
    assert {"trainer_majflt", "blk_lat_hist"} <= back.missing
    assert back.block_lat_hist.sum() == 0

"""The trace's columns, and the pure conversions Sample → row and rows → Samples.

One row per control interval. Raw counters keep the names of :mod:`autotune.telemetry.sample`
(``{role}_{counter}``, ``{role}_runq_hist``, ``blk_{counter}``, ``blk_lat_hist``, ``devices``);
the observation follows as ``f_{name}`` for every :data:`autotune.features.FEATURE_NAMES`; the
knob values in effect as each knob's :attr:`~autotune.knobs.Knob.column`. A field the collector
named in ``Sample.missing`` is NULL, never zero, and the ``missing`` column keeps the names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from autotune.features import FEATURE_NAMES, featurize
from autotune.knobs import KNOBS
from autotune.roles import ROLES
from autotune.telemetry.sample import (
    BLOCK_COUNTERS,
    N_SLOTS,
    ROLE_COUNTERS,
    BlockDeviceStats,
    Sample,
    zeros_hist,
    zeros_roles,
)

HIST = pa.list_(pa.int64())
DEVICE = pa.struct(
    [("name", pa.string()), *((c, pa.int64()) for c in BLOCK_COUNTERS), ("lat_hist", HIST)]
)

ROLE_COLUMNS: tuple[tuple[str, ...], ...] = tuple(
    tuple(f"{r}_{c}" for c in ROLE_COUNTERS) for r in ROLES
)
RUNQ_HIST_COLUMNS: tuple[str, ...] = tuple(f"{r}_runq_hist" for r in ROLES)
BLOCK_COLUMNS: tuple[str, ...] = tuple(f"blk_{c}" for c in BLOCK_COUNTERS)
FEATURE_COLUMNS: tuple[str, ...] = tuple(f"f_{n}" for n in FEATURE_NAMES)
KNOB_COLUMNS: tuple[str, ...] = tuple(k.column for k in KNOBS)

SCHEMA = pa.schema(
    [
        ("t", pa.float64()),
        ("t_wall", pa.float64()),
        ("interval_s", pa.float64()),
        ("ncpus", pa.int32()),
        ("source", pa.string()),
        *((c, pa.int64()) for cols in ROLE_COLUMNS for c in cols),
        *((c, HIST) for c in RUNQ_HIST_COLUMNS),
        *((c, pa.int64()) for c in BLOCK_COLUMNS),
        ("blk_lat_hist", HIST),
        ("devices", pa.list_(DEVICE)),
        ("progress_samples", pa.float64()),
        ("progress_steps", pa.float64()),
        ("progress_source", pa.string()),
        ("progress_span_s", pa.float64()),
        ("gpu_present", pa.bool_()),
        ("gpu_util", pa.float64()),
        ("gpu_mem", pa.float64()),
        *((c, pa.float64()) for c in KNOB_COLUMNS),
        *((c, pa.float32()) for c in FEATURE_COLUMNS),
        ("missing", pa.list_(pa.string())),
    ]
)


def missing_columns(missing: Iterable[str]) -> set[str]:
    """The columns to leave NULL for the names in ``Sample.missing``.

    A name may be a role counter (``runq_wait_ns``: every role's column), one role's column
    (``loader_majflt``), a block counter (``read_bytes`` or ``blk_read_bytes``), a histogram
    (``runq_hist``, ``block_lat_hist``), ``devices``, ``progress`` or ``gpu``. Names that match
    no column are kept only in the ``missing`` column.
    """
    out: set[str] = set()
    names = set(SCHEMA.names)
    for name in missing:
        if name in ROLE_COUNTERS:
            out.update(f"{r}_{name}" for r in ROLES)
        elif name == "runq_hist":
            out.update(RUNQ_HIST_COLUMNS)
        elif name in BLOCK_COUNTERS:
            out.add(f"blk_{name}")
        elif name in ("block_lat_hist", "blk_lat_hist", "lat_hist"):
            out.add("blk_lat_hist")
        elif name == "progress":
            out.update(("progress_samples", "progress_steps", "progress_span_s"))
        elif name == "gpu":
            out.update(("gpu_util", "gpu_mem"))
        elif name in names:
            out.add(name)
    return out


def _hist(values: np.ndarray) -> list[int]:
    return [int(x) for x in values.tolist()]


def sample_to_row(s: Sample) -> dict[str, Any]:
    """One trace row for a sample: raw counters, features and the knob values in ``s.knobs``."""
    row: dict[str, Any] = {
        "t": s.t,
        "t_wall": s.t_wall,
        "interval_s": s.interval_s,
        "ncpus": s.ncpus,
        "source": s.source,
    }
    for cols, values in zip(ROLE_COLUMNS, s.roles.tolist(), strict=True):
        row.update(zip(cols, values, strict=True))
    for col, hist in zip(RUNQ_HIST_COLUMNS, s.runq_hist.tolist(), strict=True):
        row[col] = hist
    row.update(zip(BLOCK_COLUMNS, s.block.tolist(), strict=True))
    row["blk_lat_hist"] = s.block_lat_hist.tolist()
    row["devices"] = [
        {
            "name": name,
            **dict(zip(BLOCK_COUNTERS, d.counters.tolist(), strict=True)),
            "lat_hist": d.lat_hist.tolist(),
        }
        for name, d in sorted(s.devices.items())
    ]
    row["progress_samples"] = s.progress_samples
    row["progress_steps"] = s.progress_steps
    row["progress_source"] = s.progress_source
    row["progress_span_s"] = s.progress_span_s
    row["gpu_present"] = s.gpu_present
    # Absent GPU: NULL, not zeros posing as data.
    row["gpu_util"] = s.gpu_util if s.gpu_present else None
    row["gpu_mem"] = s.gpu_mem if s.gpu_present else None
    for k in KNOBS:
        v = s.knobs.get(k.name)
        row[k.column] = float(v) if v is not None else None
    row.update(zip(FEATURE_COLUMNS, featurize(s).tolist(), strict=True))
    for col in missing_columns(s.missing):
        row[col] = None
    row["missing"] = sorted(s.missing)
    return row


def rows_to_batch(rows: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
    """Rows made by :func:`sample_to_row` as one record batch of :data:`SCHEMA`.

    Built column by column: about twice as fast as ``RecordBatch.from_pylist`` on these rows.
    """
    arrays = [pa.array([r.get(f.name) for r in rows], type=f.type) for f in SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def _ints(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _hists(column: pa.ChunkedArray, n: int) -> np.ndarray:
    """A list<int64> column as an ``(n, N_SLOTS)`` array; NULL or short lists read as zeros."""
    out = np.zeros((n, N_SLOTS), dtype=np.int64)
    for i, h in enumerate(column.to_pylist()):
        if h:
            m = min(len(h), N_SLOTS)
            out[i, :m] = h[:m]
    return out


def table_to_samples(table: pa.Table) -> list[Sample]:
    """Turn trace rows back into Samples (NULL counters read as 0 and stay named in missing).

    Columns a trace lacks (an older or foreign writer) read as zeros and are added to
    ``missing``, so a replay never mistakes them for measured zeros.
    """
    n = table.num_rows
    # The span is None wherever it is not known (see Sample): absent is no loss of a counter.
    skip = {*FEATURE_COLUMNS, *KNOB_COLUMNS, "missing", "progress_span_s"}
    absent = {c for c in SCHEMA.names if c not in table.column_names and c not in skip}

    def col(name: str) -> pa.ChunkedArray:
        if name in table.column_names:
            return table.column(name)
        return pa.chunked_array([pa.nulls(n, SCHEMA.field(name).type)])

    roles = np.zeros((n, len(ROLES), len(ROLE_COUNTERS)), dtype=np.int64)
    for r, cols in enumerate(ROLE_COLUMNS):
        for c, name in enumerate(cols):
            roles[:, r, c] = _ints(col(name))
    runq = np.stack([_hists(col(c), n) for c in RUNQ_HIST_COLUMNS], axis=1)
    block = np.stack([_ints(col(c)) for c in BLOCK_COLUMNS], axis=1)
    blk_hist = _hists(col("blk_lat_hist"), n)
    floats = {
        name: col(name).to_pylist()
        for name in ("t", "t_wall", "interval_s", "progress_samples", "progress_steps")
    }
    span = col("progress_span_s").to_pylist()
    gpu_util, gpu_mem = col("gpu_util").to_pylist(), col("gpu_mem").to_pylist()
    knobs = {k.name: col(k.column).to_pylist() for k in KNOBS}
    ncpus = col("ncpus").to_pylist()
    source, psource = col("source").to_pylist(), col("progress_source").to_pylist()
    gpu_present = col("gpu_present").to_pylist()
    devices, missing = col("devices").to_pylist(), col("missing").to_pylist()
    samples = []
    for i in range(n):
        gone = set(missing[i] or ()) | absent
        samples.append(
            Sample(
                t=floats["t"][i] or 0.0,
                t_wall=floats["t_wall"][i] or 0.0,
                interval_s=floats["interval_s"][i] or 0.0,
                ncpus=ncpus[i] or 0,
                roles=roles[i].copy() if n else zeros_roles(),
                runq_hist=runq[i].copy(),
                block=block[i].copy(),
                block_lat_hist=blk_hist[i].copy(),
                devices=_devices(devices[i]),
                progress_samples=floats["progress_samples"][i] or 0.0,
                progress_steps=floats["progress_steps"][i] or 0.0,
                progress_source=psource[i] or "none",
                progress_span_s=span[i],
                gpu_present=bool(gpu_present[i]),
                gpu_util=gpu_util[i] or 0.0,
                gpu_mem=gpu_mem[i] or 0.0,
                knobs={name: v[i] for name, v in knobs.items() if v[i] is not None},
                source=source[i] or "proc",
                missing=frozenset(gone),
            )
        )
    return samples


def _devices(items: list[Mapping[str, Any]] | None) -> dict[str, BlockDeviceStats]:
    out: dict[str, BlockDeviceStats] = {}
    for d in items or ():
        hist = zeros_hist()
        lat = d.get("lat_hist") or []
        hist[: min(len(lat), N_SLOTS)] = lat[:N_SLOTS]
        counters = np.array([d.get(c) or 0 for c in BLOCK_COUNTERS], dtype=np.int64)
        out[d["name"]] = BlockDeviceStats(counters=counters, lat_hist=hist)
    return out

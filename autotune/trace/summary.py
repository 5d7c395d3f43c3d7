"""A recording in a few figures: what `autotune record --summary FILE` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from autotune.features import hist_quantile
from autotune.knobs import KNOBS
from autotune.roles import ROLES
from autotune.telemetry.sample import N_SLOTS, PAGE_KIB, PROGRESS_PROXY


@dataclass
class RoleFigures:
    """One role over the whole recording (None: the collector could not measure it)."""

    cpu_cores: float | None  # mean CPUs busy (on-CPU seconds per second)
    runq_p50_us: float | None
    runq_p99_us: float | None
    threads_max: int | None


@dataclass
class Summary:
    """The figures of one trace."""

    meta: dict[str, Any]
    rows: int
    duration_s: float
    roles: dict[str, RoleFigures]
    read_mbps: float | None
    read_mbps_peak: float | None
    blk_lat_p99_us: float | None
    ra_sync: int | None
    ra_async: int | None
    ra_mean_kib: float | None
    progress_source: str
    progress_total: float
    progress_unit: str
    # knob setting (knob name → value) and seconds spent at it, in order of first visit
    settings: list[tuple[dict[str, float], float]] = field(default_factory=list)

    @property
    def progress_rate(self) -> float | None:
        return self.progress_total / self.duration_s if self.duration_s > 0 else None


def progress_unit(source: str, samples: float) -> str:
    """What progress counts: the job's samples or steps, or (the proxy) trainer on-CPU seconds."""
    if source == PROGRESS_PROXY:
        return "trainer CPU-s"
    return "samples" if samples > 0 else "steps"


def _sum(table: pa.Table, name: str) -> float | None:
    """Sum of a column; None when absent or every value is NULL (not measured)."""
    if name not in table.column_names:
        return None
    col = table.column(name)
    if col.null_count == len(col):
        return None
    return float(pc.sum(col).as_py() or 0)


def _role_total(table: pa.Table, counter: str) -> int | None:
    """A counter summed over every role; None when any role's is not measured."""
    parts = [_sum(table, f"{r}_{counter}") for r in ROLES]
    if any(p is None for p in parts):
        return None
    return int(sum(p or 0 for p in parts))


def _hist(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names or table.column(name).null_count == table.num_rows:
        return None
    out = np.zeros(N_SLOTS, dtype=np.int64)
    for h in table.column(name).to_pylist():
        if h:
            out[: len(h[:N_SLOTS])] += h[:N_SLOTS]
    return out


def _quantiles_us(hist: np.ndarray | None) -> tuple[float | None, float | None]:
    if hist is None or hist.sum() == 0:
        return None, None
    q = hist_quantile(hist, [0.5, 0.99])[0]
    return float(2.0 ** q[0]), float(2.0 ** q[1])


def _settings(table: pa.Table, seconds: list[float]) -> list[tuple[dict[str, float], float]]:
    cols = {
        k.name: table.column(k.column).to_pylist() for k in KNOBS if k.column in table.schema.names
    }
    order: dict[tuple[tuple[str, float], ...], float] = {}
    for i, dt in enumerate(seconds):
        key = tuple((name, v[i]) for name, v in cols.items() if v[i] is not None)
        order[key] = order.get(key, 0.0) + dt
    return [(dict(key), secs) for key, secs in order.items()]


def summarize(table: pa.Table, meta: dict[str, Any]) -> Summary:
    """Figures of a loaded trace (:func:`~autotune.trace.reader.load_trace`)."""
    seconds = [x or 0.0 for x in table.column("interval_s").to_pylist()] if table.num_rows else []
    duration = float(sum(seconds))
    roles: dict[str, RoleFigures] = {}
    for r in ROLES:
        oncpu = _sum(table, f"{r}_oncpu_ns")
        p50, p99 = _quantiles_us(_hist(table, f"{r}_runq_hist"))
        threads = None
        if f"{r}_threads" in table.column_names and table.num_rows:
            threads = pc.max(table.column(f"{r}_threads")).as_py()
        roles[str(r)] = RoleFigures(
            cpu_cores=oncpu / 1e9 / duration if oncpu is not None and duration > 0 else None,
            runq_p50_us=p50,
            runq_p99_us=p99,
            threads_max=threads,
        )
    read = _sum(table, "blk_read_bytes")
    peak = None
    if read is not None and table.num_rows:
        per = np.asarray(table.column("blk_read_bytes").fill_null(0).to_numpy(), np.float64)
        peak = float(np.max(per / np.maximum(np.asarray(seconds), 1e-9))) / 1e6
    totals = {
        kind: _role_total(table, kind)
        for kind in ("ra_sync", "ra_async", "ra_sync_pages", "ra_async_pages")
    }
    events = (totals["ra_sync"] or 0) + (totals["ra_async"] or 0)
    pages = (totals["ra_sync_pages"] or 0) + (totals["ra_async_pages"] or 0)
    samples = _sum(table, "progress_samples") or 0.0
    steps = _sum(table, "progress_steps") or 0.0
    sources = set(table.column("progress_source").to_pylist()) - {None} if table.num_rows else set()
    source = "client" if "client" in sources else (sorted(sources) or ["none"])[0]
    return Summary(
        meta=meta,
        rows=table.num_rows,
        duration_s=duration,
        roles=roles,
        read_mbps=read / 1e6 / duration if read is not None and duration > 0 else None,
        read_mbps_peak=peak,
        blk_lat_p99_us=_quantiles_us(_hist(table, "blk_lat_hist"))[1],
        ra_sync=totals["ra_sync"],
        ra_async=totals["ra_async"],
        ra_mean_kib=pages * PAGE_KIB / events if events else None,
        progress_source=source,
        progress_total=samples if samples > 0 else steps,
        progress_unit=progress_unit(source, samples),
        settings=_settings(table, seconds),
    )

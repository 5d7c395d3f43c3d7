"""The observation schema (version :data:`SCHEMA_VERSION`).

Every field lies in [0, 1] and none depends on the node's core count: CPU time is a share of the
node's capacity or of the role's own demand, rates are log-scaled against a fixed ceiling,
latencies are log2 microseconds over the histogram's span. Change a field, its order or its
scaling and you must bump :data:`SCHEMA_VERSION` (and the env ids).

Fields, in order (``{role}`` is trainer, loader, other):

========================  =====================================================================
``{role}_cpu``            on-CPU time / (interval × CPUs): the role's share of the node
``{role}_demand``         (on-CPU + run-queue wait) / (interval × CPUs), clipped at 4, / 4
``{role}_wait``           run-queue wait / (on-CPU + wait): the share of its demand spent waiting
``{role}_runq_p50``       median run-queue latency, log2 µs / N_SLOTS
``{role}_runq_p99``       99th percentile run-queue latency, log2 µs / N_SLOTS
``{role}_vcsw``           voluntary switches per second, log1p / log1p(1e5)
``{role}_ivcsw``          involuntary switches per second, log1p / log1p(1e5)
``{role}_migr``           migrations per second, log1p / log1p(1e5)
``{role}_pgmiss``         page-cache insertions (pages) per second, log1p / log1p(1e6)
``{role}_ra_sync``        synchronous share of readahead events (0 when none)
``{role}_majflt``         major faults per second, log1p / log1p(1e5)
``blk_read_mbps``         MB read per second, log1p / log1p(1e4)
``blk_read_iops``         read requests per second, log1p / log1p(1e6)
``blk_lat_p50``           median block request latency, log2 µs / N_SLOTS
``blk_lat_p99``           99th percentile block request latency, log2 µs / N_SLOTS
``ra_size``               mean readahead size of trainer and loaders, log2(KiB) / 14
``progress_rate``         samples (else steps) per second, log1p / log1p(1e6)
``progress_client``       1 when the job reports progress itself, 0 for the telemetry proxy
``gpu_present``           1 when NVML sees a GPU (then the next two are real)
``gpu_util``              GPU utilization, 0..1
``gpu_mem``               GPU memory in use, fraction
``bpf``                   1 for BPF telemetry, 0 for the /proc fallback (fields it lacks are 0)
``knob_{name}``           each knob's ladder index / (levels - 1), in knob-table order
========================  =====================================================================
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from autotune.knobs import KNOBS
from autotune.roles import ROLES
from autotune.telemetry.sample import (
    N_SLOTS,
    PAGE_KIB,
    PROGRESS_CLIENT,
    B,
    C,
    Sample,
)

SCHEMA_VERSION = 1
# ``{role}_demand`` is clipped at this many times the node's capacity, then scaled to [0, 1].
DEMAND_CLIP = 4.0

_ROLE_FIELDS = (
    "cpu",
    "demand",
    "wait",
    "runq_p50",
    "runq_p99",
    "vcsw",
    "ivcsw",
    "migr",
    "pgmiss",
    "ra_sync",
    "majflt",
)
_NODE_FIELDS = (
    "blk_read_mbps",
    "blk_read_iops",
    "blk_lat_p50",
    "blk_lat_p99",
    "ra_size",
    "progress_rate",
    "progress_client",
    "gpu_present",
    "gpu_util",
    "gpu_mem",
    "bpf",
)
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{r}_{f}" for r in ROLES for f in _ROLE_FIELDS),
    *_NODE_FIELDS,
    *(k.column for k in KNOBS),
)
N_FEATURES = len(FEATURE_NAMES)

_L1E5 = math.log1p(1e5)
_L1E6 = math.log1p(1e6)
_L1E4 = math.log1p(1e4)
_LEVEL = {k.name: {v: i for i, v in enumerate(k.ladder)} for k in KNOBS}
_ONCPU, _WAIT, _NVCSW, _NIVCSW, _MIGR = (
    C[n] for n in ("oncpu_ns", "runq_wait_ns", "nvcsw", "nivcsw", "migrations")
)
_PGMISS, _RA_SYNC, _RA_ASYNC, _MAJFLT = (
    C[n] for n in ("pgcache_miss", "ra_sync", "ra_async", "majflt")
)
_RA_SYNC_PAGES, _RA_ASYNC_PAGES = C["ra_sync_pages"], C["ra_async_pages"]
_READ_BYTES, _READ_REQS = B["read_bytes"], B["read_reqs"]


def hist_quantile(hist: npt.ArrayLike, q: float | npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Quantiles of log2-µs histograms (rows of the last axis), in log2 µs.

    Interpolates linearly inside the slot that holds the quantile. A row with no events gives 0.

    Args:
        hist: one histogram ``(N_SLOTS,)`` or several ``(n, N_SLOTS)``.
        q: one quantile or several ``(m,)``, in [0, 1].

    Returns:
        Shape ``(n, m)`` (``n`` = 1 for one histogram, ``m`` = 1 for one quantile).
    """
    h = np.atleast_2d(np.asarray(hist, np.float64))
    qs = np.atleast_1d(np.asarray(q, np.float64))
    cum = np.cumsum(h, axis=1)
    target = cum[:, -1:] * qs  # (n, m)
    slot = (cum[:, None, :] < target[:, :, None]).sum(axis=2)
    flat = (slot + np.arange(0, h.size, N_SLOTS)[:, None]).clip(0, h.size - 1)
    inside = h.ravel()[flat]
    before = cum.ravel()[flat] - inside
    frac = (target - before) / np.maximum(inside, 1.0)
    return np.where(target > 0, slot + frac.clip(0.0, 1.0), 0.0)


def p50_p99(hist: list[int]) -> tuple[float, float]:
    """p50 and p99 of one log2-µs histogram, in log2 µs (0 when empty); scalar and fast."""
    total = sum(hist)
    if total <= 0:
        return 0.0, 0.0
    out = []
    for q in (0.5, 0.99):
        target, cum, value = q * total, 0.0, N_SLOTS - 1.0
        for slot, count in enumerate(hist):
            if count > 0 and cum + count >= target:
                value = slot + (target - cum) / count
                break
            cum += count
        out.append(value)
    return out[0], out[1]


def _lograte(count: float, seconds: float, scale: float) -> float:
    return math.log1p(max(count, 0.0) / seconds) / scale


def featurize(s: Sample, out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
    """Turn a sample into the observation vector (float32, length :data:`N_FEATURES`)."""
    return featurize_parts(
        roles=s.roles.tolist(),
        runq_hist=s.runq_hist.tolist(),
        block=s.block.tolist(),
        block_lat_hist=s.block_lat_hist.tolist(),
        interval_s=s.interval_s,
        ncpus=s.ncpus,
        progress=s.progress_samples if s.progress_samples > 0 else s.progress_steps,
        progress_client=s.progress_source == PROGRESS_CLIENT,
        gpu=(s.gpu_util, s.gpu_mem) if s.gpu_present else None,
        bpf=s.source == "bpf",
        knobs=s.knobs,
        out=out,
    )


def featurize_parts(
    *,
    roles: list[list[float]],
    runq_hist: list[list[int]] | None = None,
    block: list[float],
    block_lat_hist: list[int] | None = None,
    runq_quantiles: list[tuple[float, float]] | None = None,
    block_quantiles: tuple[float, float] | None = None,
    interval_s: float,
    ncpus: int,
    progress: float,
    progress_client: bool,
    gpu: tuple[float, float] | None,
    bpf: bool,
    knobs: dict[str, float],
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """:func:`featurize` on a sample's parts as plain lists (the replay env's hot path builds
    them without a Sample). Histograms enter as themselves, or as their (p50, p99) in log2 µs
    when the caller has them already. Scalar Python on purpose: on arrays this small it is ~10×
    faster than numpy."""
    if runq_quantiles is None:
        runq_quantiles = [p50_p99(h) for h in runq_hist or ()]
    if block_quantiles is None:
        block_quantiles = p50_p99(block_lat_hist or [])
    dt = max(interval_s, 1e-6)
    cap = dt * 1e9 * max(ncpus, 1)
    log1p = math.log1p
    values: list[float] = []
    for raw, (p50, p99) in zip(roles, runq_quantiles, strict=True):
        # Counters are never negative; a broken one must not break log1p.
        r = raw if min(raw) >= 0 else [max(x, 0) for x in raw]
        oncpu, wait = r[_ONCPU], r[_WAIT]
        runnable = oncpu + wait
        ra_events = r[_RA_SYNC] + r[_RA_ASYNC]
        values += (
            oncpu / cap,
            min(runnable / cap, DEMAND_CLIP) / DEMAND_CLIP,
            wait / runnable if runnable > 0 else 0.0,
            p50 / N_SLOTS,
            p99 / N_SLOTS,
            log1p(r[_NVCSW] / dt) / _L1E5,
            log1p(r[_NIVCSW] / dt) / _L1E5,
            log1p(r[_MIGR] / dt) / _L1E5,
            log1p(r[_PGMISS] / dt) / _L1E6,
            r[_RA_SYNC] / ra_events if ra_events > 0 else 0.0,
            log1p(r[_MAJFLT] / dt) / _L1E5,
        )
    lat50, lat99 = block_quantiles
    # Mean readahead size of the job (trainer and loaders), from the tracepoints' page counts.
    ra_n = sum(roles[i][_RA_SYNC] + roles[i][_RA_ASYNC] for i in (0, 1))
    ra_pages = sum(roles[i][_RA_SYNC_PAGES] + roles[i][_RA_ASYNC_PAGES] for i in (0, 1))
    ra_kib = ra_pages * PAGE_KIB / ra_n if ra_n > 0 else 0.0
    values += (
        math.log1p(max(block[_READ_BYTES], 0) / 1e6 / dt) / _L1E4,
        _lograte(block[_READ_REQS], dt, _L1E6),
        lat50 / N_SLOTS,
        lat99 / N_SLOTS,
        min(math.log2(ra_kib), 14.0) / 14.0 if ra_kib >= 1.0 else 0.0,
        _lograte(progress, dt, _L1E6),
        1.0 if progress_client else 0.0,
        1.0 if gpu is not None else 0.0,
        gpu[0] if gpu is not None else 0.0,
        gpu[1] if gpu is not None else 0.0,
        1.0 if bpf else 0.0,
    )
    for k in KNOBS:
        v = knobs.get(k.name, k.ladder[-1] if k.default is None else k.default)
        level = _LEVEL[k.name].get(v)
        values.append((k.index(v) if level is None else level) / (k.levels - 1))
    obs = np.asarray(values, np.float32) if out is None else out
    if out is not None:
        out[:] = values
    np.clip(obs, 0.0, 1.0, out=obs)
    return obs


_KNOB_OFFSET = N_FEATURES - len(KNOBS)


def knob_levels(obs: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The ladder index of every knob in effect, read back from an observation's knob fields."""
    x = np.asarray(obs, dtype=np.float64).reshape(-1)[_KNOB_OFFSET:]
    top = np.array([k.levels - 1 for k in KNOBS], dtype=np.float64)
    return np.rint(x * top).astype(np.int64)

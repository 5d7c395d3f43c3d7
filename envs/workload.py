"""Recorded workloads: a trace, the demand derived from it, and its calibrated model.

A workload is a trace (``<name>.parquet``, written by ``autotune record``) and its calibration
(``<name>.calib.json``, written by :mod:`autotune.envs.calibrate`). Bundled workloads live in
``envs/workloads/``; any trace path works too. Every problem with the files is a
:class:`~autotune.errors.UserError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autotune.envs.model import CURVES, Demand, Knobs, Params
from autotune.errors import UserError
from autotune.features import SCHEMA_VERSION, progress_rate
from autotune.knobs import KNOB_TABLE_VERSION, KNOBS, READAHEAD_DEFAULT_KB
from autotune.roles import ROLE_INDEX, Role
from autotune.telemetry.sample import B, C, Sample

BUNDLED_DIR = Path(__file__).resolve().parent / "workloads"
CALIB_SUFFIX = ".calib.json"
# Rows either side of a row whose counters are pooled to estimate its demand (±1 s at 250 ms):
# one interval alone is too noisy to divide CPU time by samples. Pooling never crosses a change
# of knobs, a change point of the demand (a phase of the job) or the edge of a split part.
SMOOTH_ROWS = 4
# Change points of the demand (ruptures' PELT, squared error, on the standardized columns):
# the shortest phase kept apart (1 s at 250 ms), and the penalty per change, in units of the
# columns' noise variance per column and log(rows): 10 finds the compute epochs of `phases`
# (13 rows each) and the neighbour's spells, and leaves a steady job (cnn_noisy) in a handful of
# pieces; 3 cut steady stretches on noise, 30 merged the epochs back into the loading.
CHANGE_MIN_ROWS = 4
CHANGE_PENALTY = 10.0

F64 = npt.NDArray[np.float64]
_T, _L, _O = ROLE_INDEX[Role.TRAINER], ROLE_INDEX[Role.LOADER], ROLE_INDEX[Role.OTHER]


def list_bundled() -> list[str]:
    """Names of the bundled workloads."""
    return sorted(p.name.removesuffix(".parquet") for p in BUNDLED_DIR.glob("*.parquet"))


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A bundled workload's name, or a trace path, → the trace path."""
    p = Path(name_or_path)
    if p.suffix in {".parquet", ".partial"} or p.exists():
        if not p.is_file():
            raise UserError(f"{p}: no such trace file")
        return p
    bundled = BUNDLED_DIR / f"{name_or_path}.parquet"
    if bundled.is_file():
        return bundled
    names = ", ".join(list_bundled()) or "none bundled"
    raise UserError(f"no workload named {str(name_or_path)!r}; bundled workloads: {names}")


@dataclass
class Workload:
    """A recorded workload, ready for the replay env.

    Attributes:
        name: the trace's stem.
        path: the trace.
        meta: the trace's metadata.
        samples: the recorded intervals.
        params: the calibrated model (defaults when never calibrated).
        calibration: what the calibration file says besides the parameters (fit quality).
        rate: recorded progress per second, per row (samples, or the proxy).
        knobs: recorded knob values per row.
        defaults: the knob values that mean "as the machine had it" for this workload.
    """

    name: str
    path: Path
    meta: dict[str, Any]
    samples: list[Sample]
    params: Params
    calibration: dict[str, Any] = field(default_factory=dict)
    rate: F64 = field(default_factory=lambda: np.zeros(0))
    knobs: list[dict[str, float]] = field(default_factory=list)
    defaults: dict[str, float] = field(default_factory=dict)
    _phases: npt.NDArray[np.int64] | None = field(default=None, repr=False)
    _demands: list[Demand] | None = field(default=None, repr=False)
    # What the replay env precomputes per workload, shared by every env built on this object
    # (a vectorized trainer builds several; validation builds one per evaluation).
    replay_cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    @property
    def ncpus(self) -> int:
        return int(self.samples[0].ncpus) if self.samples else 1

    def __len__(self) -> int:
        return len(self.samples)

    def demands(self) -> list[Demand]:
        """Each row's demand (pooled over nearby rows of the same phase, knobs and part)."""
        return derive_demands(self)

    def demands_cached(self) -> list[Demand]:
        """:meth:`demands`, computed once (the parameters do not enter them)."""
        if self._demands is None:
            self._demands = self.demands()
        return self._demands

    def phases(self) -> npt.NDArray[np.int64]:
        """A phase id per row, from change points of the demand (computed once)."""
        if self._phases is None:
            self._phases = phase_ids(self)
        return self._phases


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    got = meta.get("features_schema_version")
    if got != SCHEMA_VERSION:
        raise UserError(
            f"{path}: recorded with observation schema {got!r}, this autotune uses "
            f"{SCHEMA_VERSION}; record it again"
        )
    got = meta.get("knob_table_version")
    if got != KNOB_TABLE_VERSION:
        raise UserError(
            f"{path}: recorded with knob table {got!r}, this autotune uses {KNOB_TABLE_VERSION}"
        )


# Columns the replay cannot do without: NULL or NaN there is an error. Knob columns may be NULL
# (a knob with no backend while recording, say): the workload's default stands in.
NUMERIC_COLUMNS = (
    "interval_s",
    "ncpus",
    "progress_samples",
    "trainer_oncpu_ns",
    "loader_oncpu_ns",
    "other_oncpu_ns",
    "blk_read_bytes",
)
REQUIRED_COLUMNS = (*NUMERIC_COLUMNS, *(k.column for k in KNOBS))


def load(name_or_path: str | os.PathLike[str]) -> Workload:
    """Load a bundled workload by name, or any trace by path, with its calibration.

    Raises:
        UserError: unknown name; missing, foreign or damaged file; wrong schema or knob table
            version; missing columns; no rows; NaNs where numbers are needed; a bad calibration.
    """
    from autotune.trace.columns import table_to_samples
    from autotune.trace.reader import load_trace

    path = resolve(name_or_path)
    table, meta = load_trace(path)
    _check_meta(path, meta)
    absent = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if absent:
        raise UserError(f"{path}: missing columns {', '.join(absent)}")
    if table.num_rows == 0:
        raise UserError(f"{path}: the trace has no rows")
    for c in NUMERIC_COLUMNS:
        col = table.column(c).cast("float64")
        values = np.asarray(col.fill_null(np.nan).to_numpy(zero_copy_only=False), np.float64)
        if np.isnan(values).any():
            bad = int(np.flatnonzero(np.isnan(values))[0])
            raise UserError(f"{path}: column {c} has NaN or NULL values (first at row {bad})")
    samples = table_to_samples(table)
    name = path.name.removesuffix(".partial").removesuffix(".parquet")
    params, calibration = _load_calibration(path)
    wl = Workload(name=name, path=path, meta=meta, samples=samples, params=params)
    wl.calibration = calibration
    wl.rate = recorded_rates(samples)
    recorded = [dict(s.knobs) for s in samples]
    wl.defaults = default_knobs(meta, recorded)
    wl.knobs = [{**wl.defaults, **k} for k in recorded]
    return wl


def calibration_path(trace: Path) -> Path:
    return trace.with_name(
        trace.name.removesuffix(".partial").removesuffix(".parquet") + CALIB_SUFFIX
    )


def _load_calibration(trace: Path) -> tuple[Params, dict[str, Any]]:
    path = calibration_path(trace)
    if not path.is_file():
        return Params(), {}
    try:
        data = json.loads(path.read_text())
        params = Params.from_dict(data["params"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a valid calibration file ({e})") from None
    values = [*params.scalars().values(), *(v for c in CURVES for v in getattr(params, c))]
    if any(not math.isfinite(v) for v in values):
        raise UserError(f"{path}: calibration has non-finite parameters")
    return params, data


def default_knobs(meta: dict[str, Any], recorded: list[dict[str, float]]) -> dict[str, float]:
    """The "as the machine had it" setting: the table's defaults, and the read-ahead the
    recording started with (metadata ``defaults`` when the recorder stored them)."""
    stored = meta.get("defaults") or {}
    out: dict[str, float] = {}
    for k in KNOBS:
        if k.name in stored:
            out[k.name] = float(stored[k.name])
        elif k.default is not None:
            out[k.name] = k.default
        else:
            first = next((r[k.name] for r in recorded if k.name in r), None)
            out[k.name] = float(first) if first is not None else READAHEAD_DEFAULT_KB
    return out


def recorded_rates(samples: list[Sample]) -> F64:
    """Progress per second of each row: reported samples, else steps, else the CPU proxy."""
    return np.array([progress_rate(s) for s in samples], dtype=np.float64)


def demand_columns(wl: Workload) -> F64:
    """Per row, what change points are sought in: log1p MB/s read, the trainer's and the
    loaders' cores on CPU, and the cores other tasks wanted (on CPU or runnable)."""
    roles = np.stack([s.roles for s in wl.samples]).astype(np.float64)
    dt = np.array([max(s.interval_s, 1e-6) for s in wl.samples])
    read = np.array([float(s.block[B["read_bytes"]]) for s in wl.samples])
    other = roles[:, _O, C["oncpu_ns"]] + roles[:, _O, C["runq_wait_ns"]]
    return np.stack(
        [
            np.log1p(read / dt / 1e6),
            roles[:, _T, C["oncpu_ns"]] / 1e9 / dt,
            roles[:, _L, C["oncpu_ns"]] / 1e9 / dt,
            other / 1e9 / dt,
        ],
        axis=1,
    )


def phase_ids(wl: Workload) -> npt.NDArray[np.int64]:
    """A phase id per row: a new phase starts at each change point of :func:`demand_columns`.

    Each column is scaled by its noise (the median absolute step between rows, a robust
    estimate that a few real jumps do not move), so one penalty fits every workload.
    """
    import ruptures

    n = len(wl)
    out = np.zeros(n, dtype=np.int64)
    if n < 2 * CHANGE_MIN_ROWS:
        return out
    x = demand_columns(wl)
    step = np.diff(x, axis=0)
    noise = np.median(np.abs(step - np.median(step, axis=0)), axis=0) / 0.6745 / math.sqrt(2)
    noise = np.where(noise > 0, noise, np.maximum(x.std(axis=0), 1e-9))
    z = (x - x.mean(axis=0)) / noise
    # The least-squares (l2) cost, solved exactly by PELT: KernelCPD's linear kernel is that
    # cost in ruptures' C code (the same change points as Pelt(model="l2") on every bundled
    # recording, in 1 ms where Pelt's Python took 0.25-0.5 s per recording).
    algo = ruptures.KernelCPD(kernel="linear", min_size=CHANGE_MIN_ROWS).fit(z)
    ends = algo.predict(pen=CHANGE_PENALTY * math.log(n) * z.shape[1])
    for end in ends[:-1]:
        out[end:] += 1
    return out


def _segments(wl: Workload) -> npt.NDArray[np.int64]:
    """A segment id per row: consecutive rows at the same knob setting, in the same phase of
    the demand and the same split part share one."""
    from autotune.envs.splits import part_of_rows

    knobs = wl.knobs
    phase, part = wl.phases(), part_of_rows(len(knobs))
    seg = np.zeros(len(knobs), dtype=np.int64)
    for i in range(1, len(knobs)):
        new = knobs[i] != knobs[i - 1] or phase[i] != phase[i - 1] or part[i] != part[i - 1]
        seg[i] = seg[i - 1] + new
    return seg


def _pooled(values: F64, seg: npt.NDArray[np.int64], w: int) -> F64:
    """Sum of ``values`` over rows within ``w`` of each row and in its segment."""
    n = len(values)
    out = np.empty(n)
    for i in range(n):
        lo, hi = max(0, i - w), min(n, i + w + 1)
        mask = seg[lo:hi] == seg[i]
        out[i] = values[lo:hi][mask].sum()
    return out


@dataclass(frozen=True)
class Pooled:
    """Per-row sums over ±SMOOTH_ROWS rows of the same segment: what demand is derived from."""

    done: F64  # samples
    dt: F64  # seconds
    cpu_trainer: F64  # CPU-seconds
    cpu_loader: F64
    want_other: F64  # CPU-seconds other tasks were runnable
    read_bytes: F64
    par_trainer: F64  # most cores the role was runnable on, nearby
    par_loader: F64
    readahead_kb: F64  # in effect at the row
    knobs: F64 = field(default_factory=lambda: np.zeros((0, 4)))
    # in effect at the row: weight.trainer, weight.loader, cpus.trainer, cpus.loader
    random_share: F64 = field(default_factory=lambda: np.zeros(0))
    # of the job's page-cache misses nearby, the share not brought in by asynchronous
    # read-ahead (random access: faults and synchronous reads); 0 where it missed nothing


RECORDED_KNOBS = ("weight.trainer", "weight.loader", "cpus.trainer", "cpus.loader")


def pool(wl: Workload) -> Pooled:
    """Pool each row's counters with its neighbours of the same segment (:func:`_segments`)."""
    roles = np.stack([s.roles for s in wl.samples]).astype(np.float64)
    dt = np.array([max(s.interval_s, 1e-6) for s in wl.samples])
    read = np.array([float(s.block[B["read_bytes"]]) for s in wl.samples])
    seg = _segments(wl)
    w = SMOOTH_ROWS
    run_t = (roles[:, _T, C["oncpu_ns"]] + roles[:, _T, C["runq_wait_ns"]]) / 1e9 / dt
    run_l = (roles[:, _L, C["oncpu_ns"]] + roles[:, _L, C["runq_wait_ns"]]) / 1e9 / dt
    n = len(dt)
    par_t, par_l = np.empty(n), np.empty(n)
    for i in range(n):
        lo, hi = max(0, i - w), min(n, i + w + 1)
        mask = seg[lo:hi] == seg[i]
        par_t[i] = run_t[lo:hi][mask].max()
        par_l[i] = run_l[lo:hi][mask].max()
    default_ra = wl.defaults.get("readahead", READAHEAD_DEFAULT_KB)
    job = roles[:, _T, :] + roles[:, _L, :]
    missed = _pooled(job[:, C["pgcache_miss"]], seg, w)
    streamed = _pooled(job[:, C["ra_async_pages"]], seg, w)
    random_share = np.where(
        missed > 0, 1.0 - np.minimum(1.0, streamed / np.maximum(missed, 1.0)), 0.0
    )
    return Pooled(
        done=_pooled(wl.rate * dt, seg, w),
        dt=_pooled(dt, seg, w),
        cpu_trainer=_pooled(roles[:, _T, C["oncpu_ns"]] / 1e9, seg, w),
        cpu_loader=_pooled(roles[:, _L, C["oncpu_ns"]] / 1e9, seg, w),
        want_other=_pooled(
            (roles[:, _O, C["oncpu_ns"]] + roles[:, _O, C["runq_wait_ns"]]) / 1e9, seg, w
        ),
        read_bytes=_pooled(read, seg, w),
        par_trainer=par_t,
        par_loader=par_l,
        readahead_kb=np.array([k.get("readahead", default_ra) for k in wl.knobs]),
        knobs=np.array(
            [[k.get(n, 1.0) for n in RECORDED_KNOBS] for k in wl.knobs], np.float64
        ).reshape(-1, len(RECORDED_KNOBS)),
        random_share=random_share,
    )


def demands_from(p: Pooled) -> list[Demand]:
    """Each row's demand from its pooled counters."""
    out: list[Demand] = []
    for i in range(len(p.dt)):
        other = float(p.want_other[i] / p.dt[i])
        ra = float(p.readahead_kb[i])
        if p.done[i] <= 0.0:
            out.append(Demand(0.0, 0.0, 0.0, ra, other, 0.0, 0.0))
            continue
        per = 1.0 / p.done[i]
        rec = p.knobs[i] if len(p.knobs) > i else (1.0, 1.0, 1.0, 1.0)
        out.append(
            Demand(
                a_trainer=float(p.cpu_trainer[i] * per),
                a_loader=float(p.cpu_loader[i] * per),
                read_bytes=float(p.read_bytes[i] * per),
                readahead_kb=ra,
                other_cores=other,
                par_trainer=float(max(p.par_trainer[i], p.cpu_trainer[i] / p.dt[i])),
                par_loader=float(max(p.par_loader[i], p.cpu_loader[i] / p.dt[i])),
                weight_trainer=float(rec[0]),
                weight_loader=float(rec[1]),
                cpus_trainer=float(rec[2]),
                cpus_loader=float(rec[3]),
                random_share=float(p.random_share[i]) if len(p.random_share) > i else 0.0,
            )
        )
    return out


def derive_demands(wl: Workload) -> list[Demand]:
    """Per row, what the job wanted, pooled over ±SMOOTH_ROWS rows of the same segment."""
    if not wl.samples:
        return []
    return demands_from(pool(wl))


def knobs_of(values: dict[str, float], defaults: dict[str, float]) -> Knobs:
    """Model knobs from a (possibly partial) dict of knob values."""
    return Knobs.from_values({**defaults, **values})

"""Calibrate a workload's response model on its recording.

The model (:mod:`autotune.envs.model`) predicts each recorded row's progress from the demand
derived from that row and the knobs in effect. Calibration picks the parameters that make those
predictions match the recorded progress best (least squares on log rates), with a weak pull
towards priors for parameters a recording cannot identify (weights do nothing on a quiet node;
read-ahead does nothing for a job that reads nothing). Recordings made with ``--explore`` carry
several settings of every knob and so identify the most.

Only the training part of the recording is fitted (:data:`autotune.envs.splits.TRAIN`, the
first 60 %): the validation and test parts judge policies in a replay that has not seen them.

Priors: the device's per-request latency ``L0`` and bandwidth ``B`` come from the block latency
histograms (mean latency against mean request size, a straight line); each role's default weight
from how many cores it kept runnable; the rest from :class:`~autotune.envs.model.Params`.
Fixed before the fit, from lines across rows recorded at different read-ahead: how bytes read
per sample grow with read-ahead (log against log), and the CPU a byte and a request cost (CPU
per sample against bytes and requests per sample).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autotune.envs import splits
from autotune.envs.model import KIB, Knobs, Params, respond
from autotune.envs.workload import Pooled, Workload, calibration_path, demands_from, pool
from autotune.errors import UserError
from autotune.fsutil import write_text_atomic
from autotune.knobs import KNOBS
from autotune.telemetry.sample import N_SLOTS, B

# Parameters fitted, how each is transformed to an unbounded value, and its bounds.
FITTED = (
    "u_trainer",
    "u_loader",
    "overlap",
    "gamma",
    "latency_s",
    "bandwidth",
    "streams",
    "os_self",
    "os_foreign",
    "os_spin",
    "kworker",
    "queue_var",
)
# Parameters at zero unless the explored rows say otherwise (a log-like transform, as gamma).
_FROM_ZERO = ("gamma",)
# The effects the explored rows identify: fitted as they are (0 at the lower bound), so that
# a step away from zero is as easy as any other.
_LINEAR = ("os_self", "os_foreign", "os_spin", "kworker", "queue_var")
BOUNDS: dict[str, tuple[float, float]] = {
    "u_trainer": (0.05, 64.0),
    "u_loader": (0.05, 64.0),
    "overlap": (0.0, 1.0),
    "gamma": (0.0, 2.0),
    "latency_s": (1e-6, 0.1),
    "bandwidth": (1e6, 1e11),
    "streams": (0.25, 64.0),
    "read_exponent": (0.0, 1.0),
    "cpu_per_byte": (0.0, 1e-8),
    "os_self": (0.0, 20.0),
    "os_foreign": (0.0, 5.0),
    "os_spin": (0.0, 20.0),
    "kworker": (0.0, 4.0),
    "queue_var": (0.0, 1.0),
}
# Which parameters each knob family's explored rows identify.
FAMILY_PARAMS: dict[str, tuple[str, ...]] = {
    "weights": ("u_trainer", "u_loader", "os_foreign", "kworker"),
    "affinity": ("os_self", "os_foreign", "os_spin"),
    "readahead": (
        "ra_points",
        "ra_points_random",
        "read_exponent",
        "latency_s",
        "bandwidth",
        "streams",
    ),
    "prefetch": ("gamma", "queue_var"),
}
# A family counts as identified with at least this many explored training rows and this many
# pairs of neighbouring settings that differ in it.
MIN_EXPLORED_ROWS = 40
MIN_PAIRS = 4
PAIR_HORIZON = 2  # a setting is compared with the next this many settings
BOOTSTRAP = 4  # parameter sets drawn by resampling the explored settings (ReplayEnv randomize)
PRIOR_WEIGHT = 0.3  # residual weight of a prior, against 1 per recorded row
MAX_ROWS = 300  # rows used in the own-knob fit (evenly spaced): enough, and the fit stays fast


def _slot_mid_s() -> np.ndarray:
    return np.array([(2.0**s) * (1.5 if s else 1.0) * 1e-6 for s in range(N_SLOTS)])


def _train_rows(wl: Workload) -> range:
    return range(*splits.bounds(len(wl), splits.TRAIN))


def device_priors(wl: Workload) -> tuple[float, float]:
    """``(L0, B)`` from a straight line through (request size, mean latency) of every training
    row."""
    sizes, lats = [], []
    mid = _slot_mid_s()
    for i in _train_rows(wl):
        s = wl.samples[i]
        reqs = s.block[B["read_reqs"]]
        n = s.block_lat_hist.sum()
        if reqs > 0 and n > 0:
            sizes.append(s.block[B["read_bytes"]] / reqs)
            lats.append(float((s.block_lat_hist * mid).sum() / n))
    default = Params()
    if len(sizes) < 3 or np.ptp(sizes) <= 0:
        return default.latency_s, default.bandwidth
    slope, intercept = np.polyfit(np.array(sizes), np.array(lats), 1)
    # Queueing makes the intercept of small requests unreliable; below 10 µs it is no prior.
    latency = float(intercept) if intercept > 1e-5 else default.latency_s
    latency = float(np.clip(latency, *BOUNDS["latency_s"]))
    bandwidth = (
        float(np.clip(1.0 / slope, *BOUNDS["bandwidth"])) if slope > 0 else default.bandwidth
    )
    return latency, bandwidth


def _robust_fit(design: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Non-negative coefficients of ``y ≈ design @ c``, robust to outlying rows (the job's
    start-up, say, holds CPU and few samples): soft-L1 loss, columns scaled to 1."""
    from scipy.optimize import least_squares

    scale = np.maximum(np.median(np.abs(design), axis=0), 1e-30)
    x = design / scale
    ys = float(np.median(np.abs(y))) or 1.0

    def res(c: np.ndarray) -> np.ndarray:
        return w * (x @ c - y) / ys

    c0 = np.zeros(design.shape[1])
    c0[0] = float(np.median(y)) / scale[0]
    fit = least_squares(res, c0, bounds=(0.0, np.inf), loss="soft_l1", f_scale=0.1)
    return np.asarray(fit.x / scale)


def io_slopes(wl: Workload, pooled: Pooled, max_request: float) -> tuple[float, float, float]:
    """``(read_exponent, cpu_per_byte, cpu_per_request)`` from lines across rows recorded at
    different read-ahead: log bytes per sample against log read-ahead; CPU per sample against
    bytes and requests per sample. Each row alone says nothing about them (it was recorded at
    one read-ahead)."""
    train = np.zeros(len(pooled.done), dtype=bool)
    train[_train_rows(wl).start : _train_rows(wl).stop] = True
    ok = train & (pooled.done > 0) & (pooled.read_bytes > 0)
    if ok.sum() < 8 or np.ptp(pooled.readahead_kb[ok]) <= 0:
        return 0.0, 0.0, 0.0
    per = pooled.read_bytes[ok] / pooled.done[ok]
    ra = pooled.readahead_kb[ok] * KIB
    w = np.sqrt(pooled.done[ok] / pooled.done[ok].max())  # rows with more samples say more
    one = np.ones_like(per)
    lr, lb = np.log(ra), np.log(per)
    # log b = a + k·log R: a line with a free sign of intercept, so shift both to be positive.
    k = _robust_fit(np.stack([one, lr - lr.min()], axis=1), lb - lb.min() + 1.0, w)[1]
    cpu = (pooled.cpu_trainer[ok] + pooled.cpu_loader[ok]) / pooled.done[ok]
    reqs = per / np.minimum(ra, max_request)
    coef = _robust_fit(np.stack([one, per, reqs], axis=1), cpu, w)
    return (
        float(np.clip(k, *BOUNDS["read_exponent"])),
        float(np.clip(coef[1], *BOUNDS["cpu_per_byte"])),
        float(np.clip(coef[2], 0.0, 1e-3)),
    )


def _to_free(name: str, v: float) -> float:
    lo, hi = BOUNDS[name]
    if name in ("overlap",):
        v = min(max(v, 1e-4), 1 - 1e-4)
        return math.log(v / (1 - v))
    if name in _LINEAR:
        return min(max(v, lo), hi)
    if name in _FROM_ZERO:
        return math.log(v + 1e-3)
    if name == "cpu_per_byte":
        return math.log(v * 1e9 + 1e-3)
    return math.log(min(max(v, lo), hi))


def _from_free(name: str, x: float) -> float:
    lo, hi = BOUNDS[name]
    if name == "overlap":
        return 1.0 / (1.0 + math.exp(-x))
    if name in _LINEAR:
        return min(max(x, lo), hi)
    if name in _FROM_ZERO:
        return min(max(math.exp(x) - 1e-3, lo), hi)
    if name == "cpu_per_byte":
        return min(max((math.exp(x) - 1e-3) / 1e9, lo), hi)
    return min(max(math.exp(x), lo), hi)


def _live_train_rows(wl: Workload) -> np.ndarray:
    """Every training row with progress."""
    train = _train_rows(wl)
    return train.start + np.flatnonzero(wl.rate[train.start : train.stop] > 0)


def _rows(wl: Workload) -> np.ndarray:
    """The training rows with progress, evenly thinned to :data:`MAX_ROWS`."""
    train = _train_rows(wl)
    ok = train.start + np.flatnonzero(wl.rate[train.start : train.stop] > 0)
    if len(ok) > MAX_ROWS:
        ok = ok[np.linspace(0, len(ok) - 1, MAX_ROWS).astype(int)]
    return ok


Curve = tuple[tuple[float, ...], tuple[float, ...]]


def readahead_curve(wl: Workload, pooled: Pooled, rows: np.ndarray | None = None) -> Curve:
    """Bytes read per sample at each read-ahead value the training rows visited: the median of
    log bytes per sample there, made non-decreasing (more read-ahead never reads less), relative
    to the lowest value. Empty when fewer than two values have enough rows. ``rows``: a mask of
    the rows to use (default every training row)."""
    lo, hi = splits.bounds(len(wl), splits.TRAIN)
    ok = np.zeros(len(pooled.done), dtype=bool)
    ok[lo:hi] = True
    ok &= (pooled.done > 0) & (pooled.read_bytes > 0)
    if rows is not None:
        ok &= rows
    per = np.log(np.where(ok, pooled.read_bytes / np.maximum(pooled.done, 1e-9), 1.0))
    points, values = [], []
    for ra in sorted(set(pooled.readahead_kb[ok].tolist())):
        sel = ok & (pooled.readahead_kb == ra)
        if sel.sum() >= MIN_CURVE_ROWS:
            points.append(float(ra))
            values.append(float(np.median(per[sel])))
    if len(points) < 2:
        return (), ()
    mono = np.maximum.accumulate(np.array(values))
    return tuple(points), tuple(float(v) for v in mono - mono[0])


def readahead_curves(wl: Workload, pooled: Pooled) -> tuple[Curve, Curve, dict[str, Any]]:
    """The measured read-ahead curve, and where the recording has rows of both access patterns
    (streaming and random, :data:`RANDOM_ROW` apart) each with a curve of its own, the streaming
    rows' curve and the random rows' (see the model's docstring); else one curve over every row
    and no random one. Also what the split found, for the calibration report."""
    share = pooled.random_share if len(pooled.random_share) else np.zeros(len(pooled.done))
    random_rows = share >= RANDOM_ROW
    seq = readahead_curve(wl, pooled, ~random_rows)
    rand = readahead_curve(wl, pooled, random_rows)
    lo, hi = splits.bounds(len(wl), splits.TRAIN)
    reading = (pooled.done[lo:hi] > 0) & (pooled.read_bytes[lo:hi] > 0)
    report = {
        "random_rows": int((random_rows[lo:hi] & reading).sum()),
        "streaming_rows": int((~random_rows[lo:hi] & reading).sum()),
        "split": bool(seq[0] and rand[0]),
    }
    if report["split"]:
        return seq, rand, report
    return readahead_curve(wl, pooled), ((), ()), report


MIN_CURVE_ROWS = 6  # rows at one read-ahead value before it is a point of the measured curve
RANDOM_ROW = 0.5  # a row whose misses are at least this share random counts as random access


def family_of_change(a: dict[str, float], b: dict[str, float]) -> set[str]:
    """The knob families in which two settings differ."""
    return {str(k.family) for k in KNOBS if a.get(k.name) != b.get(k.name)}


@dataclass(frozen=True)
class _Segment:
    """A stretch of training rows at one setting: its progress rate and a demand."""

    rows: np.ndarray
    rate: float
    row: int  # the row whose demand stands for the segment (its middle)


def _settings_segments(wl: Workload, access: np.ndarray | None = None) -> list[_Segment]:
    """Consecutive training rows at one knob setting (at least :data:`MIN_SEGMENT_ROWS` with
    progress), in time order; with ``access`` (a class per row), also of one access pattern."""
    lo, hi = splits.bounds(len(wl), splits.TRAIN)
    out: list[_Segment] = []
    start = lo
    dt = np.array([max(s.interval_s, 1e-6) for s in wl.samples])
    for i in range(lo + 1, hi + 1):
        same = i < hi and wl.knobs[i] == wl.knobs[start]
        if same and (access is None or access[i] == access[start]):
            continue
        rows = np.arange(start, i)
        live = rows[wl.rate[rows] > 0]
        if len(live) >= MIN_SEGMENT_ROWS:
            rate = float((wl.rate[rows] * dt[rows]).sum() / dt[rows].sum())
            out.append(_Segment(rows, rate, int(live[len(live) // 2])))
        start = i
    return out


MIN_SEGMENT_ROWS = 4


def _pairs(
    segs: list[_Segment], wl: Workload, access: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Pairs of settings close in time (the next :data:`PAIR_HORIZON`) that differ; with
    ``access``, of the same access pattern (a pair across a spell boundary measures the spell,
    not the knobs)."""
    out = []
    for a in range(len(segs)):
        for b in range(a + 1, min(len(segs), a + 1 + PAIR_HORIZON)):
            ra, rb = segs[a].row, segs[b].row
            if access is not None and access[ra] != access[rb]:
                continue
            if wl.knobs[ra] != wl.knobs[rb]:
                out.append((a, b))
    return out


def explored(
    wl: Workload, rows: np.ndarray, segs: list[_Segment], pairs: list[tuple[int, int]]
) -> dict[str, dict[str, Any]]:
    """Per knob family: explored training rows off its default, distinct settings of it, pairs
    of neighbouring settings that differ in it, and whether that identifies its parameters."""
    out: dict[str, dict[str, Any]] = {}
    for fam, params in FAMILY_PARAMS.items():
        names = [k.name for k in KNOBS if str(k.family) == fam]
        off = [i for i in rows if any(wl.knobs[i][n] != wl.defaults[n] for n in names)]
        values = {tuple(wl.knobs[i][n] for n in names) for i in off}
        n_pairs = sum(
            1
            for a, b in pairs
            if fam in family_of_change(wl.knobs[segs[a].row], wl.knobs[segs[b].row])
        )
        out[fam] = {
            "rows": len(off),
            "settings": len(values),
            "pairs": n_pairs,
            "identified": len(off) >= MIN_EXPLORED_ROWS and n_pairs >= MIN_PAIRS,
            "params": list(params),
        }
    return out


def calibrate(wl: Workload, bootstrap: int = BOOTSTRAP) -> tuple[Params, dict[str, Any]]:
    """Fit the model to a workload; returns the parameters and a report of the fit.

    Two kinds of residual, both on log progress: each training row predicted from its own
    demand at its own knobs (what fixes the device and the overlap), and each pair of
    neighbouring explored settings, one predicted from the other's demand at the other's knobs
    (what identifies the knobs' effects: the replay answers exactly that question). Parameters
    of a family whose explored rows are too few stay near their priors (zero for the effects
    the model adds). ``bootstrap`` parameter sets come from refits on the settings resampled
    with replacement (:class:`~autotune.envs.replay.ReplayEnv`'s ``randomize``).
    """
    from scipy.optimize import least_squares

    rows = _rows(wl)
    if len(rows) < 4:
        raise UserError(
            f"{wl.path}: fewer than 4 rows with progress in its training part (the first "
            f"{splits.TRAIN[1]:.0%}); nothing to calibrate on"
        )
    pooled = pool(wl)
    demands = demands_from(pooled)
    latency, bandwidth = device_priors(wl)
    quiet = [i for i in rows if wl.knobs[i].get("weight.trainer", 1.0) == 1.0] or list(rows)
    read_exponent, cpu_per_byte, cpu_per_request = io_slopes(wl, pooled, Params().max_request)
    (ra_points, ra_log_bytes), (ra_points_random, ra_log_bytes_random), access = readahead_curves(
        wl, pooled
    )
    prior = Params(
        u_trainer=float(np.clip(np.median(pooled.par_trainer[quiet]), 0.25, 16)),
        u_loader=float(np.clip(np.median(pooled.par_loader[quiet]), 0.25, 16)),
        latency_s=latency,
        bandwidth=bandwidth,
        read_exponent=read_exponent,
        cpu_per_byte=cpu_per_byte,
        cpu_per_request=cpu_per_request,
        ra_points=ra_points,
        ra_log_bytes=ra_log_bytes,
        ra_points_random=ra_points_random,
        ra_log_bytes_random=ra_log_bytes_random,
    )
    x0 = np.array([_to_free(n, getattr(prior, n)) for n in FITTED])
    # The target is each row's progress pooled like its demand (±SMOOTH_ROWS rows at the same
    # knobs): one 250 ms interval holds a handful of batches, too few to fit a rate on.
    pooled_rate = pooled.done / pooled.dt
    rows = rows[pooled_rate[rows] > 0]
    knobs = {int(i): Knobs.from_values({**wl.defaults, **wl.knobs[i]}) for i in rows}
    # A recording of both access patterns: settings compared within one pattern only.
    pattern = pooled.random_share >= RANDOM_ROW if access["split"] else None
    segs = _settings_segments(wl, pattern)
    for seg in segs:
        knobs.setdefault(seg.row, Knobs.from_values({**wl.defaults, **wl.knobs[seg.row]}))
    pairs = _pairs(segs, wl, pattern)
    ncpus = wl.ncpus

    def unpack(x: np.ndarray) -> Params:
        return prior.with_values(
            {n: _from_free(n, float(v)) for n, v in zip(FITTED, x, strict=True)}
        )

    def rate(i: int, k: Knobs, p: Params) -> float:
        return max(respond(demands[i], k, p, ncpus).rate, 1e-9)

    def make_residuals(use_rows: np.ndarray, use_pairs: list[tuple[int, int]]) -> Any:
        target = np.log(pooled_rate[use_rows])
        real = np.array([math.log(segs[b].rate / segs[a].rate) for a, b in use_pairs])
        w_pair = math.sqrt(len(use_rows) / max(len(use_pairs), 1))

        def residuals(x: np.ndarray) -> np.ndarray:
            p = unpack(x)
            own = np.array([math.log(rate(int(i), knobs[int(i)], p)) for i in use_rows])
            cross = []
            for (a, b), r in zip(use_pairs, real, strict=True):
                ra, rb = segs[a].row, segs[b].row
                fwd = math.log(rate(ra, knobs[rb], p) / rate(ra, knobs[ra], p))
                back = math.log(rate(rb, knobs[rb], p) / rate(rb, knobs[ra], p))
                cross += [fwd - r, back - r]
            return np.concatenate(
                [
                    SELF_WEIGHT * (own - target),
                    w_pair * np.array(cross),
                    PRIOR_WEIGHT * (x - x0) * math.sqrt(len(use_rows) / 50),
                ]
            )

        return residuals

    residuals = make_residuals(rows, pairs)
    n_own, n_cross = len(rows), 2 * len(pairs)
    t0 = time.perf_counter()
    before = residuals(x0)

    # The surface has shallow valleys (latency trades against streams and overlap): start from
    # a few corners of that trade and keep the best fit.
    def fit_from(latency_s: float, streams: float) -> Any:
        start = x0.copy()
        start[FITTED.index("latency_s")] = _to_free("latency_s", latency_s)
        start[FITTED.index("streams")] = _to_free("streams", streams)
        return least_squares(residuals, start, method="trf", x_scale=1.0, max_nfev=300)

    corners = ((prior.latency_s, 1.0), (1e-4, 4.0))
    result = min((fit_from(*c) for c in corners), key=lambda r: float(r.cost))
    params = unpack(result.x)
    after = residuals(result.x)
    fit = after[:n_own] / SELF_WEIGHT
    cross_fit = after[n_own : n_own + n_cross] / math.sqrt(n_own / max(len(pairs), 1))
    cross_before = before[n_own : n_own + n_cross] / math.sqrt(n_own / max(len(pairs), 1))

    sets: list[dict[str, float]] = []
    rng = np.random.default_rng(0)
    for _ in range(bootstrap if len(segs) >= 4 else 0):
        pick = np.sort(rng.integers(0, len(segs), len(segs)))
        counts = np.bincount(pick, minlength=len(segs))
        b_rows = np.concatenate(
            [np.repeat(rows[np.isin(rows, segs[j].rows)], counts[j]) for j in range(len(segs))]
        )
        b_pairs = [pr for pr in pairs for _ in range(counts[pr[0]])]
        if len(b_rows) < 4:
            continue
        res = least_squares(
            make_residuals(b_rows, b_pairs), result.x, method="trf", x_scale=1.0, max_nfev=10
        )
        fitted = unpack(res.x)
        sets.append({n: float(getattr(fitted, n)) for n in FITTED})

    settings = sorted({json.dumps(wl.knobs[i], sort_keys=True) for i in rows})
    report = {
        "rows": len(rows),
        "part": "train",
        "part_rows": list(splits.TRAIN),
        "settings": len(settings),
        "pairs": len(pairs),
        "explored": explored(wl, _live_train_rows(wl), segs, pairs),
        "access": access,
        "residual_sd": float(np.std(fit)),
        "residual_sd_prior": float(np.std(before[:n_own] / SELF_WEIGHT)),
        "median_abs_error": float(np.median(np.abs(np.expm1(fit)))),
        "pair_median_abs_error": (
            float(np.median(np.abs(np.expm1(cross_fit)))) if len(pairs) else None
        ),
        "pair_median_abs_error_prior": (
            float(np.median(np.abs(np.expm1(cross_before)))) if len(pairs) else None
        ),
        "converged": bool(result.success),
        "seconds": round(time.perf_counter() - t0, 2),
        "prior": prior.to_dict(),
        "bootstrap": sets,
    }
    return params, report


SELF_WEIGHT = 0.5  # each row's own-knob residual, against 1 for a pair of explored settings


def save(wl: Workload, params: Params, report: dict[str, Any]) -> Path:
    """Write ``<trace>.calib.json`` beside the trace, atomically."""
    path = calibration_path(wl.path)
    data = {"workload": wl.name, "params": params.to_dict(), **report}
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path

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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from autotune.envs import splits
from autotune.envs.model import KIB, Demand, Knobs, Params, respond
from autotune.envs.workload import Pooled, Workload, calibration_path, demands_from, pool
from autotune.errors import UserError
from autotune.fsutil import write_text_atomic
from autotune.telemetry.sample import N_SLOTS, B

# Parameters fitted, how each is transformed to an unbounded value, and its bounds.
FITTED = ("u_trainer", "u_loader", "overlap", "gamma", "latency_s", "bandwidth", "streams")
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
}
PRIOR_WEIGHT = 0.3  # residual weight of a prior, against 1 per recorded row
MAX_ROWS = 800  # rows used in the fit (evenly spaced): enough, and the fit stays in seconds


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
    if name == "gamma":
        return math.log(v + 1e-3)
    if name == "cpu_per_byte":
        return math.log(v * 1e9 + 1e-3)
    return math.log(min(max(v, lo), hi))


def _from_free(name: str, x: float) -> float:
    lo, hi = BOUNDS[name]
    if name == "overlap":
        return 1.0 / (1.0 + math.exp(-x))
    if name == "gamma":
        return min(max(math.exp(x) - 1e-3, lo), hi)
    if name == "cpu_per_byte":
        return min(max((math.exp(x) - 1e-3) / 1e9, lo), hi)
    return min(max(math.exp(x), lo), hi)


def _rows(wl: Workload) -> np.ndarray:
    """The training rows with progress, evenly thinned to :data:`MAX_ROWS`."""
    train = _train_rows(wl)
    ok = train.start + np.flatnonzero(wl.rate[train.start : train.stop] > 0)
    if len(ok) > MAX_ROWS:
        ok = ok[np.linspace(0, len(ok) - 1, MAX_ROWS).astype(int)]
    return ok


def _predict(wl: Workload, demands: list[Demand], params: Params, rows: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows))
    for j, i in enumerate(rows):
        k = Knobs.from_values({**wl.defaults, **wl.knobs[i]})
        out[j] = respond(demands[i], k, params, wl.ncpus).rate
    return out


def calibrate(wl: Workload) -> tuple[Params, dict[str, Any]]:
    """Fit the model to a workload; returns the parameters and a report of the fit."""
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
    prior = Params(
        u_trainer=float(np.clip(np.median(pooled.par_trainer[quiet]), 0.25, 16)),
        u_loader=float(np.clip(np.median(pooled.par_loader[quiet]), 0.25, 16)),
        latency_s=latency,
        bandwidth=bandwidth,
        read_exponent=read_exponent,
        cpu_per_byte=cpu_per_byte,
        cpu_per_request=cpu_per_request,
    )
    x0 = np.array([_to_free(n, getattr(prior, n)) for n in FITTED])
    # The target is each row's progress pooled like its demand (±SMOOTH_ROWS rows at the same
    # knobs): one 250 ms interval holds a handful of batches, too few to fit a rate on.
    pooled_rate = pooled.done / pooled.dt
    rows = rows[pooled_rate[rows] > 0]
    target = np.log(pooled_rate[rows])

    def unpack(x: np.ndarray) -> Params:
        return replace(
            prior, **{n: _from_free(n, float(v)) for n, v in zip(FITTED, x, strict=True)}
        )

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = _predict(wl, demands, unpack(x), rows)
        fit = np.log(np.maximum(pred, 1e-9)) - target
        return np.concatenate([fit, PRIOR_WEIGHT * (x - x0) * math.sqrt(len(rows) / 50)])

    t0 = time.perf_counter()
    before = residuals(x0)[: len(rows)]

    # The surface has shallow valleys (latency trades against streams and overlap): start from
    # a few corners of that trade and keep the best fit.
    def fit_from(latency_s: float, streams: float) -> Any:
        start = x0.copy()
        start[FITTED.index("latency_s")] = _to_free("latency_s", latency_s)
        start[FITTED.index("streams")] = _to_free("streams", streams)
        return least_squares(residuals, start, method="trf", x_scale=1.0, max_nfev=300)

    corners = ((prior.latency_s, 1.0), (2e-5, 4.0), (1e-4, 2.0), (5e-4, 8.0))
    result = min((fit_from(*c) for c in corners), key=lambda r: float(r.cost))
    params = unpack(result.x)
    fit = residuals(result.x)[: len(rows)]
    settings = sorted({json.dumps(wl.knobs[i], sort_keys=True) for i in rows})
    report = {
        "rows": len(rows),
        "part": "train",
        "part_rows": list(splits.TRAIN),
        "settings": len(settings),
        "residual_sd": float(np.std(fit)),
        "residual_sd_prior": float(np.std(before)),
        "median_abs_error": float(np.median(np.abs(np.expm1(fit)))),
        "converged": bool(result.success),
        "seconds": round(time.perf_counter() - t0, 2),
        "prior": prior.to_dict(),
    }
    return params, report


def save(wl: Workload, params: Params, report: dict[str, Any]) -> Path:
    """Write ``<trace>.calib.json`` beside the trace, atomically."""
    path = calibration_path(wl.path)
    data = {"workload": wl.name, "params": params.to_dict(), **report}
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path

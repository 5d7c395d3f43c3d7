"""Calibrate a workload's response model on its recording.

The model (:mod:`autotune.envs.model`) predicts each recorded row's progress from the demand
derived from that row and the knobs in effect. Calibration picks the parameters that make those
predictions match the recorded progress best (least squares on log rates), with a weak pull
towards priors for parameters a recording cannot identify (weights do nothing on a quiet node;
read-ahead does nothing for a job that reads nothing). Recordings made with ``--explore`` carry
several settings of every knob and so identify the most.

Priors: the device's per-request latency ``L0`` and bandwidth ``B`` come from the block latency
histograms (mean latency against mean request size, a straight line); each role's default weight
from how many cores it kept runnable; the rest from :class:`~autotune.envs.model.Params`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from autotune.envs.model import Knobs, Params, respond
from autotune.envs.workload import Pooled, Workload, calibration_path, demands_from, pool

from autotune.errors import UserError
from autotune.telemetry.sample import N_SLOTS, B

# Parameters fitted, how each is transformed to an unbounded value, and its bounds.
FITTED = ("u_trainer", "u_loader", "overlap", "gamma", "latency_s", "bandwidth", "streams", "waste")
BOUNDS: dict[str, tuple[float, float]] = {
    "u_trainer": (0.05, 64.0),
    "u_loader": (0.05, 64.0),
    "overlap": (0.0, 1.0),
    "gamma": (0.0, 2.0),
    "latency_s": (1e-6, 0.1),
    "bandwidth": (1e6, 1e11),
    "streams": (0.25, 64.0),
    "waste": (0.0, 4.0),
}
PRIOR_WEIGHT = 0.3  # residual weight of a prior, against 1 per recorded row
MAX_ROWS = 800  # rows used in the fit (evenly spaced): enough, and the fit stays in seconds


def _slot_mid_s() -> np.ndarray:
    return np.array([(2.0**s) * (1.5 if s else 1.0) * 1e-6 for s in range(N_SLOTS)])


def device_priors(wl: Workload) -> tuple[float, float]:
    """``(L0, B)`` from a straight line through (request size, mean latency) of every row."""
    sizes, lats = [], []
    mid = _slot_mid_s()
    for s in wl.samples:
        reqs = s.block[B["read_reqs"]]
        n = s.block_lat_hist.sum()
        if reqs > 0 and n > 0:
            sizes.append(s.block[B["read_bytes"]] / reqs)
            lats.append(float((s.block_lat_hist * mid).sum() / n))
    default = Params()
    if len(sizes) < 3 or np.ptp(sizes) <= 0:
        return default.latency_s, default.bandwidth
    slope, intercept = np.polyfit(np.array(sizes), np.array(lats), 1)
    latency = float(np.clip(intercept, *BOUNDS["latency_s"]))
    bandwidth = (
        float(np.clip(1.0 / slope, *BOUNDS["bandwidth"])) if slope > 0 else default.bandwidth
    )
    return latency, bandwidth


def _to_free(name: str, v: float) -> float:
    lo, hi = BOUNDS[name]
    if name in ("overlap",):
        v = min(max(v, 1e-4), 1 - 1e-4)
        return math.log(v / (1 - v))
    if name in ("gamma", "waste"):
        return math.log(v + 1e-3)
    return math.log(min(max(v, lo), hi))


def _from_free(name: str, x: float) -> float:
    lo, hi = BOUNDS[name]
    if name == "overlap":
        return 1.0 / (1.0 + math.exp(-x))
    if name in ("gamma", "waste"):
        return min(max(math.exp(x) - 1e-3, lo), hi)
    return min(max(math.exp(x), lo), hi)


def _rows(wl: Workload) -> np.ndarray:
    ok = np.flatnonzero(wl.rate > 0)
    if len(ok) > MAX_ROWS:
        ok = ok[np.linspace(0, len(ok) - 1, MAX_ROWS).astype(int)]
    return ok


def _predict(wl: Workload, pooled: Pooled, params: Params, rows: np.ndarray) -> np.ndarray:
    demands = demands_from(pooled, params.waste)
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
        raise UserError(f"{wl.path}: fewer than 4 rows with progress; nothing to calibrate on")
    pooled = pool(wl)
    latency, bandwidth = device_priors(wl)
    quiet = [i for i in rows if wl.knobs[i].get("weight.trainer", 1.0) == 1.0] or list(rows)
    prior = Params(
        u_trainer=float(np.clip(np.median(pooled.par_trainer[quiet]), 0.25, 16)),
        u_loader=float(np.clip(np.median(pooled.par_loader[quiet]), 0.25, 16)),
        latency_s=latency,
        bandwidth=bandwidth,
    )
    x0 = np.array([_to_free(n, getattr(prior, n)) for n in FITTED])
    target = np.log(wl.rate[rows])

    def unpack(x: np.ndarray) -> Params:
        return replace(
            prior, **{n: _from_free(n, float(v)) for n, v in zip(FITTED, x, strict=True)}
        )

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = _predict(wl, pooled, unpack(x), rows)
        fit = np.log(np.maximum(pred, 1e-9)) - target
        return np.concatenate([fit, PRIOR_WEIGHT * (x - x0) * math.sqrt(len(rows) / 50)])

    t0 = time.perf_counter()
    before = residuals(x0)[: len(rows)]
    result = least_squares(residuals, x0, method="trf", x_scale=1.0, max_nfev=400)
    params = unpack(result.x)
    fit = residuals(result.x)[: len(rows)]
    settings = sorted({json.dumps(wl.knobs[i], sort_keys=True) for i in rows})
    report = {
        "rows": len(rows),
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
    fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

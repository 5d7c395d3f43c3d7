"""Start-up and tear-down of `autotune tune --model M -- CMD`, against CMD run directly.

    python bench/online/startup.py [--repeats 5] [--job-s 3] [--out bench/results/startup.json]

CMD is a small CPU-bound Python job that writes ``time.time()`` as its first instruction and
again as its last. For each condition (quiet; beside a CPU-bound neighbour, ``stress-ng --cpu``
on every CPU) and each repeat, the two arms run in an order that rotates each repeat:

* ``direct``: CMD itself (the baseline);
* ``tune``: ``autotune tune --model M --no-view -- CMD`` with a constant policy asking for the
  default knobs (tests/policy_kit.py), its runs folder, journal and MLflow store its own.

Per run: ``start_s`` (the command's start to the job's first instruction), ``exit_s`` (the job's
last instruction to the command's exit), ``wall_s`` (the command's start to its exit) and
``work`` (the loops the job finished in its seconds: with a tuner starting beside it, importing
and compiling its BPF telemetry, a job gets less done in the same seconds). The
figures: the median of each over the repeats, and the paired differences tune - direct with
95 % intervals (bootstrap over the repeats), and the paired wall-time rate ratio direct / tune
(higher is better for tune; 1.0 is no cost), and the paired ratio of the job's work under tune
to its work run directly. Targets (issue 20): the job's first instruction
within 1 s of `autotune tune` starting, the command's exit within 1 s of the job's.

Run it under ``/work/bin/quiet measure`` (it measures). Everything it starts ends with it: the
neighbour, the jobs, the temporary folder; `autotune tune` restores its own knobs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.results import provenance, write_json  # noqa: E402
from workloads.run import leftovers  # noqa: E402

ARMS = ("direct", "tune")
TARGET_S = 1.0
# The job: its first instruction stamps the time, it burns the CPU for JOB_S seconds of wall time,
# and its last instruction stamps the time again.
JOB = (
    "import time,sys\n"
    "t0=time.time()\n"
    "open(sys.argv[1],'w').write(repr(t0))\n"
    "end=t0+float(sys.argv[3])\n"
    "n=0\n"
    "while time.time()<end:\n"
    " sum(range(1000))\n"
    " n+=1\n"
    "open(sys.argv[2],'w').write(repr(time.time())+' '+str(n))\n"
)


def _autotune() -> str:
    exe = Path(sys.executable).with_name("autotune")
    return str(exe) if exe.exists() else "autotune"


def run_once(
    arm: str, work: Path, policy: Path, job_s: float, env: dict[str, str]
) -> dict[str, float]:
    """One run of ``arm``: its start, exit and wall seconds."""
    first, last = work / "first", work / "last"
    for f in (first, last):
        f.unlink(missing_ok=True)
    job = [sys.executable, "-I", "-S", "-c", JOB, str(first), str(last), str(job_s)]
    tune = [_autotune(), "tune", "--model", str(policy), "--no-view", "--"]
    cmd = job if arm == "direct" else [*tune, *job]
    t0 = time.time()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t1 = time.time()
    if r.returncode != 0 or not first.exists() or not last.exists():
        raise SystemExit(f"startup bench: {arm} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    t_first = float(first.read_text())
    stamp, done = last.read_text().split()
    t_last = float(stamp)
    # The upload process goes on after `autotune tune` exits: wait for it, so that it does not
    # run beside the next run, and report how long it went on.
    uploading = _followers(work)
    while _followers(work):
        time.sleep(0.05)
    tail = time.time() - t1 if uploading else 0.0
    return {
        "start_s": t_first - t0,
        "exit_s": t1 - t_last,
        "wall_s": t1 - t0,
        "job_s": t_last - t_first,
        "upload_after_exit_s": tail,
        "work": float(done),
    }


def _followers(work: Path) -> list[int]:
    """The upload processes (autotune.tracking.follow) of this bench's runs still running."""
    return leftovers((b"autotune.tracking.follow",), within=str(work).encode())


def boot_ci(values: np.ndarray, rng: np.random.Generator, n: int = 10000) -> list[float]:
    """95 % bootstrap interval of the mean of ``values`` (resampled over repeats)."""
    idx = rng.integers(0, len(values), size=(n, len(values)))
    means = values[idx].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def figures(runs: dict[str, list[dict[str, float]]], rng: np.random.Generator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm in ARMS:
        out[arm] = {k: float(np.median([r[k] for r in runs[arm]])) for k in runs[arm][0]}
    for k in ("start_s", "exit_s", "wall_s"):
        d = np.array([t[k] - b[k] for t, b in zip(runs["tune"], runs["direct"], strict=True)])
        out[f"tune_minus_direct_{k}"] = {"mean": float(d.mean()), "ci95": boot_ci(d, rng)}
    pairs = list(zip(runs["tune"], runs["direct"], strict=True))
    ratio = np.array([b["wall_s"] / t["wall_s"] for t, b in pairs])
    out["tune_vs_direct_wall_rate"] = {"ratio": float(ratio.mean()), "ci95": boot_ci(ratio, rng)}
    # What the job got done in its seconds beside the starting tuner (its imports, the BPF
    # compile, the loop) against the same seconds alone: the tuner's CPU tax on the job.
    work = np.array([t["work"] / b["work"] for t, b in pairs])
    out["tune_vs_direct_work"] = {"ratio": float(work.mean()), "ci95": boot_ci(work, rng)}
    out["targets"] = {
        "start_within_1s": bool(max(r["start_s"] for r in runs["tune"]) <= TARGET_S),
        "exit_within_1s": bool(max(r["exit_s"] for r in runs["tune"]) <= TARGET_S),
    }
    return out


class Neighbour:
    """``stress-ng --cpu N`` (N: every CPU) for the ``with`` block, ended even on failure."""

    def __enter__(self) -> Neighbour:
        n = os.cpu_count() or 1
        self.proc = subprocess.Popen(
            ["stress-ng", "--cpu", str(n), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(1.0)  # its workers running
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def main() -> None:
    from policy_kit import write_constant_policy

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--job-s", type=float, default=3.0, help="the job's length, seconds")
    ap.add_argument("--conditions", default="quiet,neighbour")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/startup.json")
    args = ap.parse_args()
    if args.repeats < 2:
        raise SystemExit("startup bench: --repeats must be at least 2")
    conditions = [c for c in args.conditions.split(",") if c]
    if set(conditions) - {"quiet", "neighbour"}:
        raise SystemExit("startup bench: --conditions takes quiet and neighbour")
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="autotune-startup-bench-"))
    doc: dict[str, Any] = {**provenance(), "job_s": args.job_s, "repeats": args.repeats}
    doc["conditions"] = {}
    try:
        policy = write_constant_policy(work / "policy", {})
        env = {
            **os.environ,
            "AUTOTUNE_JOURNAL": str(work / "journal.json"),
            "AUTOTUNE_RUNS_DIR": str(work / "runs"),
            "AUTOTUNE_TRACKING_URI": f"sqlite:///{work}/runs/mlflow.db",
            "AUTOTUNE_CGROUP_PARENT": f"autotune-startup-{os.getpid()}",
        }
        for cond in conditions:
            runs: dict[str, list[dict[str, float]]] = {a: [] for a in ARMS}
            order: list[list[str]] = []
            with Neighbour() if cond == "neighbour" else contextlib.nullcontext():
                for i in range(args.repeats):
                    arms = list(ARMS) if i % 2 == 0 else list(reversed(ARMS))
                    order.append(arms)
                    for arm in arms:
                        r = run_once(arm, work, policy, args.job_s, env)
                        runs[arm].append(r)
                        line = " ".join(f"{k}={v:.3f}" for k, v in r.items())
                        print(f"{cond} #{i} {arm}: {line}", flush=True)
            doc["conditions"][cond] = {**figures(runs, rng), "order": order, "runs": runs}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(args.out, doc)
    for cond, f in doc["conditions"].items():
        tune, direct = f["tune"], f["direct"]
        print(
            f"{cond}: tune start {tune['start_s']:.2f} s (direct {direct['start_s']:.3f}), "
            f"exit {tune['exit_s']:.2f} s (direct {direct['exit_s']:.3f}), "
            f"wall rate vs direct {f['tune_vs_direct_wall_rate']['ratio']:.3f} "
            f"{f['tune_vs_direct_wall_rate']['ci95']}; the job's work vs direct "
            f"{f['tune_vs_direct_work']['ratio']:.3f} {f['tune_vs_direct_work']['ci95']}; "
            f"targets {f['targets']}"
        )


if __name__ == "__main__":
    main()

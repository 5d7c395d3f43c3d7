"""The node service's footprint: its CPU and memory while it tunes N jobs under one slice.

    .venv/bin/python -m bench.daemon.footprint --model POLICY --jobs 10 --repeats 5 \\
        --json bench/results/daemon.json

Each repeat makes a cgroup v1 ``cpu`` slice, starts ``--jobs`` light jobs in it
(bench/daemon/duty.py: 5 ms of hashing every 100 ms each), then measures two arms over the same
``--window`` seconds each, in an order that rotates every repeat:

- ``service``: ``autotune tune --follow`` on the slice at ``--interval`` ms, measured once every
  job has been attached and warmed up (its start-up, the BPF compile, is not steady state);
- ``waker``: bench/online/waker.py at the same interval, the floor: what a Python process that
  only wakes costs on this host.

Printed: the service's CPU (% of one core), the waker's, and their paired ratio per repeat with a
95 % bootstrap interval of the median; the service's steady RSS (VmRSS at the window's end) and
peak (VmHWM). Targets (issue 22): steady RSS <= 120 MB, CPU <= 1 % of a core for 10 jobs at
500 ms. Everything it starts is stopped and every cgroup removed, even when it fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import bootstrap

from autotune.system import cgroups
from bench.results import write_result
from workloads.run import on_sigterm

HERE = Path(__file__).resolve().parent


def cpu_s(pid: int) -> float:
    """On-CPU time of a process, all its threads, seconds (``schedstat``: nanoseconds, where
    ``stat``'s clock ticks see nothing of a process that wakes for microseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def window(pid: int, seconds: float) -> float:
    """The process's CPU over ``seconds`` of wall time, % of one core."""
    c0, w0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_s(pid) - c0) / (time.monotonic() - w0)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def slice_with_jobs(n: int) -> Iterator[Path]:
    root = cgroups.mounts().v1["cpu"]
    group = root / f"autotune-bench-daemon-{os.getpid()}"
    group.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
        for _ in range(n):
            argv = [
                "/bin/sh",
                "-c",
                script,
                "job",
                str(group),
                sys.executable,
                str(HERE / "duty.py"),
            ]
            procs.append(subprocess.Popen(argv))
        yield group
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (root / "cgroup.procs").write_text(pid)
        for _ in range(100):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def run_service(model: str, group: Path, interval: int, n: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="autotune-bench-daemon-") as tmp:
        env = {
            **os.environ,
            "AUTOTUNE_JOURNAL": f"{tmp}/journal.json",
            "AUTOTUNE_STATE_DIR": f"{tmp}/state",
            "AUTOTUNE_RUNS_DIR": f"{tmp}/runs",
            "AUTOTUNE_CGROUP_PARENT": f"autotune-bench-daemon-{os.getpid()}-t",
        }
        cmd = [sys.executable, "-m", "autotune.cli.main", "tune", "--follow", "--no-view"]
        cmd += ["--model", model, "--cgroup", str(group), "--interval", str(interval)]
        with open(f"{tmp}/service.err", "wb") as err:
            proc = subprocess.Popen(cmd, env=env, stderr=err)
        try:
            ready = _wait_attached(Path(tmp) / "state", n, proc)
            if not ready:
                raise SystemExit(
                    f"the service did not attach {n} jobs; see its stderr:\n"
                    + Path(f"{tmp}/service.err").read_text()[-2000:]
                )
            time.sleep(5)  # the last job's warm-up
            cpu = window(proc.pid, seconds)
            return {
                "cpu_percent": cpu,
                "rss_mb": status_mb(proc.pid, "VmRSS"),
                "peak_mb": status_mb(proc.pid, "VmHWM"),
            }
        finally:
            stop(proc)
            if Path(env["AUTOTUNE_JOURNAL"]).exists():
                subprocess.run([*cmd[:3], "restore"], env=env, check=False)


def _wait_attached(state_dir: Path, n: int, proc: subprocess.Popen[bytes]) -> bool:
    end = time.monotonic() + 300
    while time.monotonic() < end and proc.poll() is None:
        for f in state_dir.glob("service-*.json"):
            with contextlib.suppress(OSError, ValueError):
                jobs = json.loads(f.read_text())["jobs"]
                if len(jobs) == n and all(j["guard"] != "starting" for j in jobs):
                    return True
        time.sleep(0.5)
    return False


def run_waker(interval: int, seconds: float) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench.online.waker", "--interval", str(interval)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        time.sleep(2)  # its imports
        return {"cpu_percent": window(proc.pid, seconds), "rss_mb": status_mb(proc.pid, "VmRSS")}
    finally:
        stop(proc)


def ci(values: list[float]) -> tuple[float, float]:
    if len(values) < 2 or len(set(values)) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    res = bootstrap((np.asarray(values),), np.median, confidence_level=0.95, random_state=0)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="exported policy folder or MLflow run id")
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--interval", type=int, default=500, help="ms")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--window", type=float, default=30.0, help="seconds measured per arm")
    ap.add_argument("--json", help="write the raw repeats here")
    ap.add_argument("--note", help="what else ran on the machine, for the result file")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C: the jobs are stopped and the slice removed.
    signal.signal(signal.SIGTERM, on_sigterm)
    if args.repeats < 5:
        raise SystemExit("--repeats: at least 5")
    repeats: list[dict[str, Any]] = []
    with slice_with_jobs(args.jobs) as group:
        for r in range(args.repeats):
            order = ["service", "waker"] if r % 2 == 0 else ["waker", "service"]
            row: dict[str, Any] = {"order": order, "load_before": os.getloadavg()[0]}
            for arm in order:
                if arm == "service":
                    row["service"] = run_service(
                        args.model, group, args.interval, args.jobs, args.window
                    )
                else:
                    row["waker"] = run_waker(args.interval, args.window)
            row["ratio"] = row["service"]["cpu_percent"] / max(row["waker"]["cpu_percent"], 1e-6)
            repeats.append(row)
            print(
                f"repeat {r + 1}: service {row['service']['cpu_percent']:.2f}% CPU, "
                f"{row['service']['rss_mb']:.0f} MB (peak {row['service']['peak_mb']:.0f}); "
                f"waker {row['waker']['cpu_percent']:.2f}%; service/waker {row['ratio']:.2f}x; "
                f"load {row['load_before']:.1f}",
                flush=True,
            )
    svc = [x["service"]["cpu_percent"] for x in repeats]
    wak = [x["waker"]["cpu_percent"] for x in repeats]
    ratio = [x["ratio"] for x in repeats]
    rss = [x["service"]["rss_mb"] for x in repeats]
    peak = [x["service"]["peak_mb"] for x in repeats]
    lo, hi = ci(ratio)
    summary = {
        "service_cpu_percent_median": statistics.median(svc),
        "service_cpu_percent_ci95": ci(svc),
        "waker_cpu_percent_median": statistics.median(wak),
        "ratio_service_over_waker_median": statistics.median(ratio),
        "ratio_ci95": (lo, hi),
        "rss_mb_median": statistics.median(rss),
        "rss_mb_ci95": ci(rss),
        "peak_mb_median": statistics.median(peak),
        "targets": {"rss_mb": 120, "cpu_percent": 1.0},
    }
    print(
        f"\n{args.jobs} jobs at {args.interval} ms, {args.repeats} rotated repeats of "
        f"{args.window:.0f} s: service {summary['service_cpu_percent_median']:.2f}% of a core "
        f"(target <= 1%), the waker floor {summary['waker_cpu_percent_median']:.2f}%; "
        f"service/waker {summary['ratio_service_over_waker_median']:.2f}x [{lo:.2f}, {hi:.2f}]; "
        f"steady RSS {summary['rss_mb_median']:.0f} MB (target <= 120), peak "
        f"{summary['peak_mb_median']:.0f} MB"
    )
    if args.json:
        write_result(args.json, __file__, args.note, summary=summary, repeats=repeats)


if __name__ == "__main__":
    main()

"""Online tuning on real jobs, measured fairly: wall time, same helpers, rotated, paired.

    .venv/bin/python -m bench.online.online --model RUN_ID|PATH [--job NAME ...] [--repeats 5]
        [--arms default,static_best,static_tuned,tuned,adapt,alone] [--grid bench/results/grid.json]
        [--target-wall 10] [--samples N|JOB=N,...] [--static-best k=v,...]
        [--out bench/results/online.json]

Each job (workloads/catalog.py, cold data on a loop device of the harness's own) runs to the
same number of samples in every arm:

* ``default``: the knobs as found (read-ahead from ``--start-readahead``, 128 KiB);
* ``static_best``: the real static-best setting (``--grid``: bench/results/grid.json, the grid run
  on this machine), held by the harness from the job's start;
* ``static_tuned``: the same setting through ``autotune tune`` with a constant policy that always
  asks for it: the tuner's full cost (start-up, warm-up, guard, tear-down) with a policy that
  knows the answer, so ``tuned`` against it isolates the trained policy;
* ``tuned``: ``autotune tune --model MODEL``; ``adapt``: the same with ``--adapt`` (left out, with
  a line saying so, where this checkout's ``autotune tune`` has no such flag);
* ``alone``: for a job beside the noisy neighbour, the job at default knobs with no neighbour
  (the limit); ``replay_pick`` (only when asked in ``--arms``): the replay model's static-best;
  ``tuned_fast`` and ``static_tuned_fast`` (only when asked): ``tuned`` and ``static_tuned``
  with the guard's options for its fixed cost set in their environment, several rungs per
  change and the deferred warm-up (:data:`FAST_GUARD`). They are the defaults since
  2026-12-05, so these arms differ from the plain ones only where the environment or a
  checkout from before sets them off; ``tuned_family`` (only when asked): ``tuned`` with the
  guard changing one knob family at a time (:data:`ONE_FAMILY`); ``tuned_probe`` (only when
  asked): ``tuned`` with the guard probing each family of a combined change alone
  (:data:`PROBE`); ``challenger`` (only when asked): ``tuned`` with another policy,
  ``--challenger MODEL`` (one trained otherwise), so that two policies meet the same runs;
  ``tuned_cold`` (only when asked): ``tuned`` with the tuner's start as it was before
  2026-12-06 (:data:`COLD_START`: its threads at the job's nice value, no warm-up from
  ``/proc`` while the telemetry compiles, default knobs again when the job's own progress
  reports begin); ``tuned_slow_retreat`` (only when asked): ``tuned`` with the guard's step
  back toward default rate-limited as any change (:data:`SLOW_RETREAT`), as before 2026-12-06;
  ``tuned_no_start`` (only when asked): ``tuned`` with the job started at the default weights
  beside a busy node (:data:`NO_START`, ``guard_start_weight = 1``), as before 2026-12-06's
  start weights; ``tuned_no_early`` (only when asked): ``tuned`` with every change judged
  after its whole canary window (:data:`NO_EARLY`, ``guard_early_fall = 0``), as before
  2026-12-06's early rollback; ``tuned_mixed_baseline`` (only when asked): ``tuned`` with each
  change judged against the last canary window's rates, whatever setting ran in them
  (:data:`MIXED_BASELINE`, ``guard_steady_baseline = false``), as before 2026-12-06;
  ``tuned_new_opens`` (only when asked): ``tuned`` with a read-ahead that reaches only the
  files the job opens afterwards (:data:`NEW_OPENS`, ``readahead_open_files = false``), as
  before 2026-12-06; ``tuned_return`` and ``tuned_no_return`` (only when asked): ``tuned``
  with the guard's fast return to a vetted level set on and off (:data:`RETURN`,
  ``guard_fast_return``); ``tuned_quick`` and ``static_tuned_quick`` (only when asked):
  ``tuned`` and ``static_tuned`` with the guard's clock halved (:data:`QUICK`: 1 s canary
  window and dwell, 0.5 s least warm-up); ``tuned_startup_hold`` and
  ``static_tuned_startup_hold`` (only when asked): ``tuned`` and ``static_tuned`` with only the
  weights moving until the job's own progress reports begin, 10 s at most
  (:data:`STARTUP_HOLD`, ``guard_startup_hold_s``); ``watch`` (only when asked): the trained policy
  with ``--dry-run``, so the tuner's whole cost at the default knobs (its start, telemetry,
  loop and exit; nothing written), ``watch_vs_default``; ``watch_no_live`` (only when asked):
  ``watch`` with the session's MLflow run uploaded only once it has ended (:data:`NO_LIVE`);
  ``watch_nice0`` (only when asked): ``watch`` with the tuner's threads at the job's nice value
  (:data:`NICE0`).

What is measured is the wall time of the command a person runs, from its start to its exit: the
``autotune tune ... -- job`` command for the tuned arms, the job's own command for the others
(interpreter start-up included); the job's own timed part beside it. Every arm has the same
helper beside it: the harness's 250 ms pass over the job's processes (which places new workers
under a held setting, and only lists them when nothing is held); no other process. Spells (the
neighbour's of neighbour_onoff, mixed_io's own) last 4-8 s, as in ``bench.grid``, so that a run
holds several of each kind. The arms'
order rotates each repeat. Each run starts on a quiet node (:data:`SETTLE_S`,
``workloads.run.settle``): the harness waits for what the run before left behind, a tune
session's uploader above all, whose last upload (2-5 s of CPU) otherwise landed on the next
arm's start. A rate is samples over wall seconds (higher is better), and each ratio is paired by
repeat: geometric mean over repeats with a 95 % bootstrap interval. Each run's ``timeline``
says where its wall time went: ``launch`` (the command's start to the job's process),
``startup`` (to the job's timed part), ``timed`` and ``after`` (to the command's exit); the
run's line prints it, with the wait for a quiet node when it was a second or more.

Static-best comes from the grid file's entry for the job (``static_best.setting``: a label such
as ``weight.loader=8,weight.trainer=8``, ``default``, or a knob → value object, applied on the
grid's ``base``); where the file or the entry is missing or unreadable the bench says so on one
line and falls back to the replay's pick, which is recorded beside it in any case
(``replay_pick``, issue 19); ``--static-best`` overrides both. Run size: ``--samples`` (one
count for every job, or ``JOB=N,...`` per job, so that one call runs every job at its own
size), else the grid's samples for the job, else a probe at the default knobs sized to
``--target-wall`` seconds of wall time (× 1.6 for the two spell jobs).

Results merge into ``--out`` one job at a time (other jobs' entries kept), through
bench/results.py, in the shape issue 20 gives: per job ``repeats``, ``tuned_vs_default``,
``tuned_vs_static_best``, ``tuned_vs_alone`` (neighbour jobs), more ratios, and ``arms`` with
every repeat's wall and job times. Run it on a machine where nothing else runs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.knobs import READAHEAD_DEFAULT_KB
from autotune.policy import write_constant
from bench.adaptive.oracle import paired
from bench.results import provenance, write_json
from workloads import catalog
from workloads.knobs import format_knobs, parse
from workloads.run import BENCH_SPELL_S, REPO, Result, Workbench, on_sigterm

OUT = REPO / "bench" / "results" / "online.json"
GRID = REPO / "bench" / "results" / "grid.json"
ARMS = (
    "default",
    "static_best",
    "static_tuned",
    "tuned",
    "adapt",
    "alone",
    "replay_pick",
    "tuned_fast",
    "static_tuned_fast",
    "tuned_family",
    "tuned_probe",
    "challenger",
    "tuned_cold",
    "tuned_slow_retreat",
    "tuned_no_start",
    "tuned_no_early",
    "tuned_mixed_baseline",
    "tuned_new_opens",
    "tuned_return",
    "tuned_no_return",
    "tuned_quick",
    "static_tuned_quick",
    "tuned_startup_hold",
    "static_tuned_startup_hold",
    "watch",
    "watch_no_live",
    "watch_nice0",
)
DEFAULT_ARMS = ARMS[:6]
TUNED_ARMS = (
    "static_tuned",
    "tuned",
    "adapt",
    "tuned_fast",
    "static_tuned_fast",
    "tuned_family",
    "tuned_probe",
    "challenger",
    "tuned_cold",
    "tuned_slow_retreat",
    "tuned_no_start",
    "tuned_no_early",
    "tuned_mixed_baseline",
    "tuned_new_opens",
    "tuned_return",
    "tuned_no_return",
    "tuned_quick",
    "static_tuned_quick",
    "tuned_startup_hold",
    "static_tuned_startup_hold",
    "watch",
    "watch_no_live",
    "watch_nice0",
)
# The tuned arms whose policy is the constant one asking for static-best.
CONSTANT_ARMS = (
    "static_tuned",
    "static_tuned_fast",
    "static_tuned_quick",
    "static_tuned_startup_hold",
)
# The guard's options for its fixed cost (docs/online-tuning.md), set explicitly.
FAST_GUARD = {"AUTOTUNE_GUARD_MAX_RUNGS": "3", "AUTOTUNE_GUARD_WARMUP_DEFER": "true"}
# The guard option that changes one knob family at a time (docs/online-tuning.md), set explicitly.
ONE_FAMILY = {"AUTOTUNE_GUARD_ONE_FAMILY": "true"}
# The guard option that probes each family of a combined change alone.
PROBE = {"AUTOTUNE_GUARD_PROBE_FAMILIES": "true"}
# The tuner's start as it was before 2026-12-06 (docs/online-tuning.md): its threads at the
# job's nice value, the warm-up only once the telemetry is up, default knobs again when the
# job starts reporting its own progress, and no weights before the policy's first change.
COLD_START = {
    "AUTOTUNE_TUNE_NICE": "0",
    "AUTOTUNE_GUARD_WARMUP_PROC": "false",
    "AUTOTUNE_GUARD_KEEP_ON_RESTART": "false",
    "AUTOTUNE_GUARD_START_WEIGHT": "1",
}
# The guard before 2026-12-06: a step back toward default rate-limited as any change.
SLOW_RETREAT = {"AUTOTUNE_GUARD_FAST_RETREAT": "false"}
# The tuner's start before 2026-12-06's start weights: default knobs until the first change.
NO_START = {"AUTOTUNE_GUARD_START_WEIGHT": "1"}
# The guard as before 2026-12-06's early rollback: a change judged after its whole canary window.
NO_EARLY = {"AUTOTUNE_GUARD_EARLY_FALL": "0"}
# The guard before 2026-12-06's steady baseline: a change judged against the last rates,
# whatever setting ran in them (a rolled-back change's, the interval that mixes two).
MIXED_BASELINE = {"AUTOTUNE_GUARD_STEADY_BASELINE": "false"}
# The read-ahead before 2026-12-06: a value reaches only the files the job opens afterwards.
NEW_OPENS = {"AUTOTUNE_READAHEAD_OPEN_FILES": "false"}
# The guard's fast return to a level a passed canary vetted, set on and off explicitly.
RETURN = {"AUTOTUNE_GUARD_FAST_RETURN": "true"}
NO_RETURN = {"AUTOTUNE_GUARD_FAST_RETURN": "false"}
# The guard's clock halved: a 1 s canary window and dwell, a 0.5 s least warm-up (the defaults:
# 2 s, 2 s, 1 s). The warm-up at default knobs lasts a canary window at least, so on a job of
# 5-15 s the tuner's fixed cost is mostly this clock.
QUICK = {
    "AUTOTUNE_GUARD_CANARY_S": "1.0",
    "AUTOTUNE_GUARD_DWELL_S": "1.0",
    "AUTOTUNE_GUARD_WARMUP_MIN_S": "0.5",
}
# Only the weights move until the job's own progress reports begin (10 s at most): no core
# split or read-ahead beside its imports and worker start.
STARTUP_HOLD = {"AUTOTUNE_GUARD_STARTUP_HOLD_S": "10"}
# The session's MLflow run uploaded only once it has ended: no MLflow client loaded beside the job.
NO_LIVE = {"AUTOTUNE_TRACKING_LIVE_UPLOAD_S": "0"}
# The tuner's threads (the compile, the loop) at the job's nice value, not at tune_nice's -10.
NICE0 = {"AUTOTUNE_TUNE_NICE": "0"}
ARM_ENV = {
    "tuned_fast": FAST_GUARD,
    "static_tuned_fast": FAST_GUARD,
    "tuned_family": ONE_FAMILY,
    "tuned_probe": PROBE,
    "tuned_cold": COLD_START,
    "tuned_slow_retreat": SLOW_RETREAT,
    "tuned_no_start": NO_START,
    "tuned_no_early": NO_EARLY,
    "tuned_mixed_baseline": MIXED_BASELINE,
    "tuned_new_opens": NEW_OPENS,
    "tuned_return": RETURN,
    "tuned_no_return": NO_RETURN,
    "tuned_quick": QUICK,
    "static_tuned_quick": QUICK,
    "tuned_startup_hold": STARTUP_HOLD,
    "static_tuned_startup_hold": STARTUP_HOLD,
    "watch_no_live": NO_LIVE,
    "watch_nice0": NICE0,
}
# The two jobs whose best setting changes during the run: their spells are shortened to fit a
# bench run (the recordings' 10-40 s would give one spell per run).
SPELL_S = BENCH_SPELL_S  # the neighbour's and mixed_io's own, as in bench.grid
# Each run starts on a quiet node: an `autotune tune` session's last upload (2-5 s of CPU at
# nice 19 once its job has ended) landed on the start of the next arm, the same arm each
# repeat (the rotation keeps who follows whom), as run-queue wait in its job's start-up.
SETTLE_S = 30.0
ADAPTIVE_TARGET_WALL = 1.6  # × --target-wall for them: a few spells each
BATCH = 64  # samples round up to this (every job's batch divides it)
SUMMARY = re.compile(r"tuner ([0-9.]+)% CPU, ([0-9.]+) MB")
# (arm, baseline) → result key; the first three are the issue's.
RATIOS = {
    ("tuned", "default"): "tuned_vs_default",
    ("tuned", "static_best"): "tuned_vs_static_best",
    ("tuned", "alone"): "tuned_vs_alone",
    ("tuned", "static_tuned"): "tuned_vs_static_tuned",
    ("static_best", "default"): "static_best_vs_default",
    ("static_tuned", "static_best"): "static_tuned_vs_static_best",
    ("adapt", "default"): "adapt_vs_default",
    ("adapt", "static_best"): "adapt_vs_static_best",
    ("adapt", "tuned"): "adapt_vs_tuned",
    ("adapt", "alone"): "adapt_vs_alone",
    ("replay_pick", "static_best"): "replay_pick_vs_static_best",
    ("default", "alone"): "default_vs_alone",
    ("tuned_fast", "default"): "tuned_fast_vs_default",
    ("tuned_fast", "static_best"): "tuned_fast_vs_static_best",
    ("tuned_fast", "tuned"): "tuned_fast_vs_tuned",
    ("tuned_fast", "alone"): "tuned_fast_vs_alone",
    ("static_tuned_fast", "static_best"): "static_tuned_fast_vs_static_best",
    ("static_tuned_fast", "static_tuned"): "static_tuned_fast_vs_static_tuned",
    ("tuned_family", "default"): "tuned_family_vs_default",
    ("tuned_family", "static_best"): "tuned_family_vs_static_best",
    ("tuned_family", "tuned"): "tuned_family_vs_tuned",
    ("tuned_family", "alone"): "tuned_family_vs_alone",
    ("tuned_probe", "default"): "tuned_probe_vs_default",
    ("tuned_probe", "static_best"): "tuned_probe_vs_static_best",
    ("tuned_probe", "tuned"): "tuned_probe_vs_tuned",
    ("tuned_probe", "alone"): "tuned_probe_vs_alone",
    ("challenger", "default"): "challenger_vs_default",
    ("challenger", "static_best"): "challenger_vs_static_best",
    ("challenger", "tuned"): "challenger_vs_tuned",
    ("challenger", "alone"): "challenger_vs_alone",
    ("tuned", "tuned_cold"): "tuned_vs_tuned_cold",
    ("tuned_cold", "default"): "tuned_cold_vs_default",
    ("tuned_cold", "static_best"): "tuned_cold_vs_static_best",
    ("tuned_cold", "alone"): "tuned_cold_vs_alone",
    ("tuned", "tuned_slow_retreat"): "tuned_vs_tuned_slow_retreat",
    ("tuned_slow_retreat", "default"): "tuned_slow_retreat_vs_default",
    ("tuned_slow_retreat", "static_best"): "tuned_slow_retreat_vs_static_best",
    ("tuned", "tuned_no_start"): "tuned_vs_tuned_no_start",
    ("tuned_no_start", "static_best"): "tuned_no_start_vs_static_best",
    ("tuned_no_start", "alone"): "tuned_no_start_vs_alone",
    ("tuned", "tuned_no_early"): "tuned_vs_tuned_no_early",
    ("tuned_no_early", "static_best"): "tuned_no_early_vs_static_best",
    ("tuned", "tuned_mixed_baseline"): "tuned_vs_tuned_mixed_baseline",
    ("tuned_mixed_baseline", "default"): "tuned_mixed_baseline_vs_default",
    ("tuned_mixed_baseline", "static_best"): "tuned_mixed_baseline_vs_static_best",
    ("tuned", "tuned_new_opens"): "tuned_vs_tuned_new_opens",
    ("tuned_new_opens", "default"): "tuned_new_opens_vs_default",
    ("tuned_new_opens", "static_best"): "tuned_new_opens_vs_static_best",
    ("tuned_return", "tuned_no_return"): "tuned_return_vs_tuned_no_return",
    ("tuned_return", "default"): "tuned_return_vs_default",
    ("tuned_return", "static_best"): "tuned_return_vs_static_best",
    ("tuned_no_return", "static_best"): "tuned_no_return_vs_static_best",
    ("tuned_return", "alone"): "tuned_return_vs_alone",
    ("tuned_quick", "tuned"): "tuned_quick_vs_tuned",
    ("tuned_quick", "default"): "tuned_quick_vs_default",
    ("tuned_quick", "static_best"): "tuned_quick_vs_static_best",
    ("tuned_quick", "alone"): "tuned_quick_vs_alone",
    ("static_tuned_quick", "static_tuned"): "static_tuned_quick_vs_static_tuned",
    ("static_tuned_quick", "static_best"): "static_tuned_quick_vs_static_best",
    ("tuned_startup_hold", "tuned"): "tuned_startup_hold_vs_tuned",
    ("tuned_startup_hold", "default"): "tuned_startup_hold_vs_default",
    ("tuned_startup_hold", "static_best"): "tuned_startup_hold_vs_static_best",
    ("tuned_startup_hold", "alone"): "tuned_startup_hold_vs_alone",
    ("static_tuned_startup_hold", "static_tuned"): "static_tuned_startup_hold_vs_static_tuned",
    ("static_tuned_startup_hold", "static_best"): "static_tuned_startup_hold_vs_static_best",
    ("watch", "default"): "watch_vs_default",
    ("watch_no_live", "default"): "watch_no_live_vs_default",
    ("watch_no_live", "watch"): "watch_no_live_vs_watch",
    ("watch_nice0", "default"): "watch_nice0_vs_default",
    ("watch_nice0", "watch"): "watch_nice0_vs_watch",
}


def replay_pick(name: str) -> dict[str, float] | None:
    """The replay model's best fixed setting for a recorded workload (None: not recorded), as
    the grid finds it (:func:`bench.grid.replay.replay_pick`)."""
    from bench.grid import replay

    if not catalog.get(name).recorded:
        return None
    wl, _ = replay.recording(name)
    return None if wl is None else replay.replay_pick(wl)


def grid_entry(path: Path, name: str) -> tuple[dict[str, Any] | None, str]:
    """The grid file's entry for ``name``, or None and why not."""
    if not path.is_file():
        return None, f"no grid file {path}"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{path} is not readable JSON ({e})"
    jobs = doc.get("workloads", doc.get("jobs", doc)) if isinstance(doc, dict) else None
    entry = jobs.get(name) if isinstance(jobs, dict) else None
    if not isinstance(entry, dict):
        return None, f"{path} has no entry for {name}"
    return entry, ""


def grid_static_best(entry: Mapping[str, Any]) -> tuple[dict[str, float] | None, str]:
    """The entry's real static-best as knob values on its base, or None and why not."""
    best = entry.get("static_best")
    setting = best.get("setting") if isinstance(best, dict) else None
    base = entry.get("base") if isinstance(entry.get("base"), dict) else {}
    try:
        if isinstance(setting, str):
            knobs = {} if setting == "default" else parse(setting)
        elif isinstance(setting, dict):
            knobs = _values(setting)
        else:
            return None, "its static_best has no setting"
        return {**_values(base), **knobs}, ""
    except (UserError, TypeError, ValueError) as e:
        return None, f"its static_best setting {setting!r} is not a setting here ({e})"


def _values(knobs: Mapping[str, Any]) -> dict[str, float]:
    """Knob → value, each checked against its ladder (a UserError when not)."""
    return parse(",".join(f"{k}={float(v):g}" for k, v in knobs.items()))


def grid_replay_pick(entry: Mapping[str, Any]) -> dict[str, float] | None:
    """The replay's pick as the grid recorded it (a label), or None."""
    label = entry.get("replay_pick")
    if not isinstance(label, str):
        return None
    try:
        return {} if label == "default" else parse(label)
    except UserError:
        return None


def _rate(r: dict[str, Any]) -> float:
    return float(r["samples"]) / float(r["wall_s"])


def ratios(runs: Mapping[str, Sequence[dict[str, Any]]], repeats: int) -> dict[str, Any]:
    """Each ratio of :data:`RATIOS` whose two arms both ran: paired by repeat (a repeat where
    either arm failed is left out), ``ratio`` (geometric mean) and ``ci95``; ``job_ratio`` is the
    same on the job's own time."""
    out: dict[str, Any] = {}
    for (arm, base), key in RATIOS.items():
        if arm not in runs or base not in runs:
            continue
        a = {r["repeat"]: r for r in runs[arm] if "error" not in r}
        b = {r["repeat"]: r for r in runs[base] if "error" not in r}
        both = [i for i in range(repeats) if i in a and i in b]
        if not both:
            continue
        wall = paired([_rate(a[i]) for i in both], [_rate(b[i]) for i in both])
        job = paired([b[i]["job_s"] for i in both], [a[i]["job_s"] for i in both])
        out[key] = {
            "ratio": round(wall["mean"], 4),
            "ci95": [round(x, 4) for x in wall["ci95"]],
            "n": wall["n"],
            "job_ratio": round(job["mean"], 4),
            "job_ci95": [round(x, 4) for x in job["ci95"]],
        }
    return out


def rotate(arms: Sequence[str], repeat: int) -> list[str]:
    k = repeat % len(arms)
    return [*arms[k:], *arms[:k]]


def round_up(n: float) -> int:
    return max(BATCH, math.ceil(n / BATCH) * BATCH)


class Bench:
    """One invocation: the workbench, the arms asked for, and the commands they run."""

    def __init__(self, args: argparse.Namespace, wb: Workbench, arms: list[str]) -> None:
        self.args = args
        self.wb = wb
        self.arms = arms
        self.start = {"readahead": float(args.start_readahead)}
        self.tune = [autotune_cmd(), "tune", "--no-view"]
        if args.interval:
            self.tune += ["--interval", str(args.interval)]
        self.model = args.model
        self.challenger = args.challenger
        self.tmp = Path(tempfile.mkdtemp(prefix="online-bench-"))

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, name: str, samples: int, arm: str, setting: dict[str, Any]) -> Result:
        under = None
        knobs: Mapping[str, float] = self.start
        noisy = None
        if arm in ("static_best", "replay_pick"):
            knobs = setting[arm]
        elif arm == "alone":
            noisy = False
        elif arm in TUNED_ARMS:
            model = (
                str(setting["policy"])
                if arm in CONSTANT_ARMS
                else self.challenger
                if arm == "challenger"
                else self.model
            )
            cmd = [*self.tune, "--model", model, *(["--adapt"] if arm == "adapt" else [])]
            if arm.startswith("watch"):
                cmd.append("--dry-run")
            if arm in ARM_ENV:
                cmd = ["env", *(f"{k}={v}" for k, v in ARM_ENV[arm].items()), *cmd]
            under = " ".join(cmd)
        return self.wb.run(
            name,
            samples,
            knobs,
            noisy,
            under=under,
            timeout_s=self.args.timeout,
        )

    def size(self, name: str, entry: Mapping[str, Any] | None) -> tuple[int, dict[str, Any]]:
        """Samples per run, and how they were chosen."""
        every, per_job = self.args.samples
        given = per_job.get(name, every)
        if given:
            return given, {"from": "--samples"}
        target = self.args.target_wall
        if catalog.get(name).spell_kinds:
            target *= ADAPTIVE_TARGET_WALL
        if entry and isinstance(entry.get("samples"), int):
            return int(entry["samples"]), {"from": "grid"}
        probe = self.run(name, self.args.probe_samples, "default", {})
        start_s = probe.wall_s - probe.job_s
        rate = probe.samples / max(probe.job_s, 1e-6)
        n = round_up(rate * max(target - start_s, 1.0))
        print(
            f"  probe: {probe.samples} samples, wall {probe.wall_s:.1f} s (job {probe.job_s:.1f} s)"
            f" → {n} samples for about {target:.0f} s of wall",
            flush=True,
        )
        return n, {"from": "probe", "target_wall_s": target, "probe": run_row(probe)}

    def job(self, name: str) -> None:
        """Every arm of one job, repeated; merged into ``--out`` after each repeat."""
        w = catalog.get(name)
        entry, why = grid_entry(self.args.grid, name)
        best, why2 = grid_static_best(entry) if entry else (None, why)
        pick = grid_replay_pick(entry) if entry else None
        if pick is None:
            pick = replay_pick(name)
        source = f"grid ({self.args.grid})"
        if self.args.static_best is not None:
            best = {**self.start, **parse(self.args.static_best)}
            source = "--static-best (hand-picked, not a grid)"
        elif best is None:
            if pick is None:
                raise UserError(
                    f"no static-best for {name}: {why or why2}, and it has no recording for the "
                    "replay to pick one (run `python -m bench.grid --workload "
                    f"{name}` first)"
                )
            print(
                f"online: warning: {name}: {why or why2}; static-best falls back to the replay's "
                f"pick {format_knobs(pick)}",
                file=sys.stderr,
                flush=True,
            )
            best, source = {**self.start, **pick}, "replay_pick (grid missing)"
        arms = [a for a in self.arms if a != "alone" or w.noisy]
        setting: dict[str, Any] = {
            "static_best": best,
            "replay_pick": {**self.start, **(pick or {})},
        }
        if set(CONSTANT_ARMS) & set(arms):
            setting["policy"] = write_constant(self.tmp / name, best)
        samples, sizing = self.size(name, entry)
        print(
            f"\n{name}: {samples} samples per run, static-best {format_knobs(best)} ({source}), "
            f"arms {', '.join(arms)}",
            flush=True,
        )
        runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
        for rep in range(self.args.repeats):
            for pos, arm in enumerate(rotate(arms, rep)):
                row: dict[str, Any] = {"repeat": rep, "position": pos}
                try:
                    r = self.run(name, samples, arm, setting)
                except UserError as e:  # this run failed (or could not hold its setting)
                    row["error"] = str(e)
                    print(f"  {rep} {arm:<13} failed: {e}", flush=True)
                else:
                    row.update(run_row(r))
                    parts = " ".join(f"{k} {v:.2f}" for k, v in r.timeline.items())
                    print(
                        f"  {rep} {arm:<13} wall {r.wall_s:6.2f} s  job {r.job_s:6.2f} s  "
                        f"{r.samples / r.wall_s:7.1f} samples/s (wall)  load {r.load1:.1f}"
                        + (f"  [{parts}]" if parts else "")
                        + (f"  settled {r.settled_s:.1f} s" if r.settled_s >= 1 else ""),
                        flush=True,
                    )
                runs[arm].append(row)
            # Merged after every repeat: a chunk cut short keeps the repeats it finished.
            result = {
                "workload": name,
                "noisy": w.noisy,
                "samples": samples,
                "sizing": sizing,
                "repeats": rep + 1,
                **ratios(runs, rep + 1),
                "static_best": {"setting": best, "source": source},
                "replay_pick": {"setting": setting["replay_pick"], "recorded": pick is not None},
                "spell_s": list(SPELL_S) if w.spell_kinds else None,
                **({"challenger": self.challenger} if "challenger" in arms else {}),
                "arms": runs,
            }
            save(self.args.out, name, result, self.model or "")
        show(name, result)


def run_row(r: Result) -> dict[str, Any]:
    row: dict[str, Any] = {
        "wall_s": r.wall_s,
        "job_s": r.job_s,
        "samples": r.samples,
        "load1": r.load1,
        "in_effect": r.in_effect,
        "timeline": r.timeline,
        "settled_s": r.settled_s,
    }
    for line in r.stderr_tail:
        m = SUMMARY.search(line)
        if m:
            row["tuner_cpu_percent"], row["tuner_rss_mb"] = float(m.group(1)), float(m.group(2))
    return row


def show(name: str, result: Mapping[str, Any]) -> None:
    for key in RATIOS.values():
        if key in result:
            x = result[key]
            print(
                f"  {key:<28} {x['ratio']:.3f} [{x['ci95'][0]:.3f}, {x['ci95'][1]:.3f}]"
                f"   job time {x['job_ratio']:.3f}",
                flush=True,
            )


def load_doc(path: Path) -> dict[str, Any]:
    """The result file as it is (empty when missing); a damaged one is an error before any run."""
    from bench.results import read_merged

    return read_merged(path, "jobs", "an online result file")


def save(path: Path, name: str, result: dict[str, Any], model: str) -> None:
    """Merge one job's result into the file (re-read now) and write it whole, atomically."""
    doc = load_doc(path)
    head = provenance()
    jobs = {**doc["jobs"], name: {**head, "model": model, **result}}
    write_json(path, {**doc, **head, "jobs": jobs})


def autotune_cmd() -> str:
    """This checkout's autotune command."""
    exe = Path(sys.executable).with_name("autotune")
    return str(exe) if exe.exists() else "autotune"


def has_adapt() -> bool:
    """Whether this checkout's ``autotune tune`` takes ``--adapt``."""
    out = subprocess.run(
        [autotune_cmd(), "tune", "--help"], capture_output=True, text=True, check=False
    )
    return "--adapt" in out.stdout


def parse_samples(text: str | None) -> tuple[int | None, dict[str, int]]:
    """``--samples``: ``N`` (every job), ``JOB=N,...`` (those jobs), or both; ``(N or None,
    {job: N})``. A bad count or an unknown job is a UserError."""
    every: int | None = None
    per_job: dict[str, int] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, _, count = part.rpartition("=")
        name = name.strip()
        if name and name not in catalog.WORKLOADS:
            raise UserError(
                f"--samples: no job named {name!r}; jobs: {', '.join(catalog.WORKLOADS)}"
            )
        try:
            n = int(count)
        except ValueError:
            n = 0
        if n < 1:
            raise UserError(f"--samples: {part.strip()!r} is not a positive sample count")
        if name:
            per_job[name] = n
        else:
            every = n
    return every, per_job


def parse_arms(text: str, model: str | None, challenger: str | None = None) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise UserError(f"--arms takes names from {', '.join(ARMS)}; got {text!r}")
    if len(set(arms)) != len(arms):
        raise UserError(f"--arms names an arm twice: {text!r}")
    if model is None and {"tuned", "adapt"} & set(arms):
        raise UserError("the tuned and adapt arms need --model (a run id or a policy folder)")
    if challenger is None and "challenger" in arms:
        raise UserError("the challenger arm needs --challenger (a run id or a policy folder)")
    if "adapt" in arms and not has_adapt():
        print(
            "online: warning: this checkout's `autotune tune` has no --adapt; the adapt arm is "
            "left out",
            file=sys.stderr,
        )
        arms.remove("adapt")
    return arms


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.online.online", description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="MLflow run id or exported policy folder (tuned, adapt)")
    ap.add_argument("--challenger", help="another policy, run id or folder, for the challenger arm")
    ap.add_argument("--job", action="append", choices=sorted(catalog.WORKLOADS))
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS), help="comma-separated")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--grid", type=Path, default=GRID, help="the real grid's result file")
    ap.add_argument(
        "--samples",
        help="samples per run: N for every job, or JOB=N,... per job, or both "
        "(default: the grid's, or a probe)",
    )
    ap.add_argument(
        "--static-best",
        help="the static-best setting, name=value,... (instead of the grid's; say why in the note)",
    )
    ap.add_argument("--target-wall", type=float, default=10.0, help="a default run's wall, s")
    ap.add_argument("--probe-samples", type=int, default=256, help="the sizing probe's samples")
    ap.add_argument("--start-readahead", type=float, default=READAHEAD_DEFAULT_KB)
    ap.add_argument("--interval", type=int, help="the tuner's interval, ms (default: its own)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    ap.add_argument("--size", default="default", choices=("default", "tiny"), help="data size")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result file (default {OUT})")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    args.samples = parse_samples(args.samples)
    if args.target_wall <= 0 or args.probe_samples < 1:
        raise UserError("--target-wall and --probe-samples must be positive")
    if args.static_best is not None:
        parse(args.static_best)  # a bad setting stops us before any run
    load_doc(args.out)  # a damaged result file stops us before any run
    model = challenger = None
    if args.model or args.challenger:
        from autotune import config
        from autotune.tracking.models import resolve_model

        settings = config.load()
        model, challenger = (
            str(resolve_model(m, settings.tracking_uri, settings.runs_dir)) if m else None
            for m in (args.model, args.challenger)
        )
    arms = parse_arms(args.arms, model, challenger)
    args.model, args.challenger = model, challenger
    with Workbench(args.size, spell_s=SPELL_S, settle_s=SETTLE_S) as wb:
        bench = Bench(args, wb, arms)
        try:
            for name in args.job or list(catalog.WORKLOADS):
                bench.job(name)
                print(f"online: {name} merged into {args.out}", flush=True)
        finally:
            bench.close()


if __name__ == "__main__":
    from workloads.jobkit import entry

    sys.exit(entry(main))

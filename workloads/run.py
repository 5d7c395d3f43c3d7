"""The harness: run a workload to N samples under fixed knob settings, and put everything back.

    python -m workloads.run --workload NAME [--samples N] [--noisy] [--knobs k=v,...]
        [--repeat K] [--json] [--data-dir DIR] [--size tiny|default] [--under "autotune tune ..."]

Each run: make the data if needed (on a loop device of the harness's own unless ``--data-dir``),
drop the data's page cache, fix the knobs (read-ahead on the loop device before the start, the
rest through the actuators once the job runs), start the neighbour if asked, run the job and
time it, then restore knobs, stop the neighbour and detach the disk — on failure and Ctrl-C too.

From Python (the fidelity and online benches)::

    from workloads.run import Workbench, run_workload
    r = run_workload("shards", samples=2048, knobs={"readahead": 128})
    with Workbench() as wb:                      # one data disk for many runs
        a = wb.run("cnn_noisy", knobs={"weight.trainer": 8, "weight.loader": 8})
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from autotune.actuators.session import UNWINDING
from autotune.errors import UserError
from autotune.system.blockdev import disk_of_path
from autotune.target import Target
from autotune.telemetry import procread
from autotune.telemetry.progress import ProgressServer
from workloads import catalog, disk, jobkit, make_data, spells
from workloads.knobs import FixedKnobs, format_knobs, parse
from workloads.neighbour import Neighbour, OnOffNeighbour, stop_group

REPO = Path(__file__).resolve().parents[1]
FOLLOW_S = 0.25  # how often the actuators follow new workers (the tuner's default interval)
POLL_S = 0.05  # how soon a spell's settings follow its start (an oracle switches at once)
DISK_MIB = {"default": 2560, "tiny": 256}
TINY_SAMPLES = 64  # the jobs' own defaults are sized for the default data
SPELL_S = (10.0, 40.0)  # issue 18: a neighbour that comes and goes, in spells of 10-40 s
# The spells of the benches that judge settings by whole runs (bench.grid, bench.online): short
# enough that a run of 20-30 s holds several of each kind, so that a static setting is judged on
# both kinds and not on the first spell alone.
BENCH_SPELL_S = (4.0, 8.0)


def spell_args(w: catalog.Workload, spell_s: tuple[float, float]) -> list[str]:
    """The flags that give a job with spells of its own (mixed_io) spells of ``spell_s``
    seconds, as long as the neighbour's; none for other jobs."""
    if not w.spell_kinds or w.neighbour_spells:
        return []
    return ["--spell-s", f"{spell_s[0]:g},{spell_s[1]:g}"]


class WorkloadFailed(UserError):
    """The job exited with an error, or ran past its time limit."""


@dataclass
class Result:
    """One run.

    Attributes:
        workload: its name.
        knobs: the fixed settings (empty: as found).
        noisy: whether the neighbour ran.
        samples: samples the job trained on.
        wall_s: job start to exit, interpreter start-up included (what a person waits).
        job_s: the job's own timed part (data loading and training).
        samples_per_s: samples / job_s, as the job reported it.
        reported_samples: samples that arrived through the progress channel (None under a tuner,
            which owns the channel).
        device_read_mib: read from the data's loop device during the run (None: not a loop).
        load1: the 1-minute load average when the run started (the VM is shared).
        in_effect: the fixed knobs as read back while the job ran (once its workers existed).
        job: everything the job reported.
        stderr_tail: the last lines the run wrote to stderr (a tuner's summary, say).
        spells: for a workload with spells, one entry per spell begun: ``kind``, ``start_s``
            (since the job's start; the neighbour's first spell starts before it, at 0),
            ``samples`` reported during it, and ``in_effect`` when an oracle set knobs for it.
        timeline: where the wall time went (:func:`timeline`).
        settled_s: how long the run waited for a quiet node before it began (:func:`settle`).
    """

    workload: str
    knobs: dict[str, float]
    noisy: bool
    samples: int
    wall_s: float
    job_s: float
    samples_per_s: float
    reported_samples: float | None
    device_read_mib: float | None
    load1: float
    in_effect: dict[str, float] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)
    stderr_tail: list[str] = field(default_factory=list)
    spells: list[dict[str, Any]] = field(default_factory=list)
    timeline: dict[str, float] = field(default_factory=dict)
    settled_s: float = 0.0

    def line(self) -> str:
        read = "" if self.device_read_mib is None else f"  read {self.device_read_mib:.0f} MiB"
        return (
            f"{self.workload:<9} {format_knobs(self.knobs):<28} "
            f"{'noisy' if self.noisy else 'quiet'}  {self.samples} samples  "
            f"wall {self.wall_s:.1f} s  job {self.job_s:.1f} s  "
            f"{self.samples_per_s:.0f} samples/s{read}  load {self.load1:.1f}"
        )


class Workbench:
    """A data disk (made here, or an existing directory) and the runs on it.

    Args:
        size: ``default`` data, or ``tiny`` (tests: seconds per run).
        data_dir: use this directory instead of making a loop device; read-ahead can then be
            set only if it lives on a loop device.
        seed: the data's seed.
        spell_s: how long spells last, a neighbour's that comes and goes and a job's own
            (``--spell-s``; tests and benches shorten them); their schedule's seed is ``seed``.
    """

    def __init__(
        self,
        size: str = "default",
        data_dir: Path | None = None,
        seed: int = 0,
        spell_s: tuple[float, float] = SPELL_S,
        settle_s: float = 0.0,
    ) -> None:
        if size not in make_data.SIZES:
            raise UserError(f"unknown data size {size!r}; choose one of {', '.join(DISK_MIB)}")
        self.size = size
        self.seed = seed
        self.spell_s = spell_s
        self.settle_s = settle_s
        self._given = data_dir
        self._disk: disk.DataDisk | None = None
        self.data: Path | None = None
        self.device: str | None = None
        self.tmp: Path | None = None

    def open(self) -> Workbench:
        # The jobs' TMPDIR: what they leave there (a DataLoader's pymp-* folder, whose workers
        # are stopped with the job's group) goes with the workbench, not into /tmp.
        self.tmp = Path(tempfile.mkdtemp(prefix="workbench-"))
        if self._given is not None:
            if not self._given.is_dir():
                raise UserError(f"data directory {self._given} does not exist")
            self.data = self._given
            dev = disk_of_path(self._given)
            self.device = dev if dev and dev.startswith("loop") else None
            return self
        self._disk = disk.DataDisk(DISK_MIB[self.size]).open()
        self.data, self.device = self._disk.mnt, self._disk.dev
        return self

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        self.data = self.device = None

    def job_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a job runs in: this process's, its own TMPDIR, and ``extra``."""
        env = {**os.environ, **(extra or {})}
        if self.tmp is not None:
            env["TMPDIR"] = str(self.tmp)
        return env

    def __enter__(self) -> Workbench:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self, name: str) -> Path:
        """Make the workload's data if it is not there yet; returns the data root."""
        if self.data is None:
            raise UserError("the workbench is not open")
        make_data.make(self.data, self.size, self.seed, only=catalog.get(name).datasets)
        return self.data

    def command(
        self, name: str, samples: int | None = None, extra_args: Sequence[str] = ()
    ) -> list[str]:
        """The job's command line."""
        w = catalog.get(name)
        cmd = [sys.executable, "-m", w.module, "--data-dir", str(self.prepare(name))]
        cmd += spell_args(w, self.spell_s)
        if self.size == "tiny":
            cmd += w.tiny_args
            samples = TINY_SAMPLES if samples is None else samples
        if samples is not None:
            cmd += ["--samples", str(samples)]
        return [*cmd, *extra_args]

    def run(
        self,
        name: str,
        samples: int | None = None,
        knobs: Mapping[str, float] | None = None,
        noisy: bool | None = None,
        *,
        under: str | None = None,
        extra_args: Sequence[str] = (),
        timeout_s: float = 900.0,
        oracle: Mapping[str, Mapping[str, float]] | None = None,
    ) -> Result:
        """Run a workload once on a cold cache with ``knobs`` held fixed; restores everything.

        Args:
            name: a workload of :data:`catalog.WORKLOADS`.
            samples: stop after this many (default: the job's).
            knobs: knob name → ladder value; read-ahead acts on the data's loop device.
            noisy: run beside ``stress-ng --cpu 2`` (default: the workload's own choice).
            under: a command prefix to run the job under (``autotune tune --model m``); ``--``
                and the job's command are appended.
            extra_args: more flags for the job.
            timeout_s: kill the job after this long.
            oracle: for a workload with spells, knob settings per spell kind, set as each
                spell begins (the first spell's before the job starts, as ``knobs`` are);
                instead of ``knobs``. Every kind names the same knobs.

        Raises:
            WorkloadFailed: the job failed or timed out.
            UserError: bad knobs, no root for the disk, a missing tool.
        """
        w = catalog.get(name)
        noisy = w.noisy if noisy is None else noisy
        checked = parse(format_knobs(knobs)) if knobs else {}
        per_spell = _check_oracle(w, oracle, checked, bool(under), noisy)
        if per_spell:
            checked = per_spell[w.spell_kinds[0]]
        cmd = self.command(name, samples, extra_args)
        if under:
            prefix = shlex.split(under)
            cmd = [*prefix, *([] if prefix[-1:] == ["--"] else ["--"]), *cmd]
        with contextlib.ExitStack() as stack:
            progress = None if under else stack.enter_context(ProgressServer())
            fixed = FixedKnobs(checked, self.device, progress, tuned=bool(under))
            stack.callback(fixed.close)
            root = self.prepare(name)
            settled = settle(self.settle_s) if self.settle_s > 0 else 0.0
            for dataset in w.datasets:
                disk.drop_cache(root / dataset, self.device)
            data = root / w.dataset
            fixed.before_start()
            onoff: OnOffNeighbour | None = None
            if noisy and w.neighbour_spells:
                onoff = stack.enter_context(OnOffNeighbour(2, self.seed, self.spell_s))
            elif noisy:
                stack.enter_context(Neighbour(cpus=2))
            load1 = os.getloadavg()[0]
            dev = self.device
            read0 = disk.device_read_bytes(dev) if dev else None
            env = self.job_env(progress.env if progress else None)
            # The job's stdin is its dataset's manifest (it never reads stdin): a file open on
            # the data disk from the first instant, so a tuner or recorder wrapped around the
            # job finds the device for `readahead` at once, not only once the job has imported
            # torch and opened its data (`record --explore` picks its knobs at launch).
            stdin = stack.enter_context((data / "manifest.json").open("rb"))
            t0 = time.monotonic()
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # one group to stop; Ctrl-C reaches the harness only
            )
            stack.callback(stop_group, proc)
            output = _Output(proc)
            target = Target([proc.pid], f"workload {name}", process=proc, command=cmd)
            fixed.started(target)
            book = _SpellBook(t0, progress, fixed, per_spell)
            if onoff is not None:
                book.begin(onoff.poll(), before_start=True)
            try:
                # With no knob of its own to hold (as found, or a tuner's), the harness still
                # lists the job's members at each follow: every run has the same helper beside it.
                watch = target if under or not checked else None
                _wait(
                    proc, fixed, t0 + timeout_s, output=output, onoff=onoff, book=book, watch=watch
                )
            except BaseException:
                stop_group(proc)  # first, so that its pipes close and the readers end
                raise
            finally:
                exited = time.monotonic()
                out, err = output.join()
            wall = time.monotonic() - t0
            read = disk.device_read_bytes(dev) - read0 if dev and read0 is not None else None
            reported = book.close(drain_progress(progress)) if progress else None
        if proc.returncode != 0:
            tail = (err.strip().splitlines() or ["(no output)"])[-1]
            raise WorkloadFailed(f"workload {name} exited with status {proc.returncode}: {tail}")
        job = jobkit.parse_result(out)
        if job is None:
            raise WorkloadFailed(f"workload {name} printed no result line")
        return Result(
            workload=name,
            knobs=checked,
            noisy=noisy,
            samples=int(job["samples"]),
            wall_s=round(wall, 3),
            job_s=float(job["seconds"]),
            samples_per_s=float(job["samples_per_s"]),
            reported_samples=reported,
            device_read_mib=None if read is None else round(read / 2**20, 1),
            load1=round(load1, 2),
            in_effect=dict(fixed.in_effect),
            job=job,
            stderr_tail=err.strip().splitlines()[-8:],
            spells=book.spells,
            timeline=timeline(job.get("clock"), t0, exited),
            settled_s=settled,
        )


QUIET = 0.1  # of the node's CPUs: quiet enough to start a run (the harness itself, kworkers)
QUIET_WINDOW_S = 0.5


def node_busy_s() -> float:
    """CPU seconds the node has spent busy since boot, niced work included (a tuner's last
    upload runs at nice 19), the hypervisor's steal left out (not this node's work)."""
    return (procread.cpu_busy_ns(niced=True, steal=False) or 0) / 1e9


LEFTOVERS = (b"autotune.tracking.follow",)  # a tune session's uploader, after its job ended


def leftovers(marks: Sequence[bytes] = LEFTOVERS, within: bytes = b"") -> list[int]:
    """Processes whose command line names one of ``marks`` (and ``within``, say a folder)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if within in cmd and any(m in cmd for m in marks):
            found.append(int(entry))
    return found


def settle(limit_s: float, quiet: float = QUIET, marks: Sequence[bytes] = LEFTOVERS) -> float:
    """Wait until no process naming one of ``marks`` is left and the node's CPUs were less than
    ``quiet`` busy over :data:`QUIET_WINDOW_S`, or ``limit_s`` passed; returns the seconds
    waited. Between runs of a bench, what one run left behind would otherwise be charged to the
    start of whichever arm comes next: an ``autotune tune`` session's uploader makes its last
    upload (~2-5 s of CPU) once it notices, within a second, that the session has ended, so a
    quiet moment right after the session is no sign that it is done."""
    cpus = os.cpu_count() or 1
    t0 = time.monotonic()
    while leftovers(marks) and time.monotonic() - t0 < limit_s:
        time.sleep(0.25)
    while True:
        b0 = node_busy_s()
        time.sleep(QUIET_WINDOW_S)
        if (node_busy_s() - b0) / (QUIET_WINDOW_S * cpus) < quiet:
            break
        if time.monotonic() - t0 >= limit_s:
            break
    return round(time.monotonic() - t0, 2)


def timeline(clock: Mapping[str, Any] | None, t0: float, exited: float) -> dict[str, float]:
    """Where a run's wall time went, in seconds: ``launch`` from the command's start to the
    job's process (a tuner's own start-up), ``startup`` from there to the job's timed part
    (imports, data, workers), ``timed``, and ``after`` from its end to the command's exit (the
    job's and a tuner's tear-down). Empty when the job did not say when it started."""
    try:
        proc, timed, end = (float(clock[k]) for k in ("process", "timed", "end"))  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return {}
    return {
        "launch": round(max(proc - t0, 0.0), 3),  # the fork's time is to 10 ms, rounded down
        "startup": round(timed - proc, 3),
        "timed": round(end - timed, 3),
        "after": round(exited - end, 3),
    }


def _check_oracle(
    w: catalog.Workload,
    oracle: Mapping[str, Mapping[str, float]] | None,
    knobs: Mapping[str, float],
    under: bool,
    noisy: bool,
) -> dict[str, dict[str, float]]:
    """An oracle schedule checked against the workload: kind → knob values on the ladders."""
    if not oracle:
        return {}
    if not w.spell_kinds:
        raise UserError(f"workload {w.name} has no spells to switch knobs at")
    if knobs or under:
        raise UserError("an oracle schedule sets the knobs itself: no fixed knobs, no tuner")
    if w.neighbour_spells and not noisy:
        raise UserError(f"the spells of {w.name} are its neighbour's: run it noisy")
    if set(oracle) != set(w.spell_kinds):
        raise UserError(f"an oracle for {w.name} gives settings for {', '.join(w.spell_kinds)}")
    out = {kind: parse(format_knobs(oracle[kind])) for kind in w.spell_kinds}
    names = {frozenset(v) for v in out.values()}
    if len(names) != 1:
        raise UserError("an oracle's spells must all set the same knobs")
    return out


class _Output:
    """The job's stdout and stderr, read as they come: a spell line reaches :attr:`spells` at
    once (where ``communicate`` would hold it until the job's end)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.spells: queue.SimpleQueue[spells.Spell] = queue.SimpleQueue()
        self._out: list[str] = []
        self._err: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(proc.stdout, self._out, True), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, self._err, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, pipe: Any, into: list[str], watch: bool) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode(errors="replace")
            into.append(line)
            spell = spells.parse(line) if watch else None
            if spell is not None:
                self.spells.put(spell)

    def new_spells(self) -> list[spells.Spell]:
        got = []
        while not self.spells.empty():
            got.append(self.spells.get())
        return got

    def join(self) -> tuple[str, str]:
        """Everything the job wrote, once its pipes closed (the job group is stopped first)."""
        for t in self._threads:
            t.join(timeout=10.0)
        return "".join(self._out), "".join(self._err)


class _SpellBook:
    """Each spell's start, samples and (under an oracle) knob settings as it begins."""

    def __init__(
        self,
        t0: float,
        progress: ProgressServer | None,
        fixed: FixedKnobs,
        per_spell: Mapping[str, Mapping[str, float]],
    ) -> None:
        self.t0 = t0
        self.progress = progress
        self.fixed = fixed
        self.per_spell = per_spell
        self.spells: list[dict[str, Any]] = []
        self._samples = 0.0

    def _count(self) -> None:
        # Samples reported so far belong to the spell that is ending.
        if self.progress is not None and self.spells:
            got = self.progress.take().samples
            self.spells[-1]["samples"] += got
            self._samples += got

    def begin(self, new: Sequence[spells.Spell], before_start: bool = False) -> None:
        for spell in new:
            self._count()
            entry: dict[str, Any] = {
                "index": spell.index,
                "kind": spell.kind,
                "start_s": 0.0 if before_start else round(time.monotonic() - self.t0, 3),
                "samples": 0.0,
            }
            if self.per_spell:
                entry["in_effect"] = self.fixed.switch(self.per_spell[spell.kind])
            self.spells.append(entry)

    def close(self, last: float) -> float:
        """Books the last samples (drained at the end) to the last spell; returns the total."""
        if self.spells:
            self.spells[-1]["samples"] += last
        return self._samples + last if self.spells else last


def _wait(
    proc: subprocess.Popen[bytes],
    fixed: FixedKnobs,
    deadline: float,
    *,
    output: _Output,
    onoff: OnOffNeighbour | None,
    book: _SpellBook,
    watch: Target | None = None,
) -> None:
    """Wait for the job, letting the actuators follow it and the spells switch its knobs;
    ``watch``: list its members at each follow instead (the same walk of /proc, no writes)."""
    next_follow = time.monotonic() + FOLLOW_S
    while True:
        try:
            proc.wait(timeout=POLL_S)
            return
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now > deadline:
            raise WorkloadFailed("the workload ran past its time limit")
        book.begin([*(onoff.poll() if onoff is not None else []), *output.new_spells()])
        if now >= next_follow:
            fixed.follow()
            if watch is not None:
                watch.members()
            next_follow = now + FOLLOW_S


def drain_progress(progress: ProgressServer, quiet_s: float = 0.3, limit_s: float = 3.0) -> float:
    """Samples received from the job, waiting until its last reports (sent at exit) are in."""
    total = 0.0
    end = time.monotonic() + limit_s
    last = time.monotonic()
    while time.monotonic() < end and time.monotonic() - last < quiet_s:
        counts = progress.take()
        if counts.reports:
            total += counts.samples
            last = time.monotonic()
        time.sleep(0.05)
    return total


def run_workload(
    name: str,
    samples: int | None = None,
    knobs: Mapping[str, float] | None = None,
    noisy: bool | None = None,
    *,
    size: str = "default",
    data_dir: Path | None = None,
    under: str | None = None,
) -> Result:
    """Run one workload once on a fresh data disk (see :meth:`Workbench.run`)."""
    with Workbench(size, data_dir) as wb:
        return wb.run(name, samples, knobs, noisy, under=under)


def summary(results: Sequence[Result]) -> dict[str, Any]:
    """Median and range of samples/s and wall time over repeats."""
    rates = [r.samples_per_s for r in results]
    walls = [r.wall_s for r in results]
    return {
        "runs": len(results),
        "samples_per_s": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)},
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
    }


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Unwind through every finally (knobs, neighbour, disk, cgroups) on the first SIGTERM, and
    let the clean-up finish: one after it does nothing (``pkill -f`` of a bench run under
    ``timeout`` sends two, and the second used to end the clean-up half done), whether this
    handler or the actuators' (:data:`autotune.actuators.session.UNWINDING`) took the first."""
    if UNWINDING.is_set():
        return
    UNWINDING.set()
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="workloads.run", description=__doc__.splitlines()[0])
    p.add_argument("--workload", required=True, choices=sorted(catalog.WORKLOADS))
    p.add_argument("--samples", type=int, help="stop after this many samples (default: the job's)")
    p.add_argument("--noisy", action="store_true", help="beside stress-ng --cpu 2")
    p.add_argument("--knobs", default="", help="fixed settings, name=value,... (knob table)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", action="store_true", help="one JSON object per run, then a summary")
    p.add_argument("--data-dir", type=Path, help="use data here instead of a loop device")
    p.add_argument("--size", default="default", choices=sorted(make_data.SIZES))
    p.add_argument("--under", help='run the job under a command prefix ("autotune tune ...")')
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if args.repeat < 1:
            raise UserError(f"--repeat must be at least 1, got {args.repeat}")
        if args.samples is not None and args.samples < 1:
            raise UserError(f"--samples must be positive, got {args.samples}")
        knobs = parse(args.knobs)
        results = []
        with Workbench(args.size, args.data_dir) as wb:
            for _ in range(args.repeat):
                noisy = True if args.noisy else None
                r = wb.run(
                    args.workload,
                    args.samples,
                    knobs,
                    noisy,
                    under=args.under,
                    timeout_s=args.timeout,
                )
                results.append(r)
                print(json.dumps(asdict(r)) if args.json else r.line(), flush=True)
        if args.repeat > 1:
            s = summary(results)
            if args.json:
                print(json.dumps({"summary": s}))
            else:
                sps, wall = s["samples_per_s"], s["wall_s"]
                print(
                    f"median {sps['median']:.0f} samples/s ({sps['min']:.0f}–{sps['max']:.0f}), "
                    f"wall {wall['median']:.1f} s ({wall['min']:.1f}–{wall['max']:.1f}) "
                    f"over {s['runs']} runs"
                )
    except UserError as e:
        print(f"workloads.run: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("workloads.run: interrupted; everything restored", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`autotune record`: real jobs, real collectors, real kills; then `query` and `--summary`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autotune.target import descendants, threads
from autotune.trace import TraceWriter, load_trace, partial_path
from autotune.trace import meta as trace_meta
from autotune.trace.synthetic import samples

Run = Callable[..., subprocess.CompletedProcess[str]]
AUTOTUNE = [sys.executable, "-m", "autotune.cli.main"]

# A small multi-process job: the parent (trainer) burns CPU and reports progress through the
# client; two forked workers (loaders) read a file from disk (dropping it from the page cache
# each pass, so the reads reach the block layer) and burn CPU. It writes its PID and progress
# socket to INFO first, and how many samples it reported to INFO.reported at the end. It runs
# until INFO.stop exists (so a test decides from what was recorded, not from a clock), at most
# the given seconds.
JOB = textwrap.dedent(
    """
    import json, os, sys, time
    import autotune.client as at

    data, seconds, status, info = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(info + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "socket": os.environ.get("AUTOTUNE_PROGRESS")}, f)
    os.rename(info + ".tmp", info)

    def read_and_burn():
        while going():
            fd = os.open(data, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            while os.read(fd, 1 << 16):
                pass
            os.close(fd)
            sum(range(20000))
            time.sleep(0.02)

    end = time.time() + seconds
    stop = info + ".stop"

    def going():
        return time.time() < end and not os.path.exists(stop)

    kids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            read_and_burn()
            os._exit(0)
        kids.append(pid)
    reported = 0
    while going():
        sum(range(50000))
        at.report(samples=32)
        reported += 32
    for k in kids:
        os.waitpid(k, 0)
    with open(info + ".reported", "w") as f:
        f.write(str(reported))
    sys.exit(status)
    """
)


class Job:
    """Paths and command line of one run of JOB."""

    def __init__(self, folder: Path, seconds: float, status: int = 0) -> None:
        self.folder = folder
        self.script = folder / "job.py"
        self.script.write_text(JOB)
        self.data = folder / "data.bin"
        if not self.data.exists():
            self.data.write_bytes(os.urandom(1 << 21))
        self.info = folder / "job.json"
        self.argv = [sys.executable, str(self.script), str(self.data), str(seconds)]
        self.argv += [str(status), str(self.info)]

    def read_info(self) -> dict[str, object] | None:
        try:
            return dict(json.loads(self.info.read_text()))
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Tell the job to finish."""
        (self.folder / "job.json.stop").touch()

    def reported(self) -> int:
        return int((self.folder / "job.json.reported").read_text())

    def kill(self) -> None:
        """Kill the job and its workers if they outlived the test, and the socket's folder."""
        info = self.read_info()
        if not info:
            return
        pid = int(str(info["pid"]))
        for p in [*descendants(pid), pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        sock = info.get("socket")
        if sock:  # a recorder killed with -9 cannot remove its progress socket
            shutil.rmtree(Path(str(sock)).parent, ignore_errors=True)


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Callable[..., Job]]:
    made: list[Job] = []

    def make(seconds: float, status: int = 0) -> Job:
        j = Job(tmp_path, seconds, status)
        made.append(j)
        return j

    yield make
    for j in made:
        j.kill()


def _one_line_exit_2(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines, r.stderr
    for n in needles:
        assert n in lines[-1], lines[-1]
    return lines[-1]


def _record_until(
    out: Path, j: Job, rows: int, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Record ``j`` to ``out`` until ``rows`` rows are on disk, then let the job finish."""
    rec = subprocess.Popen(
        [*AUTOTUNE, "record", "-o", str(out), *flags, "--", *j.argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_for_rows(partial_path(out), rows)
        j.stop()
        stdout, stderr = rec.communicate(timeout=120)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    return subprocess.CompletedProcess(rec.args, rec.returncode, stdout, stderr)


def _query(run_cli: Run, sql: str, *traces: Path) -> list[dict[str, object]]:
    r = run_cli("query", "--format", "json", sql, *map(str, traces))
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout))


@contextlib.contextmanager
def _recording(
    out: Path, j: Job, *flags: str, stderr: Any = subprocess.DEVNULL
) -> Iterator[subprocess.Popen[bytes]]:
    """`autotune record -o OUT FLAGS -- JOB` in the background; killed on the way out if it still
    runs (a failed assertion must not leave it recording)."""
    rec = subprocess.Popen(
        [*AUTOTUNE, "record", "-o", str(out), *flags, "--", *j.argv],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        yield rec
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()


def _wait_for_rows(partial: Path, least: int = 1, timeout: float = 120.0) -> int:
    """Wait until the recorder has flushed at least ``least`` rows to its partial."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if partial.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    rows = load_trace(partial)[0].num_rows
                except Exception:
                    rows = 0
            if rows >= least:
                return rows
        time.sleep(0.2)
    raise AssertionError(f"no row reached {partial} in {timeout} s")


# --- the round trip -----------------------------------------------------------------------------


@pytest.mark.bpf
@pytest.mark.slow
def test_record_a_multi_process_job_then_query(
    run_cli: Run, tmp_path: Path, job: Callable[..., Job]
) -> None:
    j = job(seconds=120.0, status=3)
    out = tmp_path / "rec.parquet"
    r = _record_until(out, j, 30, "--interval", "100")
    assert r.returncode == 3, r.stderr  # the job's exit status, passed through
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.glob("rec*")) == ["rec.parquet"]
    table, meta = load_trace(out)
    assert meta["complete"] is True and meta["source"] == "bpf" and meta["exit_status"] == 3
    assert meta["command"] == j.argv
    (got,) = _query(
        run_cli,
        "SELECT count(*) AS n, sum(trainer_oncpu_ns) AS trainer_ns, "
        "sum(loader_oncpu_ns) AS loader_ns, max(loader_threads) AS loaders, "
        "max(trainer_threads) AS trainers, sum(blk_read_bytes) AS read, "
        "sum(loader_ra_sync + loader_ra_async) AS ra, "
        "sum(list_sum(trainer_runq_hist)) AS waits, "
        "sum(progress_samples) FILTER (progress_source = 'client') AS progress, "
        "max(f_loader_cpu) AS f_loader, count(knob_weight_trainer) AS knobs, "
        "sum(interval_s) AS seconds, count(DISTINCT file) AS files FROM trace",
        out,
    )
    assert got["n"] == table.num_rows >= 30
    assert got["files"] == 1
    assert got["loaders"] == 2 and got["trainers"] == 1  # two forked workers, one parent
    seconds = float(str(got["seconds"]))
    for role in ("trainer_ns", "loader_ns"):
        ns = float(str(got[role]))
        assert 0 < ns <= seconds * 1e9 * (os.cpu_count() or 1) * 1.05
    assert float(str(got["read"])) > 0 and float(str(got["ra"])) > 0
    assert float(str(got["waits"])) > 0
    progress = float(str(got["progress"]))
    assert 0 < progress <= j.reported() and progress % 32 == 0
    assert float(str(got["f_loader"])) > 0
    # Read back each interval while the job runs: every row written before it was told to stop
    # (30), and then each until it exits; a row read while it exits has nothing to read. CI saw
    # two such rows: the job's exit outlasted a 100 ms interval.
    weights = table.column("knob_weight_trainer").to_pylist()
    read = sum(w is not None for w in weights)
    assert got["knobs"] == read >= 30
    assert all(w is not None for w in weights[:read])  # the rows without are the last ones
    s = run_cli("record", "--summary", str(out))
    assert s.returncode == 0, s.stderr
    for label in ("trainer", "loader", "run-queue p99", "MB/s", "readahead", "samples/s", "3"):
        assert label in s.stdout


@pytest.mark.slow
def test_kill_9_leaves_a_loadable_partial_and_no_final_file(
    tmp_path: Path, job: Callable[..., Job]
) -> None:
    j = job(seconds=120.0)
    out = tmp_path / "killed.parquet"
    log = tmp_path / "stderr.txt"
    # stderr to a file, not a pipe: the orphaned job would hold a pipe open.
    with log.open("w") as err, _recording(out, j, "--interval", "100", stderr=err) as rec:
        _wait_for_rows(partial_path(out))
        rec.send_signal(signal.SIGKILL)
        rec.wait(30)
    said = log.read_text()
    assert str(partial_path(out)) in said  # it said where the rows are while recording
    assert not out.exists()
    with pytest.warns(UserWarning, match="unfinished recording"):
        table, meta = load_trace(partial_path(out))
    assert table.num_rows >= 1 and meta["complete"] is False
    assert table.column("trainer_oncpu_ns").null_count == 0


def _policies(pid: int) -> list[tuple[int, int]]:
    """(scheduling policy, real-time priority) of each thread of a process (proc(5) fields 41
    and 40)."""
    out = []
    for tid in threads(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            out.append((int(fields[38]), int(fields[37])))
    return out


@pytest.mark.root
def test_only_the_sampling_thread_runs_at_real_time_priority(
    tmp_path: Path, job: Callable[..., Job]
) -> None:
    # Rows on time beside a job with more runnable threads than CPUs (autotune.system.priority):
    # one thread of the recorder at SCHED_FIFO 1 (the default record_rt_priority), never the job,
    # its workers, or the recorder's trace flusher and other threads.
    j = job(seconds=120.0)
    out = tmp_path / "rt.parquet"
    with _recording(out, j) as rec:
        _wait_for_rows(partial_path(out))  # flushed: the flusher thread exists
        recorder = _policies(rec.pid)
        info = j.read_info()
        assert info is not None
        pid = int(str(info["pid"]))
        the_job = [p for q in [pid, *descendants(pid)] for p in _policies(q)]
        j.stop()
        assert rec.wait(60) == 0
    assert sorted(recorder).count((os.SCHED_FIFO, 1)) == 1, recorder
    assert len(recorder) >= 3  # the loop, the flusher and the progress channel at least
    assert all(p == (os.SCHED_OTHER, 0) for p in recorder if p != (os.SCHED_FIFO, 1))
    assert len(the_job) >= 3 and all(p == (os.SCHED_OTHER, 0) for p in the_job), the_job


@pytest.mark.slow
def test_sigterm_finishes_the_trace_and_stops_the_job(
    tmp_path: Path, job: Callable[..., Job]
) -> None:
    j = job(seconds=120.0)
    out = tmp_path / "term.parquet"
    with _recording(out, j) as rec:
        _wait_for_rows(partial_path(out))
        rec.send_signal(signal.SIGTERM)
        rc = rec.wait(60)
    assert rc == 128 + signal.SIGTERM  # the job's status: it got the SIGTERM too
    table, meta = load_trace(out)
    assert meta["complete"] is True and meta["exit_status"] == rc and table.num_rows >= 1
    assert not partial_path(out).exists()
    info = j.read_info()
    assert info is not None
    pid = int(str(info["pid"]))
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


@pytest.mark.slow
def test_a_pid_that_exits_mid_recording_ends_it_cleanly(tmp_path: Path) -> None:
    # The sleeper lives until its stdin closes: the test ends it once rows are on disk.
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    out = tmp_path / "pid.parquet"
    cmd = [*AUTOTUNE, "record", "--pid", str(sleeper.pid), "--duration", "300", "-o", str(out)]
    rec = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_rows(partial_path(out))
        assert sleeper.stdin is not None
        sleeper.stdin.close()
        sleeper.wait(30)
        stdout, stderr = rec.communicate(timeout=120)
    finally:
        for p in (sleeper, rec):
            if p.poll() is None:
                p.kill()
                p.wait()
    r = subprocess.CompletedProcess(cmd, rec.returncode, stdout, stderr)
    last = _one_line_exit_2(r, "exited", "before --duration", str(out))
    assert "rows" in last
    table, meta = load_trace(out)
    assert meta["complete"] is True and meta["ended"] == "target exited"
    assert table.num_rows >= 1
    assert not partial_path(out).exists()


@pytest.mark.root
@pytest.mark.slow
def test_without_privileges_it_falls_back_to_proc_with_one_warning(
    tmp_path: Path, job: Callable[..., Job]
) -> None:
    j = job(seconds=2.0)
    out = tmp_path / "proc.parquet"
    # Root with an empty capability bounding set: BPF and cgroup writes are refused.
    r = subprocess.run(
        ["setpriv", "--bounding-set=-all", *AUTOTUNE, "record", "-o", str(out), "--", *j.argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if line.startswith("autotune: warning:")]
    assert len(warned) == 1 and "/proc" in warned[0]
    table, meta = load_trace(out)
    assert meta["source"] == "proc"
    assert table.column("trainer_runq_hist").null_count == table.num_rows  # not measured: NULL
    assert table.column("trainer_oncpu_ns").null_count == 0
    assert sum(v or 0 for v in table.column("trainer_oncpu_ns").to_pylist()) > 0


@pytest.mark.root
@pytest.mark.slow
def test_explore_visits_settings_records_them_and_restores(
    run_cli: Run, tmp_path: Path, job: Callable[..., Job]
) -> None:
    j = job(seconds=120.0)
    out = tmp_path / "explore.parquet"
    env = {**os.environ, "AUTOTUNE_JOURNAL": str(tmp_path / "journal.json")}
    # Enough rows (at 100 ms) for the schedule to pass through several 0.3 s holds.
    flags = ("--explore", "--explore-hold", "0.3", "--interval", "100")
    r = _record_until(out, j, 40, *flags, env=env)
    assert r.returncode == 0, r.stderr
    _, meta = load_trace(out)
    assert meta["explore"] is True and meta["ended"] == "target exited"
    settings = _query(
        run_cli,
        "SELECT DISTINCT knob_weight_trainer AS wt, knob_weight_loader AS wl, "
        "knob_cpus_trainer AS ct, knob_cpus_loader AS cl FROM trace",
        out,
    )
    assert len(settings) >= 3
    assert len({s["wt"] for s in settings}) >= 2 and len({s["wl"] for s in settings}) >= 2
    events = {(d["knob"], d["event"]) for d in meta["decisions"]}
    assert ("weight.trainer", "set") in events and ("weight.trainer", "restore") in events
    assert not (tmp_path / "journal.json").exists() or not json.loads(
        (tmp_path / "journal.json").read_text() or "{}"
    ).get("sessions")
    # The session's role cgroups are gone.
    parent = Path("/sys/fs/cgroup/cpu/autotune")
    session = meta["decisions"][0]["detail"].split("/autotune/")[1].split("/")[0]
    assert not (parent / session).exists()


@pytest.mark.root
@pytest.mark.slow
def test_record_a_cgroup(run_cli: Run, tmp_path: Path) -> None:
    group = Path(f"/sys/fs/cgroup/cpu/autotune-test-record-{os.getpid()}")
    group.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        (group / "cgroup.procs").write_text(str(sleeper.pid))
        out = tmp_path / "cg.parquet"
        r = run_cli("record", "--cgroup", str(group), "--duration", "1", "-o", str(out))
        assert r.returncode == 0, r.stderr
        table, meta = load_trace(out)
        assert meta["target"] == f"cgroup {group}" and meta["ended"] == "duration"
        assert table.num_rows >= 1
        assert sleeper.poll() is None  # a job it did not launch is left running
    finally:
        sleeper.kill()
        sleeper.wait()
        group.rmdir()


@pytest.mark.slow
def test_default_output_is_timestamped_under_runs_workloads(run_cli: Run, tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        env = {**os.environ, "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs")}
        r = run_cli("record", "--pid", str(sleeper.pid), "--duration", "0.5", env=env)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert r.returncode == 0, r.stderr
    (made,) = (tmp_path / "runs" / "workloads").iterdir()
    assert made.name.startswith(f"pid{sleeper.pid}-") and made.suffix == ".parquet"
    assert str(made) in r.stderr.splitlines()[-1]
    assert load_trace(made)[1]["complete"] is True


# --- bad input ----------------------------------------------------------------------------------


def test_unknown_pid(run_cli: Run, tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    r = run_cli("record", "--pid", str(gone.pid), "-o", str(tmp_path / "x.parquet"))
    _one_line_exit_2(r, "no process", str(gone.pid))
    assert os.listdir(tmp_path) == []


def test_unwritable_output_is_refused_before_the_job_starts(run_cli: Run, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()"
    r = run_cli("record", "-o", "/proc/autotune-test/x.parquet", "--", sys.executable, "-c", code)
    _one_line_exit_2(r, "cannot write")
    assert not marker.exists()


@pytest.mark.root
def test_output_folder_without_permission(run_cli: Run, tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    os.chown(folder, 65534, 65534)
    folder.chmod(0o755)
    r = subprocess.run(
        ["setpriv", "--bounding-set=-all", *AUTOTUNE, "record", "--pid", "1",
         "-o", str(folder / "x.parquet")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    _one_line_exit_2(r, "permission denied")
    assert os.listdir(folder) == []


@pytest.mark.root
def test_output_in_a_folder_an_unprivileged_user_cannot_search(tmp_path: Path) -> None:
    # As a person without root would: a root-owned 0700 folder is one line, not the traceback of
    # a PermissionError from checking whether the file exists.
    parent = Path(tempfile.mkdtemp(prefix="autotune-test-"))
    try:
        parent.chmod(0o755)
        private = parent / "private"
        private.mkdir(mode=0o700)
        r = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *AUTOTUNE,
             "record", "--duration", "1", "-o", str(private / "x.parquet"), "--", "true"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(parent)},
        )  # fmt: skip
        _one_line_exit_2(r, "permission denied", str(private / "x.parquet"))
        assert os.listdir(private) == []
    finally:
        shutil.rmtree(parent)


def test_an_explicit_output_folder_that_does_not_exist_is_not_created(
    run_cli: Run, tmp_path: Path
) -> None:
    folder = tmp_path / "typo" / "dir"
    r = run_cli("record", "--pid", "1", "--duration", "1", "-o", str(folder / "x.parquet"))
    _one_line_exit_2(r, "no folder", "--create-dirs")
    assert not (tmp_path / "typo").exists()


@pytest.mark.slow
def test_create_dirs_makes_the_output_folder(run_cli: Run, tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir" / "x.parquet"
    r = run_cli("record", "--pid", "1", "--duration", "1", "--create-dirs", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.is_file()


def test_existing_output_is_not_overwritten(run_cli: Run, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    out.write_bytes(b"precious")
    r = run_cli("record", "-o", str(out), "--", "true")
    _one_line_exit_2(r, "already exists")
    assert out.read_bytes() == b"precious"


def test_command_not_found(run_cli: Run, tmp_path: Path) -> None:
    r = run_cli("record", "-o", str(tmp_path / "x.parquet"), "--", "no-such-command-xyz")
    _one_line_exit_2(r, "command not found")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "exactly one target"),
        (("--pid", "1", "--", "true"), "exactly one target"),
        (("--interval", "7", "--", "true"), "interval_ms=7"),
        (("--duration", "0", "--", "true"), "--duration"),
        (("--explore-hold", "-1", "--", "true"), "--explore-hold"),
        (("--summary", "x.parquet", "--pid", "1"), "--summary"),
    ],
)
def test_bad_flags(run_cli: Run, tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    r = run_cli("record", *args, cwd=tmp_path)
    line = _one_line_exit_2(r, needle)
    assert len(r.stderr.strip().splitlines()) == 1, line
    assert os.listdir(tmp_path) == []


# --- --summary ----------------------------------------------------------------------------------


def _synthetic(path: Path, n: int) -> Path:
    with TraceWriter(path) as w:
        w.begin(trace_meta.build(target="job", command=["job"], interval_s=0.25, explore=False,
                                 source="bpf"))  # fmt: skip
        for s in samples(n):
            w.append(s)
    return path


def test_summary_of_a_trace(run_cli: Run, tmp_path: Path) -> None:
    path = _synthetic(tmp_path / "s.parquet", 40)
    r = run_cli("record", "--summary", str(path))
    assert r.returncode == 0, r.stderr
    for label in ("10.0 s, 40 rows, complete", "run-queue p50", "MB/s", "knob settings visited"):
        assert label in r.stdout


def test_summary_of_bad_files(run_cli: Run, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"a": [1]}), foreign)
    _one_line_exit_2(run_cli("record", "--summary", str(foreign)), "not an autotune trace")
    cut = _synthetic(tmp_path / "cut.parquet", 40)
    cut.write_bytes(cut.read_bytes()[:-64])
    _one_line_exit_2(run_cli("record", "--summary", str(cut)), "truncated Parquet")
    _one_line_exit_2(run_cli("record", "--summary", str(tmp_path / "none.parquet")), "no such")

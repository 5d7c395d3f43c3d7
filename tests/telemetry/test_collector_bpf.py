"""The BPF collectors on a real job: roles, CPU time against /proc, run queue, page cache, block.

Each test loads the real programs (sched, block, pagecache) and drives tests/telemetry/workload.py:
a trainer process whose threads burn CPU and read files, and workers it forks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from bpf_kit import PERF_EVENT, PROGRAM, bpf_handles, program_ids, programs_alive
from telemetry_kit import Job, LoopDisk, touch_uncached

from autotune.errors import UserError
from autotune.roles import ROLE_INDEX, Role
from autotune.telemetry import bpfmaps, loader, procread, programs
from autotune.telemetry.collector import open_collector
from autotune.telemetry.sample import B, C, Sample

pytestmark = [pytest.mark.root, pytest.mark.bpf]

TRAINER, LOADER, OTHER = (ROLE_INDEX[r] for r in (Role.TRAINER, Role.LOADER, Role.OTHER))
TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def total(samples: list[Sample], role: int, counter: str) -> int:
    return int(sum(s.roles[role, C[counter]] for s in samples))


def proc_cpu_ns(pid: int) -> tuple[int, int]:
    """(utime + stime, cutime + cstime) of a process, in ns, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    f = text[text.rindex(")") + 2 :].split()
    return (int(f[11]) + int(f[12])) * TICK_NS, (int(f[13]) + int(f[14])) * TICK_NS


def diskstats(name: str) -> tuple[int, int]:
    """(bytes read, reads completed) of one disk, from /proc/diskstats."""
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        if f[2] == name:
            return int(f[5]) * 512, int(f[3])
    raise AssertionError(f"{name} is not in /proc/diskstats")


def steal_ns() -> int:
    """The node's CPU time the hypervisor gave to other guests so far, every CPU's."""
    with_steal, without = procread.cpu_busy_ns(), procread.cpu_busy_ns(steal=False)
    assert with_steal is not None and without is not None
    return with_steal - without


def close_to(ours: int, theirs: int, rel: float, abs_ns: int) -> bool:
    return abs(ours - theirs) <= max(rel * theirs, abs_ns)


def test_roles_cpu_time_and_a_worker_forked_mid_run(job: Job, cpu_hog: list[int]) -> None:
    with open_collector(job.target, require_bpf=True) as col:
        assert col.source == "bpf"
        self0, children0 = proc_cpu_ns(job.proc.pid)
        steal0 = steal_ns()
        samples = [col.sample()]
        _, spin = job.sample_while(col, "spin 1.5 2")
        samples += spin
        # No worker exists yet: the loader role saw nothing at all.
        assert not any(s.roles[LOADER].any() for s in spin)
        # The two new threads took the trainer's role at their creation, not the loader's.
        assert max(s.get(Role.TRAINER, "threads") for s in spin) == 3
        # Four CPU-bound threads on this node's CPUs: the trainer waited in the run queue.
        assert sum(int(s.runq_hist[TRAINER].sum()) for s in spin) > 0
        assert total(spin, TRAINER, "runq_wait_ns") > 0
        assert total(spin, TRAINER, "nivcsw") > 0
        assert total(spin, OTHER, "oncpu_ns") > 0  # the hogs

        samples.append(col.sample())  # the interval before the fork
        job.send("fork 1.0")
        time.sleep(0.25)
        first = col.sample()  # the worker's first interval
        assert first.get(Role.LOADER, "threads") == 1
        assert first.get(Role.LOADER, "oncpu_ns") > 0
        assert set(col.processes().values()) == {Role.TRAINER, Role.LOADER}
        _, reaped = job.sample_while(col, "reap")
        samples += [first, *reaped]
        assert reaped[-1].get(Role.LOADER, "threads") == 0
        self1, children1 = proc_cpu_ns(job.proc.pid)
        stolen = steal_ns() - steal0

    trainer_ns, loader_ns = total(samples, TRAINER, "oncpu_ns"), total(samples, LOADER, "oncpu_ns")
    # /proc counts whole clock ticks (utime and stime apart, each reading up to a tick short, and
    # the kernel's split of the two moves time between them): 5 %, or 8 ticks where that is
    # more. With 5 ticks a loaded node once found 677 ms here against /proc's 730 ms.
    # On a VM the BPF clock also runs while the hypervisor has the vCPU, where /proc's time
    # (the scheduler's, steal taken out) does not: beside make check's workers the programs once
    # counted 689 ms against 590. What was stolen from the node's CPUs in the window is allowed.
    slack = 8 * TICK_NS + stolen
    assert close_to(trainer_ns, self1 - self0, 0.05, slack), (trainer_ns, self1 - self0)
    assert close_to(loader_ns, children1 - children0, 0.05, slack), (
        loader_ns,
        children1 - children0,
    )
    # The proxy progress is the trainer's on-CPU seconds.
    assert all(s.progress_source == "proxy" for s in samples)
    proxy = sum(s.progress_samples for s in samples)
    assert proxy == pytest.approx(trainer_ns / 1e9)


def test_page_cache_readahead_and_block_io_per_role(job: Job, loopdisk: LoopDisk) -> None:
    size = loopdisk.data.stat().st_size
    with open_collector(job.target, require_bpf=True) as col:
        loopdisk.drop_cache()
        col.sample()
        bytes0, reads0 = diskstats(loopdisk.name)
        answer, samples = job.sample_while(col, f"read {loopdisk.data}")
        assert int(answer.split()[1]) == size
        time.sleep(0.1)
        samples.append(col.sample())
        bytes1, reads1 = diskstats(loopdisk.name)

        loopdisk.drop_cache()
        col.sample()
        job.send(f"fork 0.05 {loopdisk.data}")
        _, by_worker = job.sample_while(col, "reap")

    pages = size // 4096
    # The trainer's sequential read: every page a miss, brought in by readahead.
    assert total(samples, TRAINER, "pgcache_miss") >= pages
    assert total(samples, TRAINER, "ra_sync") >= 1
    assert total(samples, TRAINER, "ra_async") >= 1
    ra_pages = total(samples, TRAINER, "ra_sync_pages") + total(samples, TRAINER, "ra_async_pages")
    assert pages <= ra_pages <= 2 * pages
    assert total(samples, LOADER, "pgcache_miss") == 0
    # The worker's read counts for the loader role.
    assert total(by_worker, LOADER, "pgcache_miss") >= pages
    assert total(by_worker, LOADER, "ra_async") >= 1

    # Block I/O of our loop device against /proc/diskstats over the same window.
    ours = sum(
        (s.devices[loopdisk.name].counters for s in samples if loopdisk.name in s.devices),
        np.zeros(4, np.int64),
    )
    # Once in CI (after the whole suite in one process) BPF saw 9.7 of 16 MiB here; what
    # /proc/diskstats saw then was not printed. It is now, to tell a lost count from I/O that
    # did not happen.
    seen = (ours.tolist(), bytes1 - bytes0, reads1 - reads0, size)
    assert ours[B["read_bytes"]] >= size, seen
    assert ours[B["read_bytes"]] == bytes1 - bytes0, seen
    assert ours[B["read_reqs"]] == reads1 - reads0
    lat = sum(s.devices[loopdisk.name].lat_hist for s in samples if loopdisk.name in s.devices)
    assert lat.sum() >= ours[B["read_reqs"]]
    assert sum(int(s.block[B["read_bytes"]]) for s in samples) >= size  # the node's sum


def test_major_faults_are_counted_in_the_faulting_threads_role(
    job: Job, loopdisk: LoopDisk
) -> None:
    """The kernel's major-fault event, counted per role in BPF: the trainer's faults on a mapped
    file that is not cached are the ones /proc counts for its process, and none are a loader's."""
    with open_collector(job.target, require_bpf=True) as col:
        held = programs.lease()  # the collector's programs, to ask what they count
        try:
            assert held.programs.majflt, held.programs.majflt_error
        finally:
            held.release()
        samples, faults = touch_uncached(job, col, loopdisk)
    # The job's process faults on nothing else meanwhile (its code and libraries are cached).
    assert total(samples, TRAINER, "majflt") == faults
    assert total(samples, LOADER, "majflt") == 0


def test_a_collector_opened_again_counts_for_the_right_roles(job: Job, loopdisk: LoopDisk) -> None:
    # bcc remembers a public table by fd number after its module is gone; when that number is
    # reused by another map, a later pagecache program must still see this load's role table.
    for _ in range(2):
        with open_collector(job.target, require_bpf=True):
            pass
        reuse = [os.open("/dev/null", os.O_RDONLY) for _ in range(5)]
    try:
        with open_collector(job.target, require_bpf=True) as col:
            loopdisk.drop_cache()
            col.sample()
            _, samples = job.sample_while(col, f"read {loopdisk.data}")
            time.sleep(0.1)
            samples.append(col.sample())
    finally:
        for fd in reuse:
            os.close(fd)
    pages = loopdisk.data.stat().st_size // 4096
    assert total(samples, TRAINER, "pgcache_miss") >= pages
    assert total(samples, OTHER, "pgcache_miss") < pages


def test_a_running_worker_is_seeded_and_the_target_dies_mid_collection(job: Job) -> None:
    # The programs are attached first (a lease of their own), so that the worker's switch-in is
    # seen: a thread on a CPU since before they were attached is counted from its first switch.
    held = programs.lease()
    try:
        job.send("fork 30")  # a worker that already runs when the collector opens
        # Real-time on one CPU, it stays switched in from before the collector seeds it to after
        # the sample: the kernel cached it as nobody's at its switch-in, and the seed must undo
        # that. (A flaky CI failure: a worker with a CPU to itself is rarely switched out.)
        os.sched_setaffinity(job.workers[-1], {os.cpu_count() - 1})
        os.sched_setscheduler(job.workers[-1], os.SCHED_FIFO, os.sched_param(1))
        time.sleep(0.1)
        with open_collector(job.target, require_bpf=True) as col:
            time.sleep(0.3)
            s = col.sample()
            assert s.get(Role.LOADER, "threads") == 1
            assert s.get(Role.LOADER, "oncpu_ns") > 0
            assert s.get(Role.TRAINER, "threads") == 1
            os.killpg(job.proc.pid, signal.SIGKILL)
            job.proc.wait(timeout=30)
            deadline = time.monotonic() + 10
            while col.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not col.alive()
            time.sleep(0.1)
            after = col.sample()  # still a sample, not an error
            assert after.get(Role.TRAINER, "threads") == 0
            assert after.get(Role.LOADER, "threads") == 0
            assert after.source == "bpf"
    finally:
        held.release()


def test_a_worker_on_a_cpu_since_before_the_attach_is_counted_from_the_attach(job: Job) -> None:
    """A real-time worker alone on its CPU makes no switch of its own (only the kernel's
    real-time throttling, 50 ms a second, takes it off); the attach makes every CPU switch once
    (programs.switch_every_cpu), so its time counts from the collector's open, not from a
    switch up to a second later."""
    assert not programs.loaded()  # the programs attach under the running worker
    job.send("fork 30")
    os.sched_setaffinity(job.workers[-1], {os.cpu_count() - 1})
    os.sched_setscheduler(job.workers[-1], os.SCHED_FIFO, os.sched_param(1))
    time.sleep(0.1)
    with open_collector(job.target, require_bpf=True) as col:
        t0 = time.monotonic()
        time.sleep(0.5)
        s = col.sample()
        elapsed_ns = (time.monotonic() - t0) * 1e9
    assert s.get(Role.LOADER, "threads") == 1
    # All of it but a throttle (5 % a second): a worker counted from its first switch after the
    # attach lost a uniform share of up to a second here.
    assert s.get(Role.LOADER, "oncpu_ns") >= 0.85 * elapsed_ns


def test_two_jobs_share_one_set_of_programs_and_keep_their_counts_apart(
    job: Job, other_job: Job
) -> None:
    """The node service's case: two jobs watched by one process. One set of programs is loaded
    (the second job adds no tracepoint), each job counts its own trainer and loaders, and the
    other job's threads are "other" to it; the first job's close leaves the second counting, and
    the last close detaches everything."""
    before = bpf_handles()
    a = open_collector(job.target, require_bpf=True)
    try:
        one_set = bpf_handles()
        b = open_collector(other_job.target, require_bpf=True)
        try:
            assert bpf_handles() == one_set
            assert b.source == "bpf"
            a.sample(), b.sample()
            _, by_a = job.sample_while(a, "spin 1.0 2")
            seen_by_b = b.sample()
            spun = total(by_a, TRAINER, "oncpu_ns")
            assert spun > 0.2e9  # two threads for a second (on a busy node, less than two CPUs)
            assert max(s.get(Role.TRAINER, "threads") for s in by_a) == 3
            # b's own trainer idled; a's threads were "other" to it.
            assert seen_by_b.get(Role.TRAINER, "oncpu_ns") < 0.1 * spun
            assert seen_by_b.get(Role.OTHER, "oncpu_ns") >= 0.9 * spun
            assert seen_by_b.get(Role.TRAINER, "threads") == 1
            job.send("fork 0.5")
            other_job.send("fork 0.5")
            # Known from their creation (task_newtask), not from a first switch-out that a
            # worker with a CPU to itself may not make before it ends.
            assert set(a.processes().values()) == {Role.TRAINER, Role.LOADER}
            assert set(b.processes().values()) == {Role.TRAINER, Role.LOADER}
            assert not set(a.processes()) & set(b.processes())
            job.send("reap"), other_job.send("reap")
            a.close()
            assert bpf_handles() == one_set  # b still holds the programs
            b.sample()
            _, by_b = other_job.sample_while(b, "spin 1.0 1")
            # Its own spinning thread counted (a thread may outlive its join for a moment, so
            # the count is checked while it spins).
            assert total(by_b, TRAINER, "oncpu_ns") > 0.2e9
            assert max(s.get(Role.TRAINER, "threads") for s in by_b) == 2
        finally:
            b.close()
    finally:
        a.close()
    assert bpf_handles() == before


def test_a_job_beyond_the_slots_falls_back_to_proc(
    job: Job, caplog: pytest.LogCaptureFixture
) -> None:
    held = [programs.lease()]
    try:
        while held[0].programs.free:
            held.append(programs.lease())
        assert len(held) == bpfmaps.JOB_SLOTS - 1
        with pytest.raises(UserError, match="job slots of this process's BPF telemetry"):
            open_collector(job.target, require_bpf=True)
        with caplog.at_level("WARNING", logger="autotune.telemetry"):
            col = open_collector(job.target)
        with col:
            assert col.source == "proc"
            assert [r.getMessage() for r in caplog.records if "using /proc" in r.getMessage()]
        # A slot given back is taken again.
        held.pop().release()
        with open_collector(job.target, require_bpf=True) as col:
            assert col.source == "bpf"
    finally:
        for lease in held:
            lease.release()


@pytest.mark.parametrize(
    ("background", "helper"),
    [(False, True), (True, True), pytest.param(False, False, marks=pytest.mark.slow)],
)
def test_close_detaches_every_tracepoint_and_program(
    job: Job, background: bool, helper: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() lets go of every handle before it returns (in the background if asked), and the
    kernel unloads the programs soon after: their last references go to a helper process whose
    exit waits for the kernel, or, where no helper can start, are closed here, one thread each."""
    if not helper:
        monkeypatch.setattr(loader, "_HELPER", ("autotune-no-such-helper",))
    before = bpf_handles()
    before_ids = program_ids()
    collector = open_collector(job.target, require_bpf=True)
    opened = bpf_handles()
    ids = program_ids() - before_ids
    assert opened[PERF_EVENT] >= before[PERF_EVENT] + 13
    assert opened[PROGRAM] > before[PROGRAM]
    assert ids and programs_alive(ids) == ids
    if background:
        collector.close_in_background()
    collector.close()
    assert bpf_handles() == before
    if not helper:  # closed here: nothing is left once close() returns
        assert programs_alive(ids) == set()
    deadline = time.monotonic() + 30
    while programs_alive(ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert programs_alive(ids) == set()
    collector.close()  # again: nothing to do


# A process that loads the programs and leaves with os._exit while they are attached, as
# `autotune tune` does when a compile it stopped waiting for has attached them: it prints their
# ids, whether a helper took the events, and how many events the helper holds.
_EXIT_ATTACHED = """
import os, sys
sys.path.insert(0, sys.argv[1])
from bpf_kit import program_ids
from autotune.telemetry import loader, programs
lease = programs.lease()
helper = loader.hand_off_perf_events()
held = sum(
    os.readlink(f"/proc/{helper.pid}/fd/{fd}") == "anon_inode:[perf_event]"
    for fd in os.listdir(f"/proc/{helper.pid}/fd")
)
print(" ".join(map(str, sorted(program_ids()))), held, flush=True)
os._exit(0)
"""


def test_a_process_leaving_with_its_programs_attached_hands_them_to_a_helper() -> None:
    """The helper holds every attached event when the process leaves, and the kernel unloads
    the programs once the helper, whose input was the process's pipe, has ended too."""
    import subprocess
    import sys

    tests = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _EXIT_ATTACHED, tests],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    ids, held = {int(i) for i in out[:-1]}, int(out[-1])
    assert ids
    assert held >= 13  # the scheduler's, block and page-cache tracepoints
    deadline = time.monotonic() + 30
    while programs_alive(ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert programs_alive(ids) == set()


def test_a_failed_compile_says_what_the_compiler_said_and_leaves_no_file() -> None:
    """libbcc's clang writes to fd 2, which a compile borrows: the first error comes back in the
    one line, fd 2 is ours again, and the capture (a file with no name) leaves nothing in /tmp,
    not even from a process killed mid-compile."""
    fd2 = os.readlink("/proc/self/fd/2")
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.glob("autotune-bcc-*"))
    with pytest.raises(loader.BpfUnavailable, match=r"compiler said: .*error") as e:
        loader.load("probe", rename={"int": "not_a_type_of_c"})
    assert "\n" not in str(e.value)
    assert os.readlink("/proc/self/fd/2") == fd2
    assert set(tmp.glob("autotune-bcc-*")) == before
    compiling = subprocess.Popen(
        [sys.executable, "-c", "from autotune.telemetry import loader; loader.load('sched')"],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _has_a_tmpfile(compiling.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    compiling.kill()
    compiling.wait(10)
    assert set(tmp.glob("autotune-bcc-*")) == before


def _has_a_tmpfile(pid: int) -> bool:
    """Whether the process holds the compile's capture open (it is compiling now)."""
    try:
        return any("autotune-bcc" in os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False

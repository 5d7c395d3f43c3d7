"""A new read-ahead reaches a file the job already holds open (autotune.system.openfiles), on
our own loop device: measured by what the device reads for one page fault through a memory
map, which reads around the faulting page as much as the file's read-ahead."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from actuator_kit import Loop

from autotune.actuators import Actuators, DecisionLog
from autotune.config import Settings
from autotune.system import blockdev
from autotune.system.openfiles import refresh_readahead
from autotune.target import Target

pytestmark = pytest.mark.root

SIZE = 16 << 20
# Maps the file, says so, and on each line from the test touches the page at the offset given.
MAPPER = """
import mmap, sys
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
print("ready", flush=True)
for line in sys.stdin:
    m[int(line)]
    print("done", flush=True)
"""


@pytest.fixture
def mapper(loop: Loop) -> Iterator[subprocess.Popen[str]]:
    """A process that memory-maps a 16 MiB file of the loop device while its read-ahead is
    2 MiB, and faults one page of it when told."""
    path = loop.mount / "big.bin"
    path.write_bytes(os.urandom(SIZE))
    loop.set_read_ahead_kb(2048)
    proc = subprocess.Popen(
        [sys.executable, "-c", MAPPER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        loop.set_read_ahead_kb(loop.original_ra)


def _read_kb_for_one_fault(loop: Loop, proc: subprocess.Popen[str]) -> int:
    """KiB the device reads for the mapper's fault at 8 MiB, the file's pages dropped first."""
    fd = os.open(loop.mount / "big.bin", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    stat = blockdev.SYS_BLOCK / loop.name / "stat"
    before = int(stat.read_text().split()[2])  # sectors read
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{8 << 20}\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"
    return (int(stat.read_text().split()[2]) - before) // 2


def test_a_file_held_open_keeps_the_read_ahead_it_was_opened_with(
    loop: Loop, mapper: subprocess.Popen[str]
) -> None:
    # The premise, the kernel's: a value written to the device alone does not reach it.
    loop.set_read_ahead_kb(16)
    assert _read_kb_for_one_fault(loop, mapper) >= 1024


def test_the_files_held_open_get_the_devices_read_ahead_now(
    loop: Loop, mapper: subprocess.Popen[str]
) -> None:
    loop.set_read_ahead_kb(16)
    assert refresh_readahead([mapper.pid], [loop.name]) >= 1
    assert _read_kb_for_one_fault(loop, mapper) <= 256
    # Files on other devices, and processes gone, are left alone without an error.
    assert refresh_readahead([mapper.pid], ["no-such-disk"]) == 0
    assert refresh_readahead([2**22 + 1], [loop.name]) == 0


def test_the_read_ahead_knob_reaches_the_jobs_open_files(
    loop: Loop, mapper: subprocess.Popen[str], settings: Settings
) -> None:
    target = Target.from_pid(mapper.pid)
    log = DecisionLog(console=False, keep=True)
    with Actuators(target, settings, log=log) as act:
        act.apply({"readahead": 16.0}, reason="test")
        assert _read_kb_for_one_fault(loop, mapper) <= 256
    (decision,) = [d for d in log.decisions if d.knob == "readahead" and d.event == "set"]
    assert "the job holds open" in decision.detail
    assert loop.read_ahead_kb() == 2048  # restored: the value it had when the session began


def test_reaching_open_files_is_a_setting(
    loop: Loop, mapper: subprocess.Popen[str], settings: Settings
) -> None:
    off = settings.model_copy(update={"readahead_open_files": False})
    with Actuators(Target.from_pid(mapper.pid), off, log=DecisionLog(console=False)) as act:
        act.apply({"readahead": 16.0}, reason="test")
        assert _read_kb_for_one_fault(loop, mapper) >= 1024


def test_the_restore_reaches_the_files_held_open_too(
    loop: Loop, mapper: subprocess.Popen[str], settings: Settings
) -> None:
    # A job that goes on after the session (a --pid target) gets its files back at the value
    # the disk had, not the tuned one they were given.
    with Actuators(Target.from_pid(mapper.pid), settings, log=DecisionLog(console=False)) as act:
        act.apply({"readahead": 16.0}, reason="test")
    assert loop.read_ahead_kb() == 2048
    assert _read_kb_for_one_fault(loop, mapper) >= 1024

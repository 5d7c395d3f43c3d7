"""The tuner's heap in huge pages (MADV_COLLAPSE on this kernel, in a process of its own)."""

from __future__ import annotations

import subprocess
import sys

from autotune.system.hugepages import HUGE, _ranges

MAPS = """\
00400000-00401000 r--p 00000000 fe:01 123 /usr/bin/python3.11
01000000-01a00000 rw-p 00000000 00:00 0 [heap]
7f0000100000-7f0000700000 rw-p 00000000 00:00 0
7f0000800000-7f0000c00000 rw-s 00000000 00:01 9 /dev/zero (deleted)
7f0001000000-7f0001400000 rw-p 00000000 fe:01 77 /usr/lib/libfoo.so
7f0002000000-7f0002100000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00400000 rw-p 00000000 00:00 0 [stack]
"""


def test_only_private_anonymous_memory_in_whole_huge_pages_is_taken() -> None:
    assert _ranges(MAPS) == [
        (0x01000000, 0x01A00000),  # the heap, aligned already
        (0x7F0000200000, 0x7F0000600000),  # unnamed: the aligned middle of it
    ]  # not text, shared, file-backed, a range smaller than 2 MiB, or the stack
    assert all((a % HUGE, b % HUGE) == (0, 0) for a, b in _ranges(MAPS))


CHILD = """
from autotune.system.hugepages import collapse_heap

def anon_huge_kb():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])

objects = [bytearray(200) for _ in range(100_000)]  # ~25 MiB of small Python objects
before = anon_huge_kb()
mib = collapse_heap()
print(mib, anon_huge_kb() - before)
"""


def test_a_python_heap_is_collapsed_into_huge_pages() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
    )
    mib, gained_kb = (int(x) for x in out.stdout.split())
    assert mib >= 2  # this kernel (6.18) has MADV_COLLAPSE (pymalloc arenas not in 2 MiB runs stay)
    assert gained_kb >= mib * 1024  # and the kernel shows them as huge pages

"""autotune.system.footprint: the BPF compiler's pages leave the process once it has loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from autotune.system.footprint import droppable, mappings

SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 400 kB
Anonymous:             0 kB
7f0000100000-7f0000900000 r-xp 00100000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:               50000 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
7f0000900000-7f0000a00000 r--p 00900000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 900 kB
Anonymous:           900 kB
7f0000a00000-7f0000b00000 rw-p 00a00000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 100 kB
Anonymous:            40 kB
7f0000b00000-7f0000c00000 r-xp 00000000 08:01 12 /usr/lib/llvm-14/lib/libclang-cpp.so.14
Rss:               20000 kB
Anonymous:             0 kB
7f0000c00000-7f0000d00000 r-xp 00000000 08:01 13 /usr/lib/x86_64-linux-gnu/libbcc.so.0.26.0
Rss:                2000 kB
Anonymous:             0 kB
7f0000d00000-7f0000e00000 r-xp 00000000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                   0 kB
Anonymous:             0 kB
7f0000e00000-7f0000f00000 rw-p 00000000 00:00 0
Rss:                3000 kB
Anonymous:          3000 kB
"""


def test_only_clean_read_only_pages_of_the_compiler_are_dropped() -> None:
    maps = mappings(SMAPS)
    assert len(maps) == 8 and maps[1].rss_kb == 50000 and maps[7].path == ""
    got = [(m.start, m.perms, m.path.rsplit("/", 1)[1]) for m in droppable(maps)]
    # Not the RELRO segment (read-only, but its pages are relocated copies), not the writable
    # data, not libbcc (the tuner reads its maps through it), not what holds nothing.
    assert got == [
        (0x7F0000000000, "r--p", "libLLVM-14.so.1"),
        (0x7F0000100000, "r-xp", "libLLVM-14.so.1"),
        (0x7F0000B00000, "r-xp", "libclang-cpp.so.14"),
    ]


# A process of its own: the resident set of the test process carries other tests' memory.
CHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    from autotune.system.footprint import SMAPS, droppable, mappings, rss_kb
    from autotune.target import Target
    from autotune.telemetry.collector import open_collector

    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        col = open_collector(Target.from_pid(job.pid), require_bpf=True)
        left = sum(m.rss_kb for m in droppable(mappings(SMAPS.read_text())))
        first = col.sample()
        time.sleep(0.3)
        second = col.sample()
        print("left", left, "source", second.source, "rss", rss_kb())
        col.close()
        again = open_collector(Target.from_pid(job.pid), require_bpf=True)  # compiles anew
        print("again", again.sample().source)
        again.close()
    finally:
        job.kill()
    """
)


@pytest.mark.root
@pytest.mark.bpf
def test_a_loaded_collector_holds_none_of_the_compilers_pages_and_still_works() -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=240, check=False
    )
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    words = first.split()
    # Of the ~72 MB the compile made resident, a few pages come back (loading touches them).
    assert words[0] == "left" and int(words[1]) < 4096
    assert words[2:4] == ["source", "bpf"]
    # The tuner's footprint target (issue 22: 120 MB); before the release it was ~182 MB.
    assert int(words[5]) < 120 * 1024
    assert second == "again bpf"

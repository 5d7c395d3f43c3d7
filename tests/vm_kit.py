"""What the suite's two VM tests share: scx/vm/run.sh and scx/vm/cgroup2.sh boot through
scx/vm/boot.sh, which retries a boot that crashes or hangs and then says so."""

from __future__ import annotations

import subprocess

# Seconds per boot far too short for the kernel to boot under TCG: every boot "hangs".
HUNG_BOOT_S = 2
NO_RESULT = 3  # the scripts' exit status when no boot printed a result


def assert_hung_boots_retried_twice_then_reported(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == NO_RESULT, r.stderr[-3000:]
    assert r.stderr.count("crashed or hung before a result") == 3
    assert r.stderr.count("retrying (at most twice)") == 2
    assert "no result after 3 boots" in r.stderr

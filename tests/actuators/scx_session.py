"""A tuning session on the sched_ext backend for the crash test: it writes weights for a job
through :class:`~autotune.actuators.weights_scx.ScxWeights`, prints ``ready`` and waits, to be
killed with SIGKILL (leaving its journal for ``autotune restore``).

Usage: scx_session.py PIN_DIR JOURNAL PID CGROUP_PARENT
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from scx_kit import attached_double

from autotune.actuators.backend import Context
from autotune.actuators.journal import Journal
from autotune.actuators.weights_scx import ScxWeights
from autotune.system import cgroups
from autotune.target import Target, start_time


def main() -> None:
    pin_dir, journal_path, pid, parent = (
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        int(sys.argv[3]),
        sys.argv[4],
    )
    target = Target.from_pid(pid)
    roots = [(p, start_time(p)) for p in target.roots]
    journal = Journal(journal_path, "scx-crash", target.description, roots)
    ctx = Context(cgroups.mounts(), parent, "scx-crash", pid)
    family = ScxWeights(journal, ctx, pin_dir, status=attached_double)
    members = target.members()
    family.set("weight.trainer", 4.0, members)
    family.set("weight.loader", 0.5, members)
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
        family.follow(target.members())


if __name__ == "__main__":
    main()

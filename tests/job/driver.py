"""A process running one job session the way `autotune tune` does; the session tests signal it.

    python driver.py STATE_FILE --pid PID
    python driver.py STATE_FILE -- COMMAND...

It opens the /proc telemetry and the actuators (journal and cgroup parent from ``AUTOTUNE_*``),
puts the trainer on its lowest CPU rung (and, as root, at 2× weight), lets the job run, writes
``{"pid": ..., "applied": ...}`` to STATE_FILE, samples until the job ends or a signal stops the
session, restores, ends a job it started and exits with the job's status (0 for --pid).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from autotune import config
from autotune.actuators import DecisionLog
from autotune.job import JobSession
from autotune.knobs import by_name


def main(argv: list[str]) -> int:
    state = Path(argv[0])
    if argv[1] == "--pid":
        job = JobSession(config.load({}), pid=int(argv[2]), grace_s=2.0)
    else:
        job = JobSession(config.load({}), command=argv[2:], grace_s=2.0)
    with job:
        collector = job.open_telemetry(0.1, prefer_bpf=False)
        act = job.open_actuators(log=DecisionLog(console=False))
        job.stop_on_signals((signal.SIGTERM, signal.SIGHUP))
        job.run()
        wanted = {"cpus.trainer": by_name("cpus.trainer").ladder[0]}
        if os.geteuid() == 0:
            wanted["weight.trainer"] = 2.0
        applied = act.apply(wanted, "test")
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": job.target.pid, "applied": applied}))
        tmp.rename(state)
        while job.alive() and not job.stopping.wait(0.1):
            collector.sample()
        job.restore()
        status = job.finish()
    return status or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

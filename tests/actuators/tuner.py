"""A real tuning process for the crash tests: applies an action to a job, then follows it.

Usage: tuner.py PID JOURNAL CGROUP_PARENT ACTION_JSON [--weights BACKEND] [--device DEV]...
Prints the values in effect as JSON once applied, then calls follow() until it is killed
(SIGKILL leaves the journal for `autotune restore`; SIGTERM restores on the way out).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from autotune.actuators import Actuators, DecisionLog
from autotune.config import Settings
from autotune.target import Target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pid", type=int)
    ap.add_argument("journal", type=Path)
    ap.add_argument("cgroup_parent")
    ap.add_argument("action")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--device", action="append", default=None)
    args = ap.parse_args()
    settings = Settings(journal=args.journal, cgroup_parent=args.cgroup_parent)
    target = Target.from_pid(args.pid)
    log = DecisionLog(console=False)
    with Actuators(
        target, settings, log=log, devices=args.device, weights_backend=args.weights
    ) as act:
        act.apply(json.loads(args.action), reason="test")
        print(json.dumps({"current": act.current(), "disabled": act.disabled}), flush=True)
        while True:
            time.sleep(0.05)
            act.follow()


if __name__ == "__main__":
    main()

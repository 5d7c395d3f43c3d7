"""What a running service tunes now: the state file it rewrites each interval, atomically.

``autotune status`` reads it (the way ``bpftune -q`` answers), and the Prometheus endpoint serves
the same figures. One file per slice, ``<state_dir>/service-<slice key>.json``; the service's
PID and start time in it tell a live service from a file a killed one left.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from autotune.errors import UserError
from autotune.target import start_time

if TYPE_CHECKING:  # the actuators' package is heavy; `autotune status` reads this module
    from autotune.actuators.decisions import Decision

STATE_VERSION = 1
RECENT = 10  # decisions kept in the state file, per job and for the service

# Guard states, as `autotune status` and the metrics name them.
WARMING_UP = "warming up"  # default knobs, measuring the reference rate
TRYING = "trying"  # a change is on probation (the canary)
TUNED = "tuned"  # knobs away from default, judged no worse
AT_DEFAULT = "at default"  # warm-up over, the policy keeps the defaults
HELD_OFF = "held off"  # a change was just rolled back: that setting is refused for a while
FALLEN_BACK = "fallen back"  # tuned progress fell below default: defaults for a window
STARTING = "starting"  # telemetry and actuators being opened
GUARD_STATES = (STARTING, WARMING_UP, AT_DEFAULT, TRYING, TUNED, HELD_OFF, FALLEN_BACK)


class DecisionState(BaseModel):
    """One decision line: ``knob role old → new reason``."""

    time: float
    pid: int
    knob: str
    role: str
    old: float | None
    new: float | None
    reason: str
    event: str

    @classmethod
    def of(cls, pid: int, d: Decision) -> DecisionState:
        """The state's line for job ``pid``'s decision ``d``."""
        return cls(
            time=d.time,
            pid=pid,
            knob=d.knob,
            role=str(d.role),
            old=d.old,
            new=d.new,
            reason=d.reason,
            event=d.event,
        )


class JobState(BaseModel):
    """One tuned job."""

    pid: int
    start: int
    command: str
    guard: str = STARTING
    telemetry: str = ""  # bpf or proc (one BPF collector per process: the first job's)
    knobs: dict[str, float] = Field(default_factory=dict)
    rate: float = 0.0
    reference_rate: float = 0.0
    intervals: int = 0
    decisions: int = 0
    rollbacks: int = 0
    fallbacks: int = 0
    since: float = Field(default_factory=time.time)
    recent: list[DecisionState] = Field(default_factory=list)


class Totals(BaseModel):
    """Counters over the service's life (jobs that left included)."""

    jobs_seen: int = 0
    jobs_done: int = 0
    decisions: int = 0
    rollbacks: int = 0
    fallbacks: int = 0


class ServiceState(BaseModel):
    """The whole state file."""

    version: int = STATE_VERSION
    pid: int
    start: int
    cgroup: str
    model: str
    interval_ms: int
    dry_run: bool = False
    metrics_port: int | None = None
    since: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    jobs: list[JobState] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)
    recent: list[DecisionState] = Field(default_factory=list)
    tuner_cpu_percent: float = 0.0
    tuner_rss_mb: float = 0.0

    def running(self) -> bool:
        """Whether the service that wrote this still runs (the same process, not a reused PID)."""
        return start_time(self.pid) == self.start


def path_for(state_dir: Path, slice_key: str) -> Path:
    return state_dir / f"service-{slice_key}.json"


def write(path: Path, state: ServiceState) -> None:
    """Replace the state file in one rename: a reader sees the old file or the new one.

    Not fsynced (unlike the journal): the file says what runs now, and after a crash it is stale
    whatever it holds; two fsyncs every interval would cost the service more than the write.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(state.model_dump_json(indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read(path: Path) -> ServiceState:
    """Read one state file.

    Raises:
        UserError: unreadable, or not an autotune state file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read the service state {path}: {e.strerror or e}") from e
    try:
        state = ServiceState.model_validate_json(text)
    except ValidationError as e:
        raise UserError(
            f"{path} is not an autotune service state file ({e.errors()[0]['msg']})"
        ) from e
    if state.version != STATE_VERSION:
        raise UserError(f"{path} is a state file of version {state.version}, not {STATE_VERSION}")
    return state


def running(state_dir: Path) -> list[ServiceState]:
    """The services whose state files are under ``state_dir`` and that still run."""
    out = []
    for p in sorted(state_dir.glob("service-*.json")):
        with_state = read(p)
        if with_state.running():
            out.append(with_state)
    return out

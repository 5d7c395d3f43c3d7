"""Hold knob settings fixed for one run of a workload.

Read-ahead is written to the workloads' own loop device before the job starts (its first reads
must already see the setting) and restored after; once the job runs, every knob goes through
:class:`autotune.actuators.Actuators` (bounded, journalled, verified, restored on exit), which
also puts each new DataLoader worker under the loader's settings as it appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Imported up front, not when a run starts: a Ctrl-C that lands inside a dataclass being built
# (exec'd code) makes CPython 3.11 end the process by SIGINT even after the harness handled it.
from autotune import config
from autotune.actuators import Actuators, DecisionLog
from autotune.errors import UserError
from autotune.knobs import by_name
from autotune.target import Target
from workloads import disk


class KnobNotHeld(UserError):
    """A knob the run could not hold (the actuators gave up on it: a job that never acknowledged
    its prefetch depth, say): the run would not measure the setting asked for."""

    def __init__(self, knob: str, value: float, why: str) -> None:
        super().__init__(f"cannot hold {knob}={value:g}: {why}")
        self.knob = knob


# Knobs a run started under a tuner (`--under`) may still fix: a starting point, set before the
# tuner starts and then left to it.
STARTING_POINT = ("readahead",)


def parse(text: str | None) -> dict[str, float]:
    """``name=value,...`` → knob values, each checked against the knob table's ladder.

    Raises:
        UserError: bad syntax, an unknown knob or a value off its ladder.
    """
    out: dict[str, float] = {}
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"bad knob setting {item!r}: write name=value (readahead=128)")
        knob = by_name(name.strip())
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"bad knob setting {item!r}: {value!r} is not a number") from None
        out[knob.name] = knob.check(number)
    return out


def format_knobs(knobs: Mapping[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in sorted(knobs.items())) or "as found"


class FixedKnobs:
    """One run's knob settings; :meth:`close` puts everything back, whatever happened.

    Args:
        knobs: knob name → ladder value.
        device: the loop device the data is on (``readahead`` acts on it, and only on it).
        progress: the run's progress server, for ``prefetch.loader``.
        tuned: the job runs under a tuner: only :data:`STARTING_POINT` knobs may be set.
    """

    def __init__(
        self,
        knobs: Mapping[str, float],
        device: str | None,
        progress: Any = None,
        tuned: bool = False,
    ) -> None:
        self.knobs = dict(knobs)
        self.device = device
        self.progress = progress
        self.tuned = tuned
        if tuned and set(self.knobs) - set(STARTING_POINT):
            raise UserError(
                "under a tuner only a starting read-ahead can be fixed; the tuner owns "
                f"{', '.join(sorted(set(self.knobs) - set(STARTING_POINT)))}"
            )
        if "readahead" in self.knobs and device is None:
            raise UserError("readahead needs the data on a loop device of the harness")
        self._ra_original: int | None = None
        self._act: Any = None
        self._target: Target | None = None
        # The fixed knobs' values as read back: after apply, and again once the job's
        # DataLoader workers exist (the actuators put them under the loader's settings).
        self.in_effect: dict[str, float] = {}

    def before_start(self) -> None:
        """Set read-ahead on the data's loop device (remembering what it was)."""
        if "readahead" in self.knobs and self.device is not None:
            self._ra_original = disk.read_ahead_kb(self.device)
            disk.set_read_ahead_kb(self.device, int(self.knobs["readahead"]))
            self.in_effect["readahead"] = float(disk.read_ahead_kb(self.device))

    def started(self, target: Target) -> None:
        """Hand the settings to the actuators now that the job runs; check that each took."""
        if self.tuned or not self.knobs:
            return
        self._act = Actuators(
            target,
            config.load(),
            log=DecisionLog(None, console=False),
            progress=self.progress,
            devices=[self.device] if self.device else [],
        )
        self._act.open()
        self._target = target
        now = self._act.apply(self.knobs, reason="fixed setting (workloads)")
        self.in_effect = {k: v for k, v in now.items() if k in self.knobs}
        self.check()

    def switch(self, knobs: Mapping[str, float]) -> dict[str, float]:
        """Hold new values of the same knobs from now on (an oracle, as a spell begins).

        Returns the values read back after the change (none before the job runs).
        """
        if self._act is None:
            return {}
        self.knobs = dict(knobs)
        now = self._act.apply(self.knobs, reason="oracle: a spell begins (workloads)")
        self.in_effect = {k: v for k, v in now.items() if k in self.knobs}
        self.check()
        return dict(self.in_effect)

    def check(self) -> None:
        """Raise :class:`KnobNotHeld` when a knob could not be held (the run would not measure
        that setting)."""
        if self._act is None:
            return
        lost = {k: why for k, why in self._act.disabled.items() if k in self.knobs}
        if lost:
            k, why = next(iter(lost.items()))
            raise KnobNotHeld(k, self.knobs[k], why)

    def follow(self) -> None:
        """Once per interval while the job runs: new workers get their role's settings."""
        if self._act is None or self._target is None:
            return
        before = self._target.members().loader_pids
        self._act.follow()
        self.check()
        # Read back while the workers are there and none came or went during the follow (a
        # worker born since is not placed yet): the last such reading is what the run had.
        if before and self._target.alive():
            now = self._act.current()
            if self._target.members().loader_pids == before:
                # A knob unreadable now (its workers are exiting) keeps its last reading.
                self.in_effect.update({k: v for k, v in now.items() if k in self.knobs})

    def close(self) -> None:
        """Let the actuators restore what they changed, then put read-ahead back."""
        try:
            if self._act is not None:
                self._act.close()
                self._act = None
        finally:
            if self._ra_original is not None and self.device is not None:
                disk.set_read_ahead_kb(self.device, self._ra_original)
                self._ra_original = None

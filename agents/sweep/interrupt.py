"""Ctrl-C during a sweep: the trials end at their next evaluation, then the command stops.

Ray Tune's own SIGINT handler ends the trials the same way but then returns from ``fit`` as if
the sweep were done, and the sweep would go on to register a champion of trials cut short. It
is turned off for the sweep (``TUNE_DISABLE_SIGINT_HANDLER``); :func:`ctrl_c_stops_trials` puts
a handler of ours in its place, which tells Tune through a :class:`CtrlC` stopper.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from ray.tune import Stopper
from rich.console import Console

TUNE_SIGINT_ENV = "TUNE_DISABLE_SIGINT_HANDLER"


class CtrlC(Stopper):
    """The sweep's Ctrl-C: Tune's stopper for every trial (``stop_all``) once it is pressed."""

    def __init__(self) -> None:
        self.pressed = threading.Event()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False  # no trial is stopped for its own results: that is ASHA's job

    def stop_all(self) -> bool:
        return self.pressed.is_set()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its stopper with the experiment's state; an event does not pickle.
        return {"pressed": self.pressed.is_set()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.pressed = threading.Event()
        if state.get("pressed"):
            self.pressed.set()


@contextlib.contextmanager
def ctrl_c_stops_trials(ctrl_c: CtrlC, console: Console, *, enabled: bool = True) -> Iterator[None]:
    """For the block: the first Ctrl-C asks every trial to stop (``ctrl_c``), the next one raises
    KeyboardInterrupt at once. Not ``enabled``, or outside the main thread (no signal handler
    can be set there), nothing changes."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: Any) -> None:
        ctrl_c.pressed.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        console.print(
            "autotune: stopping the sweep: each running trial ends at its next evaluation "
            "(Ctrl-C again to stop now)",
            highlight=False,
        )

    previous = signal.signal(signal.SIGINT, first)
    saved = os.environ.get(TUNE_SIGINT_ENV)
    os.environ[TUNE_SIGINT_ENV] = "1"  # Tune's own handler would take the first Ctrl-C
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if saved is None:
            os.environ.pop(TUNE_SIGINT_ENV, None)
        else:
            os.environ[TUNE_SIGINT_ENV] = saved

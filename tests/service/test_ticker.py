"""The service's ticker: every loop stepped in turn, each one's end handed to its worker.

The loops here are test doubles (``Steps``: a script of what each step returns), standing in for
:class:`~autotune.daemon.loop.TuneLoop`, whose real runs under the ticker the service tests
cover; here it is the ticker's own bookkeeping that is checked, one case at a time.
"""

from __future__ import annotations

import threading

from autotune.service.ticker import Ticker


class Steps:
    """A test double of TuneLoop's stepping API: returns the scripted outcomes in order."""

    def __init__(self, *outcomes: str | Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.steps = 0
        self.begun = False
        self.stopping = False

    def begin(self) -> None:
        self.begun = True

    def step(self) -> str | None:
        self.steps += 1
        out = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(out, Exception):
            raise out
        return out

    def stop(self) -> None:
        self.stopping = True


def test_loops_step_in_turn_until_each_ends() -> None:
    t = Ticker()
    a, b = Steps(None, None, "job ended"), Steps("watchdog: telemetry stopped")
    ea, eb = t.add(a), t.add(b)  # type: ignore[arg-type]
    assert a.begun and b.begun
    t.step_all()
    assert eb.done.is_set() and eb.ended == "watchdog: telemetry stopped"
    assert not ea.done.is_set() and len(t) == 1
    t.step_all()
    t.step_all()
    assert ea.done.is_set() and ea.ended == "job ended" and a.steps == 3
    assert len(t) == 0 and b.steps == 1


def test_a_failing_loop_hands_its_error_over_and_the_others_go_on() -> None:
    t = Ticker()
    bad, good = Steps(RuntimeError("cgroup gone")), Steps(None, None)
    eb, eg = t.add(bad), t.add(good)  # type: ignore[arg-type]
    t.step_all()
    assert eb.done.is_set() and eb.ended == "error"
    assert isinstance(eb.error, RuntimeError)
    assert not eg.done.is_set() and good.steps == 1


def test_stop_and_close_end_loops_as_stopped() -> None:
    t = Ticker()
    a, b = Steps(), Steps()
    ea, eb = t.add(a), t.add(b)  # type: ignore[arg-type]
    a.stop()
    t.step_all()
    assert ea.ended == "stopped" and a.steps == 0
    assert not eb.done.is_set()
    t.close()
    assert eb.ended == "stopped" and eb.done.is_set()
    late = t.add(Steps())  # type: ignore[arg-type]
    assert late.done.is_set() and late.ended == "stopped"


def test_workers_adding_from_their_threads_are_all_stepped() -> None:
    t = Ticker()
    loops = [Steps(None, "job ended") for _ in range(8)]
    threads = [threading.Thread(target=t.add, args=(lp,)) for lp in loops]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.step_all()
    t.step_all()
    assert all(lp.steps == 2 for lp in loops) and len(t) == 0

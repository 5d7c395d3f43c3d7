"""What a sweep shows while it runs, and what it remembers of each trial.

:class:`SweepView` is a Ray Tune callback (it runs in the driver): it keeps one
:class:`TrialRecord` per trial and draws them with rich: a live table on a terminal (running,
stopped early, done, failed; the best so far marked), one line per event otherwise. Trials that
ASHA stops are told apart from those that ran their budget by :class:`RecordingASHA`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from rich.console import Console
from rich.live import Live
from rich.table import Table

from autotune.agents.sweep.trial import NODE, WORKER_PID

PENDING, RUNNING, DONE, STOPPED, FAILED = "pending", "running", "done", "stopped early", "failed"


@dataclass
class TrialRecord:
    """One trial as the sweep saw it."""

    trial_id: str
    config: dict[str, Any]
    status: str = PENDING
    node: str = ""
    worker_pid: int = 0  # the Ray worker process that ran it (a worker runs trial after trial)
    timesteps: int = 0
    best: float = float("nan")
    evaluations: int = 0
    error: str = ""
    run_id: str = ""
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["best"] = None if math.isnan(self.best) else self.best
        return d


class RecordingASHA(ASHAScheduler):
    """ASHA that remembers which trials it stopped before their budget ran out."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.stopped: set[str] = set()
        self._budget = float(kw.get("max_t", math.inf))

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = str(super().on_trial_result(tune_controller, trial, result))
        if decision == TrialScheduler.STOP and float(result.get("timesteps", 0)) < self._budget:
            self.stopped.add(trial.trial_id)
        return decision


def _short(config: dict[str, Any]) -> str:
    parts = []
    for k, v in config.items():
        if k == "budget":
            continue
        shown = v
        if isinstance(v, float):
            shown = f"{v:.3g}"
        elif isinstance(v, list):
            shown = "+".join(str(x) for x in v)
        parts.append(f"{k}={shown}")
    return " ".join(parts)


class SweepView(Callback):
    """Tracks every trial and shows the sweep as it goes (a Ray Tune callback)."""

    def __init__(
        self, console: Console, scheduler: RecordingASHA | None, *, live: bool | None = None
    ) -> None:
        self.console = console
        self.scheduler = scheduler
        self.records: dict[str, TrialRecord] = {}
        self.live_mode = console.is_terminal if live is None else live
        self._live: Live | None = None
        self._nodes: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment's state; a console and a live view
        # (locks, a terminal) stay behind, and a copy draws lines on stderr.
        state = dict(self.__dict__)
        state.update(console=None, _live=None, live_mode=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console = Console(stderr=True, soft_wrap=True)

    # -- Tune's hooks ------------------------------------------------------------------------

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        if self.live_mode:
            self._live = Live(self.table(), console=self.console, refresh_per_second=2)
            self._live.start()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self._record(trial)
        rec.status = RUNNING
        self._line(f"trial {rec.trial_id} started: {_short(rec.config)}")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        rec = self._record(trial)
        if "timesteps" not in result:
            return
        rec.node = str(result.get(NODE, rec.node))
        rec.worker_pid = int(result.get(WORKER_PID, rec.worker_pid))
        rec.timesteps = int(result["timesteps"])
        best = float(result.get("best", math.nan))
        if not math.isnan(best):
            rec.best = best if math.isnan(rec.best) else max(rec.best, best)
        rec.evaluations += 1
        rec.wall_s = float(result.get("time_total_s", rec.wall_s))
        if "run_id" in result:
            rec.run_id = str(result["run_id"])
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self._record(trial)
        early = self.scheduler is not None and trial.trial_id in self.scheduler.stopped
        rec.status = STOPPED if early else DONE
        why = f" at {rec.timesteps} timesteps" if early else ""
        self._line(f"trial {rec.trial_id} {rec.status}{why}: best {rec.best:.3f}")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self._record(trial)
        rec.status = FAILED
        rec.error = _error_of(trial)
        self._line(f"trial {rec.trial_id} failed: {rec.error}")

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.close()

    def from_results(self, grid: Any) -> None:
        """Fill the records from Tune's result grid (when the hooks ran elsewhere)."""
        for r in grid:
            metrics = dict(r.metrics or {})
            trial_id = str(metrics.get("trial_id", len(self.records)))
            config = {k: v for k, v in dict(r.config or {}).items() if k != "budget"}
            rec = self.records[trial_id] = TrialRecord(trial_id, config)
            rec.node = str(metrics.get(NODE, ""))
            rec.worker_pid = int(metrics.get(WORKER_PID, 0))
            rec.timesteps = int(metrics.get("timesteps", 0))
            rec.best = float(metrics.get("best", math.nan))
            if r.error is not None:
                rec.status, rec.error = FAILED, _last_line(str(r.error))
            elif rec.timesteps < int(dict(r.config or {}).get("budget", {}).get("timesteps", 0)):
                rec.status = STOPPED
            else:
                rec.status = DONE

    # -- drawing -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self.table())
            self._live.stop()
            self._live = None

    def best(self) -> TrialRecord | None:
        scored = [r for r in self.records.values() if not math.isnan(r.best)]
        return max(scored, key=lambda r: r.best) if scored else None

    def table(self) -> Table:
        best = self.best()
        counts = {s: 0 for s in (PENDING, RUNNING, DONE, STOPPED, FAILED)}
        for r in self.records.values():
            counts[r.status] += 1
        title = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        if best is not None:
            title += f"; best so far {best.trial_id} {best.best:.3f}"
        t = Table(title=title or "sweep", title_justify="left")
        for col in ("trial", "status", "node", "timesteps", "best", "config"):
            t.add_column(col, justify="right" if col in {"timesteps", "best"} else "left")
        for r in self.records.values():
            mark = " *" if best is not None and r is best else ""
            t.add_row(
                r.trial_id,
                r.status + (f" ({r.error[:40]})" if r.error else ""),
                self._node_label(r.node),
                str(r.timesteps),
                ("-" if math.isnan(r.best) else f"{r.best:.3f}") + mark,
                _short(r.config),
            )
        return t

    def _node_label(self, node: str) -> str:
        if not node:
            return ""
        if node not in self._nodes:
            self._nodes[node] = len(self._nodes) + 1
        return f"{self._nodes[node]} ({node[:8]})"

    def _record(self, trial: Any) -> TrialRecord:
        rec = self.records.get(trial.trial_id)
        if rec is None:
            config = {k: v for k, v in dict(trial.config).items() if k != "budget"}
            rec = self.records[trial.trial_id] = TrialRecord(trial.trial_id, config)
        return rec

    def _line(self, text: str) -> None:
        if self._live is not None:
            self._live.update(self.table())
        else:
            self.console.print(text, highlight=False, markup=False)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.table())


def _error_of(trial: Any) -> str:
    """The last line of a failed trial's error (its exception, as Ray recorded it)."""
    text = ""
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            text = ""
    if not text:
        text = str(getattr(trial, "error_msg", "") or "error")
    return _last_line(text)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "error"

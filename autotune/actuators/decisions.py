"""The decision log: one line per change, ``knob role old → new  reason``.

Lines go to stderr (rich) and, when a path is given, to a JSONL file (one object a line, flushed
as written). Listeners (:meth:`DecisionLog.add_listener`) see every :class:`Decision`: that is
where MLflow mirroring joins, without the actuators knowing about MLflow.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

from autotune.errors import UserError

# What happened to a knob.
SET = "set"  # a value written and verified (or, in a dry run, the value that would be)
YIELD = "yield"  # changed behind our back: no longer touched, not restored
STUCK = "stuck"  # a write that did not stick, or no backend: the knob is disabled
RESTORE = "restore"  # put back to its original value
LEFT = "left"  # not restored on purpose: someone else changed it after us
FAILED = "failed"  # could not be restored: the journal keeps it for `autotune restore`

_TAGS = {YIELD: "yielded: ", STUCK: "disabled: ", LEFT: "left: ", FAILED: "NOT restored: "}


@dataclass(frozen=True)
class Decision:
    """One line of the log.

    Attributes:
        knob: knob name (``readahead``).
        role: the role it acts on.
        old: the value in effect before, or None when unknown.
        new: the value asked for (set, restore) or found (yield).
        reason: why (the caller's reason, or what was found).
        event: one of ``set``, ``yield``, ``stuck``, ``restore``, ``left``, ``failed``.
        dry_run: computed but not written (advice mode).
        detail: the concrete thing touched (``/sys/block/loop3/queue/read_ahead_kb``, ``cpus 2-3``).
        time: seconds since the epoch.
    """

    knob: str
    role: str
    old: float | None
    new: float | None
    reason: str
    event: str = SET
    dry_run: bool = False
    detail: str = ""
    time: float = field(default_factory=time.time)

    def line(self) -> str:
        """The human line: ``knob role old → new  reason``."""
        old = "?" if self.old is None else f"{self.old:g}"
        new = "?" if self.new is None else f"{self.new:g}"
        tag = _TAGS.get(self.event, "")
        prefix = "(dry run) " if self.dry_run else ""
        detail = f" [{self.detail}]" if self.detail else ""
        return f"{prefix}{self.knob} {self.role} {old} → {new}  {tag}{self.reason}{detail}"


Listener = Callable[[Decision], None]


class DecisionLog:
    """Where decisions go: stderr, a JSONL file, and listeners.

    Args:
        path: JSONL file to append to, or None for stderr only.
        console: print each line on stderr.
        keep: keep every decision in :attr:`decisions` (a recording puts them in its trace's
            metadata). A tuner that runs for days does not: at ~420 bytes a decision, a change a
            second would grow it by 36 MB a day.
        tags: fields added to each JSONL line (the service's jobs share one file: ``{"pid": N}``
            says whose decision it is).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        console: bool = True,
        keep: bool = True,
        tags: Mapping[str, object] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._console = Console(stderr=True, highlight=False) if console else None
        self._listeners: list[Listener] = []
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self.keep = keep
        self.tags = dict(tags or {})
        self.decisions: list[Decision] = []
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            except OSError as e:
                raise UserError(f"cannot write the decision log {self.path}: {e}") from e

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every decision from now on (an MLflow mirror, say)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (one added by :meth:`add_listener`)."""
        self._listeners.remove(listener)

    def record(self, decision: Decision) -> Decision:
        """Log one decision everywhere."""
        with self._lock:
            if self.keep:
                self.decisions.append(decision)
            if self._file is not None:
                line = {**asdict(decision), **self.tags}
                self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
                self._file.flush()
        if self._console is not None:
            style = {YIELD: "yellow", STUCK: "red", RESTORE: "cyan", FAILED: "bold red"}.get(
                decision.event, ""
            )
            text = escape(decision.line())
            self._console.print(f"[{style}]{text}[/]" if style else text, soft_wrap=True)
        for listener in self._listeners:
            listener(decision)
        return decision

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """The decisions in a JSONL file, oldest first."""
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
